package dbop_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
)

// TestAllInsideATransactionRunsOneOpAtATime: inside a transaction the ops
// of All and AllKeyed share it, and their savepoint scopes would share
// names, so they run one at a time, in order, whatever the limit. Each op
// waits a moment for another to start beside it; none may.
func TestAllInsideATransactionRunsOneOpAtATime(t *testing.T) {
	for _, limit := range []int{0, 2, 3} {
		var running, overlaps atomic.Int32
		var order []int
		op := func(i int) dbop.Op[int] {
			return func(ctx context.Context) (int, error) {
				if running.Add(1) > 1 {
					overlaps.Add(1)
				}
				defer running.Add(-1)
				order = append(order, i) // no lock: one at a time, or the race detector reports it
				select {
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
				}
				return i, nil
			}
		}
		ctx := dbop.WithinTx(t.Context())
		got, err := dbop.All(limit, op(1), op(2), op(3)).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := overlaps.Load(); n > 0 {
			t.Errorf("limit %d: %d ops started while another ran inside the transaction", limit, n)
		}
		if want := []int{1, 2, 3}; len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 || got[0] != 1 || got[2] != 3 {
			t.Errorf("limit %d: ran %v, results %v; want %v in order", limit, order, got, want)
		}
		keyed, err := dbop.AllKeyed(limit, map[string]dbop.Op[int]{"a": op(1), "b": op(2)}).Run(ctx)
		if err != nil || keyed["a"] != 1 || keyed["b"] != 2 {
			t.Fatalf("AllKeyed: %v, %v", keyed, err)
		}
		if n := overlaps.Load(); n > 0 {
			t.Errorf("limit %d: AllKeyed: %d ops started while another ran inside the transaction", limit, n)
		}
	}
	// Outside a transaction the ops still run side by side.
	var running, most atomic.Int32
	side := func(ctx context.Context) (int, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		return 0, nil
	}
	if _, err := dbop.All(0, dbop.Op[int](side), side, side).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if most.Load() < 2 {
		t.Errorf("outside a transaction All ran at most %d op at a time", most.Load())
	}
}
