package pgxdb_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
)

// When a dbop.HotSpot asks for its lock (internal/hotlock), InTx takes the
// transaction-scoped advisory lock before fn runs. Held by another
// process's transaction, it waits for it; a REPEATABLE READ or SERIALIZABLE
// transaction then begins again, since its snapshot predates the holder's
// commit and its write would fail with 40001 (docs/backends.md §1.13): the
// attempt commits, once, on top of the holder's write.
func TestHotSpotLockWaitsForAnotherProcess(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_hotlock", "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO pgxdb_hotlock VALUES (1, 0)")
	for _, iso := range []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.RepeatableRead, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) {
			key := rand.Int64()
			before := queryInt(t, pool, "SELECT v FROM pgxdb_hotlock WHERE id = 1")

			// The other process: holds the lock and has written the row.
			holder, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(context.Background())
			exec(t, holder, "SELECT pg_advisory_xact_lock($1)", key)
			exec(t, holder, "UPDATE pgxdb_hotlock SET v = v + 1 WHERE id = 1")

			req := &hotlock.Request{Key: key}
			ctx := hotlock.With(t.Context(), req)
			begins := 0
			done := make(chan error, 1)
			go func() {
				_, err := pgxdb.Do(countBegins{pool, &begins}, func(ctx context.Context, tx pgx.Tx) error {
					var v int
					if err := tx.QueryRow(ctx, "SELECT v FROM pgxdb_hotlock WHERE id = 1").Scan(&v); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "UPDATE pgxdb_hotlock SET v = $1 WHERE id = 1", v+1)
					return err
				}, pgxdb.Isolation(iso)).Run(ctx)
				done <- err
			}()
			waitForAdvisoryWaiter(t, pool, key)
			if err := holder.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the attempt that waited for the lock: %v", err)
			}
			if got, want := queryInt(t, pool, "SELECT v FROM pgxdb_hotlock WHERE id = 1"), before+2; got != want {
				t.Errorf("v = %d, want %d: the holder's write and the attempt's, each once", got, want)
			}
			took, waited, inPlace := req.Outcome()
			if wantInPlace := iso == pgx.ReadCommitted; !took || !waited || inPlace != wantInPlace {
				t.Errorf("request outcome took=%v waited=%v inPlace=%v, want true, true, %v", took, waited, inPlace, wantInPlace)
			}
			wantBegins := 2 // the snapshot of the first was stale
			if iso == pgx.ReadCommitted {
				wantBegins = 1 // waits in place
			}
			if begins != wantBegins {
				t.Errorf("%d transactions begun, want %d", begins, wantBegins)
			}
		})
	}
}

// Uncontended, the lock is taken in the attempt's transaction and released
// with it; without a request, or in a transaction begun inside fn (the
// request is claimed), none is taken.
func TestHotSpotLockHeldForTheTransactionOnly(t *testing.T) {
	pool := newPool(t, 4)
	key := rand.Int64()
	held := func(ctx context.Context, tx pgx.Tx) int {
		var n int
		err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
			AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1 AND granted`, key).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	req := &hotlock.Request{Key: key}
	var outer, inner int
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		outer = held(ctx, tx)
		_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			inner = held(ctx, tx)
			return nil
		}).Run(ctx)
		return err
	}).Run(hotlock.With(t.Context(), req))
	if err != nil {
		t.Fatal(err)
	}
	if outer != 1 || inner != 0 {
		t.Errorf("lock held %d times in the attempt's transaction and %d in one begun inside it; want 1 and 0", outer, inner)
	}
	// The server's default isolation, READ COMMITTED, waits in place.
	if took, waited, inPlace := req.Outcome(); !took || waited || !inPlace {
		t.Errorf("request outcome took=%v waited=%v inPlace=%v, want true, false, true", took, waited, inPlace)
	}
	n := queryInt(t, pool, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid`, key)
	if n != 0 {
		t.Errorf("%d advisory locks left after the transaction", n)
	}
	_, err = pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		outer = held(ctx, tx)
		return nil
	}).Run(t.Context())
	if err != nil || outer != 0 {
		t.Errorf("without a request: lock held %d times, err %v; want none", outer, err)
	}
}

// countBegins counts the transactions begun on a pool.
type countBegins struct {
	pool interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}
	n *int
}

func (c countBegins) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	*c.n++
	return c.pool.BeginTx(ctx, opts)
}

// waitForAdvisoryWaiter waits until a backend waits for the advisory lock
// key.
func waitForAdvisoryWaiter(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, key int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid`, key).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nobody waited for the advisory lock within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
