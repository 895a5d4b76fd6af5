package pgxdb_test

// Live probes of the rule that a retry inside a transaction trusts only a
// savepoint scope of the library's listed inside it in the same pipeline
// (doc.go, invariant 2), from a review of that rule.

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
	sc := newLockScene(t, newPool(t, 4), "pgxdb_rv_cover")
	bRuns := 0
	_, err := pgxdb.InTx(sc.pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if err := sc.bump(ctx, tx); err != nil {
			return 0, err
		}
		return sc.lockedStep(tx, &bRuns).With(
			dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) {})),
			dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.Unclassified }),
			dbop.HotSpot(),
			dbop.Bulkhead(2),
			dbop.WithTimeout(10*time.Second),
			pgxdb.InSavepoint(tx, pgxdb.LockTimeout(50*time.Millisecond), pgxdb.StatementTimeout(5*time.Second)),
		).Run(ctx)
	}).Run(t.Context())
	n1, n2 := sc.committed(t)
	if err != nil || bRuns != 2 || n1 != 1 || n2 != 1 {
		t.Errorf("Run: %v; step ran %d times; row1 n=%d row2 n=%d; want success after 2 runs, 1 and 1", err, bRuns, n1, n2)
	}
}

// A retry around a pgxdb.InTx of its own (on another connection), run with
// the context an outer InTx handed over: the inner transaction meets a lock
// timeout and is rolled back by its owner, so nothing of the attempt stands
// anywhere, and the retry runs it again. (The first version of the rule
// refused it, and the 55P03 rolled back the outer transaction too.)
func TestRetryAroundANestedInTxLive(t *testing.T) {
	sc := newLockScene(t, newPool(t, 4), "pgxdb_rv_nested")
	innerRuns := 0
	_, err := pgxdb.InTx(sc.pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if err := sc.bump(ctx, tx); err != nil {
			return 0, err
		}
		inner := pgxdb.InTx(sc.pool, func(ctx context.Context, itx pgx.Tx) (int, error) {
			return sc.lockedStep(itx, &innerRuns).Run(ctx)
		}, pgxdb.LockTimeout(50*time.Millisecond))
		return inner.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
	}).Run(t.Context())
	n1, n2 := sc.committed(t)
	t.Logf("Run: %v (code %s); inner ran %d times; row1 n=%d row2 n=%d", err, pgCode(err), innerRuns, n1, n2)
	if err != nil || innerRuns != 2 || n1 != 1 || n2 != 1 {
		t.Errorf("want the nested transaction retried: success after 2 runs, row1 n=1, row2 n=1")
	}
}

// A decorator of the caller's own declared with AroundTx on the
// transaction's Savepointer (as AroundTx's doc asks) runs a statement, then
// the step, whose savepoint is in another With. A review found the retry
// took the AroundTx for a covering savepoint scope and ran the caller's
// statement again; only the library's scopes certify now, so the retry
// refuses and the lock timeout rolls the transaction back.
func TestAnAroundTxOfYourOwnDoesNotCertifyLive(t *testing.T) {
	sc := newLockScene(t, newPool(t, 4), "pgxdb_rv_own")
	bRuns := 0
	_, err := pgxdb.InTx(sc.pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		own := dbop.AroundTx(pgxdb.Savepoints(tx), func(ctx context.Context, next func(context.Context) error) error {
			if err := sc.bump(ctx, tx); err != nil {
				return err
			}
			return next(ctx)
		})
		step := sc.lockedStep(tx, &bRuns).With(pgxdb.InSavepoint(tx, pgxdb.LockTimeout(50*time.Millisecond)))
		return step.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), own).Run(ctx)
	}).Run(t.Context())
	n1, n2 := sc.committed(t)
	t.Logf("Run: %v; step ran %d times; row1 n=%d row2 n=%d", err, bRuns, n1, n2)
	if n1 > 1 {
		t.Errorf("the caller's UPDATE (in its AroundTx, outside any savepoint) committed %d times in one transaction", n1)
	}
	if pgCode(err) != "55P03" || bRuns != 1 || n1 != 0 || n2 != 0 {
		t.Errorf("Run: %v (code %s); step ran %d times; want the lock timeout returned to InTx after one run, and nothing committed", err, pgCode(err), bRuns)
	}
}
