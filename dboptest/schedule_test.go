package dboptest_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
)

// backoffFunc is a fake Backoff.
type backoffFunc func(n int, prev time.Duration, random uint64) time.Duration

func (f backoffFunc) Delay(n int, prev time.Duration, random uint64) time.Duration {
	return f(n, prev, random)
}

// constSource is a rand.Source that always returns the same word.
type constSource uint64

func (s constSource) Uint64() uint64 { return uint64(s) }

func TestSchedule(t *testing.T) {
	t.Run("the delays of a deterministic Backoff", func(t *testing.T) {
		got := dboptest.Schedule(dbop.Exponential(100*time.Millisecond, time.Second), 6, nil)
		want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("reproducible with a seeded source", func(t *testing.T) {
		b := dbop.FullJitter(dbop.DecorrelatedJitter(10*time.Millisecond, time.Second))
		first := dboptest.Schedule(b, 20, rand.NewPCG(1, 2))
		second := dboptest.Schedule(b, 20, rand.NewPCG(1, 2))
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("two schedules from rand.NewPCG(1, 2) differ (-first +second):\n%s", diff)
		}
		other := dboptest.Schedule(b, 20, rand.NewPCG(2, 1))
		if cmp.Equal(first, other) {
			t.Errorf("schedules from different seeds are equal: %v", first)
		}
	})
	t.Run("random words reach the Backoff", func(t *testing.T) {
		b := dbop.DecorrelatedJitter(time.Second, time.Minute)
		got := [][]time.Duration{dboptest.Schedule(b, 5, constSource(0)), dboptest.Schedule(b, 5, constSource(math.MaxUint64))}
		want := [][]time.Duration{
			{time.Second, time.Second, time.Second, time.Second, time.Second},
			{3 * time.Second, 9 * time.Second, 27 * time.Second, time.Minute, time.Minute},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("feeds each delay back as prev", func(t *testing.T) {
		type call struct {
			N      int
			Prev   time.Duration
			Random uint64
		}
		var calls []call
		b := backoffFunc(func(n int, prev time.Duration, random uint64) time.Duration {
			calls = append(calls, call{n, prev, random})
			return time.Duration(n) * time.Second
		})
		src := rand.NewPCG(5, 6)
		got := dboptest.Schedule(b, 3, rand.NewPCG(5, 6))
		if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, got); diff != "" {
			t.Errorf("delays mismatch (-want +got):\n%s", diff)
		}
		want := []call{{1, 0, src.Uint64()}, {2, time.Second, src.Uint64()}, {3, 2 * time.Second, src.Uint64()}}
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Errorf("calls mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("clamps a negative delay like the retry loop", func(t *testing.T) {
		var prevs []time.Duration
		b := backoffFunc(func(_ int, prev time.Duration, _ uint64) time.Duration {
			prevs = append(prevs, prev)
			return -time.Second
		})
		got := dboptest.Schedule(b, 2, nil)
		if diff := cmp.Diff([]time.Duration{0, 0}, got); diff != "" {
			t.Errorf("delays mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]time.Duration{0, 0}, prevs); diff != "" {
			t.Errorf("prev values mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("nil source uses the global generator", func(t *testing.T) {
		got := dboptest.Schedule(dbop.FullJitter(dbop.Constant(time.Hour)), 100, nil)
		if len(got) != 100 {
			t.Fatalf("len = %d, want 100", len(got))
		}
		for i, d := range got {
			if d < 0 || d > time.Hour {
				t.Errorf("delay %d = %v, want within [0, 1h]", i, d)
			}
		}
	})
	for _, n := range []int{0, -1, math.MinInt} {
		t.Run(fmt.Sprintf("n %d gives nil", n), func(t *testing.T) {
			if got := dboptest.Schedule(dbop.Constant(time.Second), n, nil); got != nil {
				t.Errorf("Schedule(_, %d, nil) = %v, want nil", n, got)
			}
		})
	}
	t.Run("a nil Backoff panics", func(t *testing.T) {
		defer func() {
			msg, _ := recover().(string)
			if !strings.HasPrefix(msg, "dboptest: Schedule:") || !strings.Contains(msg, "nil") {
				t.Errorf("panic = %q, want a dboptest: Schedule: message about the nil Backoff", msg)
			}
		}()
		dboptest.Schedule(nil, 3, nil)
		t.Error("no panic")
	})
}
