package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// shareFn is one attempt's work in the tests of ShareCommits.
type shareFn = func(ctx context.Context, tx pgx.Tx) error

// shared builds a ShareCommits operation on db: every call shares, as the
// closures an application builds per request do.
func shared(db pgxdb.Beginner, fn shareFn, opts ...pgxdb.TxOption) dbop.Op[struct{}] {
	return pgxdb.Do(db, fn, append(opts, pgxdb.ShareCommits())...)
}

// shareTable creates a table of rows written by the tests, each with the id
// of the transaction that wrote it.
func shareTable(t *testing.T, pool *pgxpool.Pool, name string) string {
	createTable(t, pool, name, "id int PRIMARY KEY, xid text NOT NULL DEFAULT pg_current_xact_id()::text")
	return name
}

// insert returns the work of an attempt that writes row id.
func insert(table string, id int) shareFn {
	return func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO "+table+" (id) VALUES ($1)", id)
		return err
	}
}

// meet runs ops so that they meet in one shared transaction: the first
// holds the turn (its fn waits, on its first run only, until every other
// has queued for the turn, in order), and the others join after it. It
// returns each one's error.
func meet(t *testing.T, pool *pgxpool.Pool, build func(fn shareFn) dbop.Op[struct{}], fns ...shareFn) []error {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	first := fns[0]
	held := func(ctx context.Context, tx pgx.Tx) error {
		err := first(ctx, tx)
		once.Do(func() { close(entered); <-gate })
		return err
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	wg.Go(func() { _, errs[0] = build(held).Run(t.Context()) })
	<-entered
	for i := 1; i < len(fns); i++ {
		wg.Go(func() { _, errs[i] = build(fns[i]).Run(t.Context()) })
		waitUntil(t, fmt.Sprintf("%d attempts queue", i), func() bool { return pgxdb.SharedQueued(pool) == i })
	}
	close(gate)
	wg.Wait()
	return errs
}

// rows returns the rows of table: id → the transaction that wrote it.
func rows(t *testing.T, pool *pgxpool.Pool, table string) map[int]string {
	t.Helper()
	rs, err := pool.Query(t.Context(), "SELECT id, xid FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for rs.Next() {
		var id int
		var xid string
		if err := rs.Scan(&id, &xid); err != nil {
			t.Fatal(err)
		}
		got[id] = xid
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestShareCommitsRunsWaitingAttemptsInOneTransaction(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_one")
	build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn) }
	errs := meet(t, pool, build, insert(table, 1), insert(table, 2), insert(table, 3))
	for i, err := range errs {
		if err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
	got := rows(t, pool, table)
	if len(got) != 3 || got[1] != got[2] || got[2] != got[3] {
		t.Fatalf("rows = %v, want ids 1, 2, 3 written by one transaction", got)
	}
	// Alone, an attempt commits at once, in a transaction of its own.
	if _, err := shared(pool, insert(table, 4)).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, pool, table); got[4] == got[1] {
		t.Fatalf("row 4 in the first transaction (%v)", got)
	}
}

func TestShareCommitsFailedAttemptIsRolledBackAlone(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_fail")
	exec(t, pool, "INSERT INTO "+table+" (id) VALUES (100)")
	boom := errors.New("boom")
	build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn).With(dbop.WithRetry(retryAtOnce)) }
	errs := meet(t, pool, build,
		insert(table, 1),
		func(ctx context.Context, tx pgx.Tx) error { // its own error, after a write
			if err := insert(table, 2)(ctx, tx); err != nil {
				return err
			}
			return boom
		},
		insert(table, 3),
		func(ctx context.Context, tx pgx.Tx) error { // a failed statement: 23505
			if err := insert(table, 4)(ctx, tx); err != nil {
				return err
			}
			return insert(table, 100)(ctx, tx)
		},
		insert(table, 5),
	)
	if errs[0] != nil || errs[2] != nil || errs[4] != nil {
		t.Errorf("the others' errors: %v, %v, %v; want nil", errs[0], errs[2], errs[4])
	}
	if !errors.Is(errs[1], boom) {
		t.Errorf("attempt 2: %v, want boom", errs[1])
	}
	if pgCode(errs[3]) != "23505" || !final(dbop.VerdictOf(errs[3])) {
		t.Errorf("attempt 4: %v (verdict %v), want its 23505, final", errs[3], dbop.VerdictOf(errs[3]))
	}
	got := rows(t, pool, table)
	for _, id := range []int{1, 3, 5, 100} {
		if _, ok := got[id]; !ok {
			t.Errorf("row %d missing", id)
		}
	}
	for _, id := range []int{2, 4} {
		if _, ok := got[id]; ok {
			t.Errorf("row %d of a failed attempt was committed", id)
		}
	}
	if got[1] != got[3] {
		t.Errorf("attempts 1 and 3 in different transactions: %v", got)
	}
}

