package dbop_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
)

// TestHotSpotLetsSlowWorkFinish: a HotSpot bounds its attempts while it
// starts, at 200 ms and a backstop of 450 ms before it has seen one
// succeed; work that takes longer, with one caller and nothing else
// running, must still succeed. The attempt after one that timed out gets
// twice the bound, and the HotSpot learns from the success what its
// attempts take, so that later operations succeed at their first attempt.
// The work is a transaction of a scope of dbop's, or an Op of the user's
// own under an Idempotent retry (without it, a cut of such an Op is
// Ambiguous and not run again: TestHotSpotCutOfAnOpOfYourOwnIsAmbiguous).
func TestHotSpotLetsSlowWorkFinish(t *testing.T) {
	for _, c := range []struct {
		work  time.Duration
		owned bool // run by a scope of dbop's; else an Op of your own, Idempotent
	}{
		{600 * time.Millisecond, true}, {3 * time.Second, true},
		{600 * time.Millisecond, false}, {3 * time.Second, false},
	} {
		work := c.work
		t.Run(fmt.Sprintf("%v/owned=%v", work, c.owned), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var opts []dbop.RetryOption
				if !c.owned {
					opts = append(opts, dbop.Idempotent())
				}
				pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), append(opts, dbop.MaxAttempts(6))...), dbop.HotSpot())
				runs := 0
				body := func(ctx context.Context) (int, error) {
					runs++
					select {
					case <-time.After(work):
						return 1, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				slow := dbop.Op[int](body)
				if c.owned {
					slow = scoped(body)
				}
				for i := range 5 {
					before := runs
					v, err := slow.With(pipeline).Run(context.Background())
					if err != nil || v != 1 {
						t.Fatalf("operation %d (one caller, nothing else running, %v of work): %d, %v after %d attempts", i, work, v, err, runs-before)
					}
					if i > 0 && runs-before != 1 {
						t.Errorf("operation %d took %d attempts; want 1, the HotSpot having seen the first succeed", i, runs-before)
					}
				}
			})
		})
	}
}
