package pgxdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
)

// A statement limit the server reports as a cancel (57014 "… due to user
// request" after the attempt ran its limit, docs/backends.md §1.8) is
// retried by a WithTimeout listed after the retry, composed as users
// compose it: around InTx, the transaction again; around InSavepoint in a
// transaction the caller owns, the step at its savepoint; and a bare retry
// inside the caller's transaction, which no savepoint made safe to retry,
// does not run the step again. Each row is written once or not at all.
func TestLiveComposeServerLimitReportedAsACancel(t *testing.T) {
	pool := newPool(t, 2)
	createTable(t, pool, "pgxdb_compose_slc", "id serial PRIMARY KEY, what text")
	cancelled := dboptest.PgError("57014", "canceling statement due to user request")
	count := func(what string) int {
		return queryInt(t, pool, "SELECT count(*) FROM pgxdb_compose_slc WHERE what = '"+what+"'")
	}
	step := func(what string, calls *int) func(context.Context, pgx.Tx) (int, error) {
		return func(ctx context.Context, tx pgx.Tx) (int, error) {
			*calls++
			if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_compose_slc (what) VALUES ($1)", what); err != nil {
				return 0, err
			}
			if *calls == 1 {
				time.Sleep(95 * time.Millisecond)
				return 0, cancelled
			}
			return 1, nil
		}
	}
	// inCallersTx begins the caller's transaction, rolled back at the end
	// of the test unless committed, and returns the step writing what in it.
	inCallersTx := func(t *testing.T, what string) (pgx.Tx, *int, dbop.Op[int]) {
		tx, err := pool.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) }) // a no-op after COMMIT or ROLLBACK
		calls := new(int)
		s := step(what, calls)
		return tx, calls, func(ctx context.Context) (int, error) { return s(ctx, tx) }
	}
	t.Run("around InTx", func(t *testing.T) {
		calls := 0
		_, err := pgxdb.InTx(pool, step("intx", &calls)).With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(100*time.Millisecond)).Run(t.Context())
		if err != nil || calls != 2 || count("intx") != 1 {
			t.Errorf("got %v after %d calls, %d rows; want nil after 2, 1 row", err, calls, count("intx"))
		}
	})
	t.Run("around InSavepoint in the caller's tx", func(t *testing.T) {
		tx, calls, op := inCallersTx(t, "sp")
		_, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(100*time.Millisecond), pgxdb.InSavepoint(tx)).Run(t.Context())
		if err != nil || *calls != 2 {
			t.Fatalf("got %v after %d calls; want nil after 2", err, *calls)
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := count("sp"); n != 1 {
			t.Errorf("%d rows committed, want 1: the failed step's row rolled back to its savepoint", n)
		}
	})
	t.Run("bare retry in the caller's tx", func(t *testing.T) {
		tx, calls, op := inCallersTx(t, "bare")
		_, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(100*time.Millisecond)).Run(dbop.WithinTx(t.Context()))
		if err == nil || *calls != 1 {
			t.Fatalf("got %v after %d calls; want the error after 1", err, *calls)
		}
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := count("bare"); n != 0 {
			t.Errorf("%d rows, want none", n)
		}
	})
}