func TestShareCommitsConflictInAnAttemptIsRetriedAndCommitsOnce(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_conflict")
	var runs atomic.Int32
	var rec retries
	build := func(fn shareFn) dbop.Op[struct{}] {
		return shared(pool, fn).With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record)))
	}
	errs := meet(t, pool, build,
		insert(table, 1),
		func(ctx context.Context, tx pgx.Tx) error {
			if err := insert(table, 2)(ctx, tx); err != nil {
				return err
			}
			if runs.Add(1) == 1 {
				_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
				return err
			}
			return nil
		},
		insert(table, 3),
	)
	for i, err := range errs {
		if err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
	if runs.Load() != 2 || len(rec.codes()) != 1 || rec.codes()[0] != "40001" {
		t.Errorf("attempt 2 ran %d times, retried on %v; want twice, once on 40001", runs.Load(), rec.codes())
	}
	got := rows(t, pool, table)
	if len(got) != 3 {
		t.Fatalf("rows = %v, want 1, 2, 3 once each", got)
	}
	if got[2] == got[1] {
		t.Errorf("attempt 2's retry ran in the transaction its conflict closed: %v", got)
	}
}

func TestShareCommitsFnMayNotEndTheSharedTransaction(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_end")
	for _, end := range []string{"Commit", "Rollback"} {
		t.Run(end, func(t *testing.T) {
			exec(t, pool, "TRUNCATE "+table)
			var endErr error
			build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn).With(dbop.WithRetry(retryAtOnce)) }
			errs := meet(t, pool, build,
				insert(table, 1),
				func(ctx context.Context, tx pgx.Tx) error {
					if err := insert(table, 2)(ctx, tx); err != nil {
						return err
					}
					if end == "Commit" {
						endErr = tx.Commit(ctx)
					} else {
						endErr = tx.Rollback(ctx)
					}
					return nil // the mistake: it goes on as if committed
				},
				insert(table, 3),
			)
			if endErr == nil || !strings.Contains(endErr.Error(), "ShareCommits") {
				t.Errorf("tx.%s in fn: %v, want an error naming ShareCommits", end, endErr)
			}
			if errs[0] != nil || errs[2] != nil {
				t.Errorf("the others: %v, %v; want nil", errs[0], errs[2])
			}
			if errs[1] == nil || !final(dbop.VerdictOf(errs[1])) {
				t.Errorf("attempt 2: %v (verdict %v), want a final error", errs[1], dbop.VerdictOf(errs[1]))
			}
			got := rows(t, pool, table)
			if _, ok := got[2]; ok || len(got) != 2 {
				t.Errorf("rows = %v, want 1 and 3", got)
			}
		})
	}
}

func TestShareCommitsCommitStatementMakesTheTransactionsAttemptsAmbiguous(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_stmt")
	var runs atomic.Int32
	build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn).With(dbop.WithRetry(retryAtOnce)) }
	errs := meet(t, pool, build,
		insert(table, 1),
		func(ctx context.Context, tx pgx.Tx) error {
			runs.Add(1)
			if err := insert(table, 2)(ctx, tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "COMMIT") //dbopvet:ignore the misuse under test
			return err
		},
		insert(table, 3),
	)
	for i := range 2 {
		if dbop.VerdictOf(errs[i]) != dbop.Ambiguous || !errors.Is(errs[i], scopes.ErrAmbiguousCommit) {
			t.Errorf("attempt %d: %v (verdict %v), want Ambiguous", i+1, errs[i], dbop.VerdictOf(errs[i]))
		}
	}
	if errs[2] != nil {
		t.Errorf("attempt 3, after the transaction ended: %v", errs[2])
	}
	if runs.Load() != 1 {
		t.Errorf("the attempt that committed ran %d times", runs.Load())
	}
	if got := rows(t, pool, table); len(got) != 3 {
		t.Errorf("rows = %v, want 1, 2, 3 (the statement committed 1 and 2)", got)
	}
}

