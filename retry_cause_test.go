package dbop_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
)

// An errgroup cancels its context with the first error a sibling returned
// as the cause. A retry waiting there when that happens stops with a
// *RetryError whose Reason is that cause: as documented, errors.Is(err,
// context.Canceled) must still say the caller cancelled, and errors.As
// must reach the last attempt's driver error, not the sibling's.
func TestRetryStoppedByACauseKeepsItsOwnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, ctx := errgroup.WithContext(context.Background())
		sibling := dboptest.PgError("23505", "duplicate key value violates unique constraint")
		var errA error
		g.Go(func() error {
			op := dbop.Op[int](func(context.Context) (int, error) {
				return 0, dboptest.PgError("40P01", "deadlock detected")
			})
			_, errA = op.With(dbop.WithRetry(dbop.Constant(time.Hour))).Run(ctx)
			return errA
		})
		g.Go(func() error {
			time.Sleep(time.Second)
			return sibling
		})
		if err := g.Wait(); err != sibling {
			t.Fatalf("the group's error = %v, want the sibling's", err)
		}
		var re *dbop.RetryError
		if !errors.As(errA, &re) || re.Reason != error(sibling) {
			t.Fatalf("errA = %v: want a *RetryError whose Reason is the group's cause", errA)
		}
		var pgErr *pgconn.PgError
		if !errors.As(errA, &pgErr) || pgErr.Code != "40P01" {
			t.Errorf("errors.As(errA, &pgErr) found %v; want the last attempt's 40P01", pgErr)
		}
		if !errors.Is(errA, context.Canceled) || !errors.Is(errA, sibling) {
			t.Errorf("errA = %v: want it to match context.Canceled and reach the cause", errA)
		}
		if got := dbop.VerdictOf(errA); got != dbop.RetryTransaction {
			t.Errorf("VerdictOf(errA) = %v, want the last attempt's retry-transaction", got)
		}
	})
}
