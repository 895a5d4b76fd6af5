package pgxdb_test

// Review probes for 7a4630a/7ebede3 on a live PostgreSQL.

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// A step retried in place at a savepoint with LockTimeout and
// StatementTimeout, with dbop's own decorators between the retry and the
// scope: the 55P03 is retried in place and the earlier work kept.
func TestInSavepointRetriesInPlaceWithDecoratorsBetween(t *testing.T) {
	pool := newPool(t, 4)
	rows := "pgxdb_rv_cover_rows"
	lock := "pgxdb_rv_cover_lock"
	createTable(t, pool, rows, "id int PRIMARY KEY, n int NOT NULL", "INSERT INTO "+rows+" VALUES (1, 0), (2, 0)")
	createTable(t, pool, lock, "id int PRIMARY KEY", "INSERT INTO "+lock+" VALUES (1)")
	end := rbHold(t, pool, lock)
	bRuns := 0
	_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if _, err := tx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 1"); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			bRuns++
			_, err := tx.Exec(ctx, "UPDATE "+lock+" SET id = id WHERE id = 1")
			if bRuns == 1 {
				end()
			}
			if err == nil {
				_, err = tx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 2")
			}
			return 2, err
		})
		return step.With(
			dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) {})),
			dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.Unclassified }),
			dbop.HotSpot(),
			dbop.Bulkhead(2),
			dbop.WithTimeout(10*time.Second),
			pgxdb.InSavepoint(tx, pgxdb.LockTimeout(50*time.Millisecond), pgxdb.StatementTimeout(5*time.Second)),
		).Run(ctx)
	}).Run(t.Context())
	n1 := queryInt(t, pool, "SELECT n FROM "+rows+" WHERE id = 1")
	n2 := queryInt(t, pool, "SELECT n FROM "+rows+" WHERE id = 2")
	if err != nil || bRuns != 2 || n1 != 1 || n2 != 1 {
		t.Errorf("Run: %v; step ran %d times; row1 n=%d row2 n=%d; want success after 2 runs, 1 and 1", err, bRuns, n1, n2)
	}
}

// WRONG REFUSAL (regression): a retry around a pgxdb.InTx of its own (on
// another connection), run with the context an outer InTx handed over. The
// inner transaction meets a lock timeout and is rolled back by its owner;
// nothing of the attempt stands anywhere. Before 7a4630a the retry ran it
// again; now the 55P03 goes out and rolls back the outer transaction too.
func TestRetryAroundANestedInTxLive(t *testing.T) {
	pool := newPool(t, 4)
	rows := "pgxdb_rv_nested_rows"
	lock := "pgxdb_rv_nested_lock"
	createTable(t, pool, rows, "id int PRIMARY KEY, n int NOT NULL", "INSERT INTO "+rows+" VALUES (1, 0), (2, 0)")
	createTable(t, pool, lock, "id int PRIMARY KEY", "INSERT INTO "+lock+" VALUES (1)")
	end := rbHold(t, pool, lock)
	innerRuns := 0
	_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if _, err := tx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 1"); err != nil {
			return 0, err
		}
		inner := pgxdb.InTx(pool, func(ctx context.Context, itx pgx.Tx) (int, error) {
			innerRuns++
			_, err := itx.Exec(ctx, "UPDATE "+lock+" SET id = id WHERE id = 1")
			if innerRuns == 1 {
				end()
			}
			if err == nil {
				_, err = itx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 2")
			}
			return 2, err
		}, pgxdb.LockTimeout(50*time.Millisecond))
		return inner.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
	}).Run(t.Context())
	n1 := queryInt(t, pool, "SELECT n FROM "+rows+" WHERE id = 1")
	n2 := queryInt(t, pool, "SELECT n FROM "+rows+" WHERE id = 2")
	t.Logf("Run: %v (code %s); inner ran %d times; row1 n=%d row2 n=%d", err, pgCode(err), innerRuns, n1, n2)
	if err != nil || innerRuns != 2 || n1 != 1 || n2 != 1 {
		t.Errorf("want the nested transaction retried: success after 2 runs, row1 n=1, row2 n=1")
	}
}

// WRONG ACCEPTANCE: a decorator of the caller's own declared with
// AroundTx on the transaction's Savepointer (as AroundTx's doc asks: "tx is
// the decorator's handle on that transaction") runs a statement, then the
// step, which has its savepoint in another With. The retry counts the
// AroundTx as a covering scope and runs the caller's statement again.
func TestAnAroundTxOfYourOwnDoesNotCertifyLive(t *testing.T) {
	pool := newPool(t, 4)
	rows := "pgxdb_rv_own_rows"
	lock := "pgxdb_rv_own_lock"
	createTable(t, pool, rows, "id int PRIMARY KEY, n int NOT NULL", "INSERT INTO "+rows+" VALUES (1, 0), (2, 0)")
	createTable(t, pool, lock, "id int PRIMARY KEY", "INSERT INTO "+lock+" VALUES (1)")
	end := rbHold(t, pool, lock)
	bRuns := 0
	_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		own := dbop.AroundTx(pgxdb.Savepoints(tx), func(ctx context.Context, next func(context.Context) error) error {
			if _, err := tx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 1"); err != nil {
				return err
			}
			return next(ctx)
		})
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			bRuns++
			_, err := tx.Exec(ctx, "UPDATE "+lock+" SET id = id WHERE id = 1")
			if bRuns == 1 {
				end()
			}
			if err == nil {
				_, err = tx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 2")
			}
			return 2, err
		}).With(pgxdb.InSavepoint(tx, pgxdb.LockTimeout(50*time.Millisecond)))
		return step.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), own).Run(ctx)
	}).Run(t.Context())
	n1 := queryInt(t, pool, "SELECT n FROM "+rows+" WHERE id = 1")
	n2 := queryInt(t, pool, "SELECT n FROM "+rows+" WHERE id = 2")
	t.Logf("Run: %v; step ran %d times; row1 n=%d row2 n=%d", err, bRuns, n1, n2)
	if n1 > 1 {
		t.Errorf("the caller's UPDATE (in its AroundTx, outside any savepoint) committed %d times in one transaction", n1)
	}
}
