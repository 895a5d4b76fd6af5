package dbop_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
)

// isTimeout reports whether err carries a *dbop.TimeoutError: a deadline
// set by a WithTimeout fired.
func isTimeout(err error) bool {
	_, ok := errors.AsType[*dbop.TimeoutError](err)
	return ok
}

func TestWithTimeout(t *testing.T) {
	t.Run("the cause tells the attempt timeout from the caller's deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			drv := &driverError{code: "57014"}
			var cause error
			op := dbop.Op[int](func(ctx context.Context) (int, error) {
				<-ctx.Done()
				cause = context.Cause(ctx)
				return 0, drv
			})
			_, err := op.With(dbop.WithTimeout(2 * time.Second)).Run(context.Background())
			var te *dbop.TimeoutError
			if !errors.As(cause, &te) || te.Timeout != 2*time.Second {
				t.Errorf("context cause = %v, want a *TimeoutError of 2s", cause)
			}
			if !errors.As(err, &te) || te.Timeout != 2*time.Second || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, drv) {
				t.Errorf("err = %v: want a *TimeoutError of 2s, DeadlineExceeded and the driver error", err)
			}
		})
	})
	t.Run("the caller's earlier deadline is not reported as ours", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			op := dbop.Op[int](func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			})
			_, err := op.With(dbop.WithTimeout(time.Hour)).Run(ctx)
			if err != context.DeadlineExceeded || isTimeout(err) {
				t.Errorf("err = %#v, want the caller's plain DeadlineExceeded", err)
			}
		})
	})
	t.Run("success within the limit is untouched", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			op := dbop.Op[int](func(context.Context) (int, error) {
				time.Sleep(time.Second)
				return 1, nil
			})
			if v, err := op.With(dbop.WithTimeout(2 * time.Second)).Run(context.Background()); v != 1 || err != nil {
				t.Errorf("got %d, %v", v, err)
			}
		})
	})
	t.Run("per attempt inside the retry: retried until success", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			op := dbop.Op[int](func(ctx context.Context) (int, error) {
				if calls++; calls <= 2 {
					<-ctx.Done()
					return 0, ctx.Err()
				}
				return calls, nil
			})
			start := time.Now()
			v, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(time.Second)).Run(context.Background())
			if v != 3 || err != nil || time.Since(start) != 2*time.Second {
				t.Errorf("got %d, %v after %v; want 3, nil after 2s", v, err, time.Since(start))
			}
		})
	})
}
