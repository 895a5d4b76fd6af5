package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// errCancelled is what PostgreSQL answers to a cancel request, and, when
// the signal of a statement_timeout arrives after its statement ended, to
// the next statement (docs/backends.md §1.8).
// Its message aside (dbop reads only the SQLSTATE), it is sqlStateError.
var errCancelled = &sqlStateError{"57014"}

// failsAfter returns an Op whose first attempt fails with err after d (or,
// if d is 0, after the statement limit derived from its context's
// deadline, as the adapters set it, and a millisecond more), and whose
// next succeeds; the errors retried, and the server deadline and the
// statement limit the first attempt saw, relative to its start.
func failsAfter(d time.Duration, err error) (op dbop.Op[int], calls *int, serverBound, stmtLimit *time.Duration) {
	calls, serverBound, stmtLimit = new(int), new(time.Duration), new(time.Duration)
	op = func(ctx context.Context) (int, error) {
		if *calls++; *calls > 1 {
			return *calls, nil
		}
		start := time.Now()
		if at, ok := hotlock.ServerDeadline(ctx); ok {
			*serverBound = at.Sub(start)
		}
		if dl, ok := ctx.Deadline(); ok {
			*stmtLimit, _ = hotlock.LimitFor(dl.Sub(start))
		}
		if d == 0 {
			d = *stmtLimit + time.Millisecond
		}
		time.Sleep(d)
		return 0, err
	}
	return op, calls, serverBound, stmtLimit
}

func retried(errs *[]error) dbop.RetryOption {
	return dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { *errs = append(*errs, e.Err) })
}

// wantServerLimit checks that err is the server's limit of limit reported
// as a cancel, retried as a statement timeout.
func wantServerLimit(t *testing.T, err error, limit time.Duration) {
	t.Helper()
	want := fmt.Sprintf("dbop: the server ended a statement at the attempt's limit (%v) and reported it as a cancel: %v", limit, errCancelled)
	if err == nil || err.Error() != want || !errors.Is(err, errCancelled) || dbop.VerdictOf(err) != dbop.RetryStatement {
		t.Errorf("retried %v (verdict %v), want %q wrapping the driver's error, RetryStatement", err, dbop.VerdictOf(err), want)
	}
}

// wantFinal runs, under ctx and with decorators, an Op whose first attempt
// fails with driverErr after d, and checks that the operation ends with
// driverErr itself after that one attempt.
func wantFinal(t *testing.T, ctx context.Context, d time.Duration, driverErr error, decorators ...dbop.Decorator) {
	t.Helper()
	op, calls, _, _ := failsAfter(d, driverErr)
	if _, err := op.With(decorators...).Run(ctx); err != driverErr || *calls != 1 {
		t.Errorf("got %v after %d calls; want the driver's error itself after 1", err, *calls)
	}
}

func TestWithTimeoutRetriesItsServerLimitReportedAsACancel(t *testing.T) {
	// WithTimeout(100ms): the adapters set the server's limits to 90ms
	// (the time left less a tenth, hotlock.LimitFor).
	const timeout, limit = 100 * time.Millisecond, 90 * time.Millisecond
	t.Run("after the limit: the server's limit, retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			op, calls, _, _ := failsAfter(95*time.Millisecond, errCancelled)
			var errs []error
			v, err := op.With(dbop.WithRetry(dbop.Constant(0), retried(&errs)), dbop.WithTimeout(timeout)).Run(context.Background())
			if v != 2 || err != nil || *calls != 2 {
				t.Fatalf("got %d, %v after %d calls; want 2, nil after 2", v, err, *calls)
			}
			wantServerLimit(t, errs[0], limit)
		})
	})
	t.Run("before the limit: a deliberate cancel, final", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			wantFinal(t, context.Background(), 50*time.Millisecond, errCancelled, dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(timeout))
		})
	})
	t.Run("another SQLSTATE after the limit: untouched", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			unique := &sqlStateError{"23505"}
			wantFinal(t, context.Background(), 95*time.Millisecond, unique, dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(timeout))
		})
	})
	t.Run("the caller's earlier deadline set the limits: untouched", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The caller's deadline, 100ms away, comes before
			// WithTimeout's 105ms: the server's limits came from the
			// caller's, and WithTimeout leaves the error as it is (with
			// 1ms left, another attempt could not run anyway).
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			wantFinal(t, ctx, 99*time.Millisecond, errCancelled, dbop.WithTimeout(105*time.Millisecond))
		})
	})
	t.Run("the caller cancelled: its cancel, final", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			op := dbop.Op[int](func(context.Context) (int, error) {
				time.Sleep(95 * time.Millisecond)
				cancel()
				return 0, errCancelled
			})
			_, err := op.With(dbop.WithTimeout(timeout)).Run(ctx)
			if err != error(errCancelled) {
				t.Errorf("got %v, want the driver's error itself", err)
			}
		})
	})
}

func TestHotSpotRetriesItsServerLimitReportedAsACancel(t *testing.T) {
	// PostgreSQL's statement_timeout, the limit that fails a statement
	// with 57014, is derived from the attempt's context, whose deadline
	// is its backstop (twice the bound and 50 ms); the bound is its
	// lock_timeout, whose error is 55P03.
	t.Run("after the statement limit: the server's limit, retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			op, calls, bound, limit := failsAfter(0, errCancelled)
			var errs []error
			v, err := op.With(dbop.WithRetry(dbop.Constant(0), retried(&errs)), dbop.HotSpot()).Run(context.Background())
			if *bound <= 0 || *limit <= *bound {
				t.Fatalf("the first attempt of a new HotSpot carried server deadline %v and statement limit %v; want both, the limit past the bound", *bound, *limit)
			}
			if v != 2 || err != nil || *calls != 2 {
				t.Fatalf("got %d, %v after %d calls; want 2, nil after 2", v, err, *calls)
			}
			wantServerLimit(t, errs[0], *limit)
		})
	})
	t.Run("before the bound: a deliberate cancel, final", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			wantFinal(t, context.Background(), time.Millisecond, errCancelled, dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
		})
	})
	t.Run("past the bound, before the statement limit: a deliberate cancel, final", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// A new HotSpot's bound is 200 ms, its statement limit 405 ms.
			wantFinal(t, context.Background(), 300*time.Millisecond, errCancelled, dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
		})
	})
}
