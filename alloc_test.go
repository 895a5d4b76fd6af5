//go:build !race

package dbop_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
)

// The race detector instruments allocations, so these counts hold only in
// ordinary builds. They count allocations, never time.
func TestAllocations(t *testing.T) {
	ctx := context.Background()
	var n int
	flaky := dbop.Op[int](func(context.Context) (int, error) {
		if n++; n%3 != 0 {
			return 0, errBusy
		}
		return 1, nil
	})
	ok := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	tests := []struct {
		name string
		op   dbop.Op[int]
		max  float64
	}{
		{"success through retry, classify and hook", ok.With(benchPipeline()), 0},
		{"success through a nested pipeline", ok.With(dbop.Chain(benchPipeline(), dbop.Before(noopHook))), 0},
		{"two transient failures then success", flaky.With(dbop.WithRetry(dbop.Constant(0)), dbop.ClassifyBy(classifyFn), dbop.Before(noopHook)), 3},
		{"success through retry with a budget and a bulkhead", ok.With(dbop.WithRetry(dbop.Constant(0), dbop.WithBudget(&dbop.Budget{Ratio: 0.1})), dbop.Bulkhead(4)), 0},
		{"success through retry with a zero budget", ok.With(dbop.WithRetry(dbop.Constant(0), dbop.WithBudget(new(dbop.Budget)))), 0},
		{"success through retry and a HotSpot that saw no conflict lately", ok.With(benchPipeline(), dbop.HotSpot()), 0},
		{"observer absent, budget-free jittered backoff", ok.With(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, time.Second)))), 0},
		// Then's count of what its steps commit is its one allocation.
		{"success of a Then under a retry", dbop.Then(ok, func(context.Context, int) (int, error) { return 2, nil }).With(benchPipeline()), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Warm up: a HotSpot starts cautious, and lets attempts
			// through at once after calm successes.
			for range 1000 {
				tt.op.Run(ctx)
			}
			got := testing.AllocsPerRun(200, func() {
				if _, err := tt.op.Run(ctx); err != nil {
					t.Fatal(err)
				}
			})
			if got > tt.max {
				t.Errorf("%v allocations per call, want at most %v", got, tt.max)
			}
		})
	}
}