func TestShareCommitsRefusedCommitRetriesTheOthersAlone(t *testing.T) {
	pool := newPool(t, 8)
	table := "pgxdb_share_deferred"
	createTable(t, pool, table, "id int, k int UNIQUE DEFERRABLE INITIALLY DEFERRED", "INSERT INTO "+table+" VALUES (0, 100)")
	put := func(id, k int) shareFn {
		return func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES ($1, $2)", id, k)
			return err
		}
	}
	build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn).With(dbop.WithRetry(retryAtOnce)) }
	errs := meet(t, pool, build, put(1, 1), put(2, 100), put(3, 3))
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the innocent attempts: %v, %v; want nil", errs[0], errs[2])
	}
	if pgCode(errs[1]) != "23505" || !final(dbop.VerdictOf(errs[1])) {
		t.Errorf("the guilty attempt: %v (verdict %v), want its own 23505, final", errs[1], dbop.VerdictOf(errs[1]))
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM "+table+" WHERE id IN (1, 3)"); n != 2 {
		t.Errorf("%d of the innocent rows committed, want 2", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM "+table+" WHERE id = 2"); n != 0 {
		t.Errorf("the guilty row committed")
	}
}

func TestShareCommitsSwallowedStatementErrorFailsItsAttemptOnly(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_swallow")
	build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn).With(dbop.WithRetry(retryAtOnce)) }
	errs := meet(t, pool, build,
		insert(table, 1),
		func(ctx context.Context, tx pgx.Tx) error {
			if err := insert(table, 2)(ctx, tx); err != nil {
				return err
			}
			_, _ = tx.Exec(ctx, "SELECT 1/0") // swallowed
			return nil
		},
		insert(table, 3),
	)
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the others: %v, %v; want nil", errs[0], errs[2])
	}
	if !errors.Is(errs[1], pgx.ErrTxCommitRollback) {
		t.Errorf("attempt 2: %v, want pgx.ErrTxCommitRollback", errs[1])
	}
	if got := rows(t, pool, table); len(got) != 2 || got[2] != "" {
		t.Errorf("rows = %v, want 1 and 3", got)
	}
}

func TestShareCommitsNestedInItsOwnGroupFailsAtOnce(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_nested")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var inner error
	_, err := shared(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, inner = shared(pool, insert(table, 2)).Run(ctx)
		return insert(table, 1)(ctx, tx)
	}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inner == nil || !strings.Contains(inner.Error(), "wait") || !final(dbop.VerdictOf(inner)) || ctx.Err() != nil {
		t.Fatalf("nested: %v (verdict %v, context %v), want a final error at once saying it would wait for itself", inner, dbop.VerdictOf(inner), ctx.Err())
	}
	// With a context of its own it runs a transaction of its own.
	_, err = shared(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, inner = pgxdb.Do(pool, insert(table, 4)).Run(context.WithoutCancel(t.Context()))
		return insert(table, 3)(ctx, tx)
	}).Run(ctx)
	if err != nil || inner != nil {
		t.Fatalf("outer %v, inner %v", err, inner)
	}
}

func TestShareCommitsAttemptCancelledWhileWaitingLeavesTheTurn(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_cancel")
	entered, gate := make(chan struct{}), make(chan struct{})
	var errA error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, errA = shared(pool, func(ctx context.Context, tx pgx.Tx) error {
			close(entered)
			<-gate
			return insert(table, 1)(ctx, tx)
		}).Run(t.Context())
	})
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	errB := make(chan error, 1)
	go func() { _, err := shared(pool, insert(table, 2)).Run(ctx); errB <- err }()
	waitUntil(t, "B queues", func() bool { return pgxdb.SharedQueued(pool) == 1 })
	cancel()
	if err := <-errB; !errors.Is(err, context.Canceled) {
		t.Errorf("B: %v, want context.Canceled", err)
	}
	if n := pgxdb.SharedQueued(pool); n != 0 {
		t.Errorf("%d attempts still queued", n)
	}
	close(gate)
	wg.Wait()
	if errA != nil {
		t.Fatal(errA)
	}
	after, cancelAfter := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelAfter()
	if _, err := shared(pool, insert(table, 3)).Run(after); err != nil {
		t.Fatalf("after: %v (the turn was lost)", err)
	}
	if got := rows(t, pool, table); len(got) != 2 || got[2] != "" {
		t.Errorf("rows = %v, want 1 and 3", got)
	}
}

