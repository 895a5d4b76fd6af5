package dbop_test

// A Flight's shared run and a HotSpot's attempts: an attempt never joins
// a run that may wait for its own slot, and a run carries nothing of the
// attempt of the caller that started it.

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// TestShareInsideAHotSpotAttemptDoesNotJoinARunWaitingForItsSlot: a HotSpot documents
// that an operation run inside an attempt it admitted is let through,
// "since waiting for a slot while holding ... a slot could wait for ever"
// (TestHotSpotLetsThroughAnAttemptInsideItsOwn). A read shared through a
// Flight and decorated with the same HotSpot escapes that rule: caller A
// (an HTTP GET, outside any attempt) starts the shared run, which queues
// for the HotSpot's slot; caller B, whose attempt holds that slot, runs the
// same read (a Then's first step, say). Joining A's run, B would wait for
// it while A's run waits for B's slot; once the HotSpot coordinates
// processes (its steady state where another process writes the rows) its
// attempts carry no deadline of its own, and both would wait until B's
// caller gives up: here, an hour. Inside an attempt the Share runs the read
// itself, let through by the HotSpot.
func TestShareInsideAHotSpotAttemptDoesNotJoinARunWaitingForItsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hot := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
		take := func(ctx context.Context) { // a transaction scope taking the HotSpot's lock
			if req := hotlock.From(ctx); req != nil && req.Claim() {
				req.Took()
			}
		}
		// Another process is seen (an attempt alone lost a conflict), and
		// the scopes take the lock: the HotSpot coordinates, one attempt
		// at a time, with no deadline of its own.
		n := 0
		if _, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			take(ctx)
			if n++; n == 1 {
				return 0, errConflict
			}
			time.Sleep(time.Millisecond)
			return 1, nil
		}).With(hot).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			dbop.Op[int](func(ctx context.Context) (int, error) {
				take(ctx)
				time.Sleep(time.Millisecond)
				return 1, nil
			}).With(hot).Run(t.Context())
		}

		var flight dbop.Flight
		balance := dbop.Op[int](func(ctx context.Context) (int, error) {
			take(ctx)
			time.Sleep(time.Millisecond)
			return 42, nil
		}).With(flight.Share("balance:1"), hot)

		inSlot, goOn := make(chan struct{}), make(chan struct{})
		var errB error
		var tookB time.Duration
		doneB := make(chan struct{})
		go func() { // B: a transfer whose first step reads the balance
			defer close(doneB)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			start := time.Now()
			_, errB = dbop.Op[int](func(ctx context.Context) (int, error) {
				close(inSlot)
				<-goOn
				b, err := balance.Run(ctx)
				if err != nil {
					return 0, err
				}
				take(ctx)
				return b, nil
			}).With(hot).Run(ctx)
			tookB = time.Since(start)
		}()
		<-inSlot
		doneA := make(chan error, 1)
		go func() { // A: GET /balance
			_, err := balance.Run(context.Background())
			doneA <- err
		}()
		synctest.Wait() // A's shared run waits for the slot B holds
		close(goOn)
		<-doneB
		errA := <-doneA
		if errB != nil || errA != nil {
			t.Errorf("B: %v; A: %v", errB, errA)
		}
		if tookB > time.Minute {
			t.Errorf("B's transfer waited %v (until its context ended: %v) for a shared run that waited for B's own slot; A: %v", tookB, errB, errA)
		}
	})
}

// TestSharedRunDoesNotShareTheStartersRetryState: a retry with a HotSpot listed
// inside it keeps one *retryState for the operation and writes its attempt
// number before each attempt (retry.go, rs.attempt = n + 1); the HotSpot
// reads it when it admits and bounds an attempt (hotspot.go, admit and
// bound). A Flight listed between them runs the attempt on a goroutine of
// its own, with the starting caller's context, rs included, and that run
// outlives the caller's attempt when another caller waits for it. Were
// rs in the run's context, the caller's retry would write rs.attempt while
// the run, admitted late, reads it: a data race (the race detector, as CI
// runs the tests, reports it). TestSharedRunCarriesNoAttemptValues checks
// the context itself.
func TestSharedRunDoesNotShareTheStartersRetryState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hot := dbop.HotSpot()
		var flight dbop.Flight
		read := dbop.Op[int](func(ctx context.Context) (int, error) {
			time.Sleep(time.Millisecond)
			return 1, nil
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(6)), dbop.WithTimeout(20*time.Millisecond), flight.Share("k"), hot)

		gate := make(chan struct{})
		go dbop.Op[int](func(ctx context.Context) (int, error) { // holds the HotSpot's only slot
			<-gate
			return 1, nil
		}).With(dbop.WithRetry(dbop.Constant(0)), hot).Run(context.Background())
		synctest.Wait()

		done := make(chan error, 2)
		go func() { _, err := read.Run(context.Background()); done <- err }() // caller 1
		time.Sleep(30 * time.Millisecond)                                     // caller 1's attempt 2 has started the run, with its retryState
		go func() {                                                           // caller 2 joins that run and keeps it going
			_, err := read.Run(context.Background())
			done <- err
		}()
		time.Sleep(20 * time.Millisecond) // caller 1's retry writes its next attempt number
		close(gate)                       // the run is admitted, and reads it
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
}
