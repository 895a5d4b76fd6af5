package dbop_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
)

// An Idempotent retry that ends, after an attempt whose outcome was
// unknown, on an attempt's error that is itself a *RetryError (an inner
// retry's, run through a Flight) must not write the unknown outcome into
// that error: the Op returned it, and others hold it — here the other
// caller of the shared run, whose own work had no unknown outcome, and
// who reads it at the same time (a data race under -race).
func TestRetryDoesNotChangeTheAttemptsRetryError(t *testing.T) {
	commitLost := dbop.Classify(errors.New("commit: connection reset"), dbop.Ambiguous)
	deadlock := dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction)

	// run plays the scenario once; shared reports whether B joined A's
	// run, without which it proves nothing.
	run := func() (errA, errB error, shared bool) {
		var flight dbop.Flight
		var calls atomic.Int32
		bKeyed := make(chan struct{})
		read := dbop.Op[int](func(ctx context.Context) (int, error) {
			if calls.Add(1) == 1 {
				<-bKeyed                          // B is about to join
				time.Sleep(20 * time.Millisecond) // and has joined
			}
			return 0, deadlock
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))

		ctxA, cancelA := context.WithCancel(context.Background())
		defer cancelA()
		started := make(chan struct{})
		attemptsA := 0
		callerA := dbop.Op[int](func(ctx context.Context) (int, error) {
			if attemptsA++; attemptsA == 1 {
				return 0, commitLost // the first attempt's COMMIT answer was lost
			}
			close(started)
			return read.With(flight.Share("k")).Run(ctx)
		}).With(
			dbop.WithRetry(dbop.Constant(0), dbop.Idempotent()),
			// A's caller gives up as the shared run's error comes
			// back, so A's retry ends on that very error.
			dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
				err := next(ctx)
				if attemptsA == 2 {
					cancelA()
				}
				return err
			}),
		)
		callerB := read.With(flight.ShareBy(func(context.Context) (string, bool) {
			close(bKeyed)
			return "k", true
		}))

		var wg sync.WaitGroup
		wg.Go(func() { _, errA = callerA.Run(ctxA) })
		wg.Go(func() {
			<-started
			time.Sleep(5 * time.Millisecond) // A's run is in flight
			_, errB = callerB.Run(context.Background())
			_ = errB.Error() // what a logger does with it
		})
		wg.Wait()
		return errA, errB, calls.Load() == 2
	}

	for range 20 {
		errA, errB, shared := run()
		if !shared {
			continue // B started a run of its own: play it again
		}
		var reB *dbop.RetryError
		if !errors.As(errB, &reB) {
			t.Fatalf("errB = %v: want the shared run's *RetryError", errB)
		}
		if dbop.VerdictOf(errA) != dbop.Ambiguous || !errors.Is(errA, commitLost) || !errors.Is(errA, reB) {
			t.Errorf("A's error %v (%v) must keep its own unknown outcome and reach the shared run's error", errA, dbop.VerdictOf(errA))
		}
		if reB.Unknown != nil || strings.Contains(errB.Error(), "may have been applied") || dbop.VerdictOf(errB) == dbop.Ambiguous {
			t.Errorf("B's error %q (%v) carries A's unknown outcome: A's retry changed the error the shared run returned",
				errB, dbop.VerdictOf(errB))
		}
		return
	}
	t.Fatal("B never joined A's run in 20 tries: the test proves nothing")
}