func TestShareCommitsLimitsOfADeadlineAreTheAttemptsOwn(t *testing.T) {
	pool := newPool(t, 8)
	read := func(into *string) shareFn {
		return func(ctx context.Context, tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT current_setting('statement_timeout') || ' ' || current_setting('lock_timeout')").Scan(into)
		}
	}
	var a, b, c string
	deadlined := func(fn shareFn) dbop.Op[struct{}] {
		return shared(pool, fn).With(dbop.WithTimeout(30 * time.Second))
	}
	var built atomic.Int32
	build := func(fn shareFn) dbop.Op[struct{}] {
		if built.Add(1) == 2 {
			return deadlined(fn)
		}
		return shared(pool, fn)
	}
	errs := meet(t, pool, build, read(&a), read(&b), read(&c))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	if a != "0 0" || c != "0 0" {
		t.Errorf("the attempts without a deadline saw %q and %q, want the server's \"0 0\"", a, c)
	}
	if b == "0 0" || !strings.HasSuffix(strings.Fields(b)[0], "ms") && !strings.HasSuffix(strings.Fields(b)[0], "s") {
		t.Errorf("the attempt with a deadline saw %q, want limits derived from it", b)
	}
}

func TestShareCommitsRefusesOptionsItCannotServe(t *testing.T) {
	pool := newPool(t, 1)
	fn := func(context.Context, pgx.Tx) error { return nil }
	for name, opt := range map[string]pgxdb.TxOption{
		"ReadOnly":         pgxdb.ReadOnly(),
		"CockroachRestart": pgxdb.CockroachRestart(),
		"ResolveCommit":    pgxdb.ResolveCommit(),
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), name) {
					t.Errorf("panic %v, want one naming %s", r, name)
				}
			}()
			pgxdb.Do(pool, fn, opt, pgxdb.ShareCommits())
		})
	}
}

