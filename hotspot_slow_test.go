package dbop_test

import (
	"context"
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
func TestHotSpotLetsSlowWorkFinish(t *testing.T) {
	for _, work := range []time.Duration{600 * time.Millisecond, 3 * time.Second} {
		t.Run(work.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(6)), dbop.HotSpot())
				runs := 0
				slow := dbop.Op[int](func(ctx context.Context) (int, error) {
					runs++
					select {
					case <-time.After(work):
						return 1, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				})
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
