package dbop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
)

// The caller's context ends after the retry decided to run again (here in
// its OnRetry hook; as well while an Observer reports the attempt, or while
// the retry's goroutine waits to be scheduled) and the wait before the next
// attempt has elapsed by then: the wait's select found both the timer and
// the context ready, and chose at random, so about one time in two the
// retry ran another attempt with the caller's context done — which
// WithRetry promises never to do. It must stop every time, with the
// context's cause as the reason.
func TestRetryStopsWhenTheContextEndedAsTheWaitEnded(t *testing.T) {
	for i := range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		op := dbop.Op[int](func(ctx context.Context) (int, error) {
			calls++
			if calls > 1 {
				t.Errorf("run %d: attempt %d started with the caller's context done (%v)", i, calls, ctx.Err())
			}
			return 0, dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction)
		})
		_, err := op.With(dbop.WithRetry(dbop.Constant(time.Nanosecond), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) {
			cancel()
			time.Sleep(time.Microsecond) // the wait has elapsed when it starts
		}))).Run(ctx)
		if re := (*dbop.RetryError)(nil); !errors.As(err, &re) || !errors.Is(err, context.Canceled) {
			t.Errorf("run %d: err = %v, want a RetryError whose reason is the cancellation", i, err)
		}
		if t.Failed() {
			return
		}
	}
}
