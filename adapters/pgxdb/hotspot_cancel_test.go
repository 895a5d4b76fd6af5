package pgxdb_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// TestHotSpotKeepsACancelOnPurpose: pg_cancel_backend's 57014 "canceling
// statement due to user request" is a cancel on purpose, which no retry
// runs again, with a HotSpot as without. A HotSpot's attempt takes a 57014
// for its server's statement limit only once it ran for that limit, which
// on PostgreSQL is derived from the attempt's context (about 405 ms for a
// new HotSpot's), not for its bound (200 ms, a lock_timeout only).
func TestHotSpotKeepsACancelOnPurpose(t *testing.T) {
	admin := newPool(t, 2)
	for _, withHot := range []bool{false, true} {
		name := map[bool]string{false: "retry", true: "retry and HotSpot"}[withHot]
		t.Run(name, func(t *testing.T) {
			pool := newPool(t, 4, inSchema(t, "pgxdb_hot_cancel", true))
			ds := []dbop.Decorator{dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(3))}
			if withHot {
				ds = append(ds, dbop.HotSpot())
			}
			var runs atomic.Int32
			pids := make(chan uint32, 1)
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				if runs.Add(1) == 1 {
					pids <- pid(tx)
					_, err := tx.Exec(ctx, "SELECT pg_sleep(1)")
					return 0, err
				}
				return 1, nil
			})
			cancelled := make(chan error, 1)
			go func() {
				p := <-pids
				// Past the HotSpot's bound (200 ms), well before its
				// statement limit (about 405 ms) and the sleep's end.
				time.Sleep(250 * time.Millisecond)
				_, err := admin.Exec(context.Background(), "SELECT pg_cancel_backend($1)", p)
				cancelled <- err
			}()
			_, err := op.With(ds...).Run(t.Context())
			if cerr := <-cancelled; cerr != nil {
				t.Fatalf("pg_cancel_backend: %v", cerr)
			}
			if pgCode(err) != "57014" || runs.Load() != 1 {
				t.Errorf("a cancel on purpose: ran %d times, err = %v; want one run and the 57014 itself", runs.Load(), err)
			}
			if v := dbop.VerdictOf(err); v.Retryable() {
				t.Errorf("verdict %v; want one no retry acts on", v)
			}
		})
	}
}

// TestHotSpotTakesNoStatementTimeoutForAnOutsideWriter: a HotSpot's
// attempt that held its lock with a bound after it and then timed out on a
// lock wait (55P03) shows a writer the lock does not order, and the
// HotSpot keeps taking the lock on every attempt for a while; one that
// timed out on statement_timeout (57014: slow work) shows nothing of the
// kind. After one slow transaction, a lone process's fast ones succeed
// 128 times in a row and the HotSpot stops limiting: they take no lock.
// Taken for an outside writer, the timeout would keep it limiting, every
// attempt taking the lock, for 4096 admissions.
func TestHotSpotTakesNoStatementTimeoutForAnOutsideWriter(t *testing.T) {
	log := &sqlLog{}
	pool := newPool(t, 2, inSchema(t, "pgxdb_hot_slow", true), traced(log))
	pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(5)), dbop.HotSpot())
	slow := true
	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		// 5 ms: long beside a BEGIN and its LOCK, which the HotSpot
		// judges against the rest of the attempt to tell a wait for
		// another process (of a few hundred µs, a busy machine's
		// BEGIN can take as long: docs/contention.md, "Limits").
		q := "SELECT pg_sleep(0.005)"
		if slow {
			q = "SELECT pg_sleep(0.6)"
		}
		_, err := tx.Exec(ctx, q)
		return err
	})
	if _, err := op.With(pipeline).Run(t.Context()); err != nil {
		t.Fatalf("the slow transaction: %v", err)
	}
	slow = false
	// Once the HotSpot stops limiting, attempts take no lock: look for 40
	// BEGINs in a row without it. A machine that stalls now and then
	// delays that, never by 4096 admissions.
	const run, most = 40, 1000
	lockless := 0
	for i := 0; lockless < run; i++ {
		if i == most {
			t.Fatalf("after the slow transaction, %d fast ones: never %d BEGINs in a row without the lock (the last %d had none)", most, run, lockless)
		}
		log.Reset()
		if _, err := op.With(pipeline).Run(t.Context()); err != nil {
			t.Fatalf("fast transaction %d: %v", i, err)
		}
		for _, stmt := range log.Log() {
			if strings.HasPrefix(strings.ToLower(stmt), "begin") {
				lockless++
				if strings.Contains(stmt, "LOCK TABLE") {
					lockless = 0
				}
			}
		}
	}
}
