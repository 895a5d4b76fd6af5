package dbop_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

// A driver that answers a context's end with a cancel request (pgx with
// pgconn.CancelRequestContextWatcherHandler, docs/backends.md §2.7) makes
// PostgreSQL end the statement with 57014 "canceling statement due to user
// request", which the classifiers call a cancel on purpose. When the
// context that ended is a per-attempt WithTimeout's, the cancel is the
// deadline's: the retry goes on, whichever side of the WithTimeout the
// ClassifyBy is listed.
func TestPerAttemptDeadlineAnsweredByACancelIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   []dbop.Decorator
	}{
		{"classify outside the timeout", []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)),
			dbop.ClassifyBy(classifiers.Postgres), dbop.WithTimeout(time.Second)}},
		{"classify inside the timeout", []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)),
			dbop.WithTimeout(time.Second), dbop.ClassifyBy(classifiers.Postgres)}},
		{"no classifier", []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)),
			dbop.WithTimeout(time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cancelled := dboptest.PgError("57014", "canceling statement due to user request")
				calls := 0
				op := dbop.Op[int](func(ctx context.Context) (int, error) {
					calls++
					<-ctx.Done() // the statement runs until the driver's cancel request ends it
					return 0, cancelled
				})
				_, err := op.With(tc.ds...).Run(context.Background())
				if calls != 3 || !errors.Is(err, dbop.ErrRetriesExhausted) || !errors.Is(err, cancelled) || !isTimeout(err) {
					t.Errorf("%d attempts, err = %v (%v); want 3 attempts, each cut by its deadline, and ErrRetriesExhausted",
						calls, err, dbop.VerdictOf(err))
				}
			})
		})
	}
	// The caller's own deadline is not the attempt's: its cancel is final.
	t.Run("the caller's deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			calls := 0
			op := dbop.Op[int](func(ctx context.Context) (int, error) {
				calls++
				<-ctx.Done()
				return 0, dboptest.PgError("57014", "canceling statement due to user request")
			})
			_, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.ClassifyBy(classifiers.Postgres), dbop.WithTimeout(time.Second)).Run(ctx)
			if calls != 1 || isTimeout(err) || dbop.VerdictOf(err).Retryable() {
				t.Errorf("%d attempts, err = %v (%v); want one attempt, not a timeout of ours", calls, err, dbop.VerdictOf(err))
			}
		})
	})
}