// TestShareCommitsInvariantUnderFaults runs many attempts through shared
// transactions, with conflicts, final errors and failed statements dealt at
// random, and checks the invariant: a transfer reported committed is
// applied exactly once, one reported failed not at all.
func TestShareCommitsInvariantUnderFaults(t *testing.T) {
	pool := newPool(t, 16)
	table := shareTable(t, pool, "pgxdb_share_faults")
	exec(t, pool, "INSERT INTO "+table+" (id) VALUES (0)")
	const workers, each = 8, 40
	var mu sync.Mutex
	outcome := map[int]error{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := 1 + w*each + i
				fault := rand.IntN(10)
				var runs int
				_, err := shared(pool, func(ctx context.Context, tx pgx.Tx) error {
					runs++
					if err := insert(table, id)(ctx, tx); err != nil {
						return err
					}
					switch {
					case fault == 0 && runs == 1: // a conflict, retried
						_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'c' USING ERRCODE = '40001'; END $$")
						return err
					case fault == 1: // a final error of its own
						return errors.New("refused")
					case fault == 2: // a failed statement: 23505
						return insert(table, 0)(ctx, tx)
					}
					return nil
				}).With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
				mu.Lock()
				outcome[id] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := rows(t, pool, table)
	xids := map[string]int{}
	for id, err := range outcome {
		xid, ok := got[id]
		switch {
		case err == nil && !ok:
			t.Errorf("transfer %d reported committed, not applied", id)
		case err != nil && ok:
			t.Errorf("transfer %d reported failed (%v), applied", id, err)
		case err != nil && dbop.VerdictOf(err) == dbop.Ambiguous:
			t.Errorf("transfer %d ambiguous: %v", id, err)
		}
		if ok {
			xids[xid]++
		}
	}
	if applied := len(got) - 1; len(xids) >= applied {
		t.Errorf("%d transfers applied in %d transactions: nothing was shared", applied, len(xids))
	}
	t.Logf("%d transfers, %d applied, in %d transactions", len(outcome), len(got)-1, len(xids))
}

// TestShareCommitsPoolsTakeTurnsThroughTheLockTable stands in for two
// processes: two pools are two groups, which form lock cycles with each
// other's writes unless the lock table orders their transactions.
func TestShareCommitsPoolsTakeTurnsThroughTheLockTable(t *testing.T) {
	admin := newPool(t, 2)
	if err := pgxdb.CreateHotSpotLocks(t.Context(), admin); err != nil {
		t.Fatal(err)
	}
	table := "pgxdb_share_pools"
	createTable(t, admin, table, "id int PRIMARY KEY, balance bigint NOT NULL", "INSERT INTO "+table+" SELECT g, 0 FROM generate_series(1, 4) g")
	slow := func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["deadlock_timeout"] = "10s" }
	pools := []*pgxpool.Pool{newPool(t, 8, slow), newPool(t, 8, slow)}
	var rec retries
	var moved atomic.Int64
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, pool := range pools {
		for range 6 {
			wg.Go(func() {
				for ctx.Err() == nil {
					from, to := 1+rand.IntN(4), 1+rand.IntN(3)
					if to >= from {
						to++
					}
					_, err := shared(pool, func(ctx context.Context, tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, "UPDATE "+table+" SET balance = balance - 1 WHERE id = $1", from); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, "UPDATE "+table+" SET balance = balance + 1 WHERE id = $1", to)
						return err
					}, pgxdb.LockTimeout(5*time.Second)).With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))).Run(context.WithoutCancel(ctx))
					if err != nil {
						t.Errorf("transfer: %v", err)
						return
					}
					moved.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if n := queryInt(t, admin, "SELECT sum(balance) FROM "+table); n != 0 {
		t.Errorf("balances sum to %d", n)
	}
	if codes := rec.codes(); len(codes) > 0 {
		t.Errorf("%d attempts retried (%v): the pools' transactions were not ordered", len(codes), codes[:min(5, len(codes))])
	}
	if moved.Load() < 100 {
		t.Errorf("%d transfers in 3 s", moved.Load())
	}
	t.Logf("%d transfers", moved.Load())
}

// The first attempt of a shared transaction sets its savepoint in the
// BEGIN round trip (a lone one costs no round trip more than without
// ShareCommits): when it fails, its work is rolled back, and the attempts
// waiting commit theirs.
func TestShareCommitsFirstAttemptFailingRollsBackItsWorkAlone(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 8, traced(&log))
	table := shareTable(t, pool, "pgxdb_share_first")
	exec(t, pool, "INSERT INTO "+table+" (id) VALUES (100)")
	log.Reset()
	if _, err := shared(pool, insert(table, 1)).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range log.Log() {
		if strings.HasPrefix(strings.TrimSpace(strings.ToUpper(stmt)), "SAVEPOINT") {
			t.Errorf("a lone attempt sent %q, a round trip of its own (its savepoint goes in the BEGIN's)", stmt)
		}
	}
	build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn) }
	for _, how := range []string{"error", "failed statement"} {
		t.Run(how, func(t *testing.T) {
			exec(t, pool, "DELETE FROM "+table+" WHERE id < 100")
			errs := meet(t, pool, build,
				func(ctx context.Context, tx pgx.Tx) error {
					if err := insert(table, 1)(ctx, tx); err != nil {
						return err
					}
					if how == "error" {
						return errors.New("boom")
					}
					_ = insert(table, 100)(ctx, tx) // 23505, swallowed: the transaction failed
					return nil
				},
				insert(table, 2), insert(table, 3))
			if errs[0] == nil || errs[1] != nil || errs[2] != nil {
				t.Errorf("errors %v, want the first's only", errs)
			}
			got := rows(t, pool, table)
			if _, ok := got[1]; ok || len(got) != 3 || got[2] != got[3] {
				t.Errorf("rows = %v, want 2 and 3 (one transaction) beside 100, not 1", got)
			}
		})
	}
}
