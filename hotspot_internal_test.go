package dbop

import (
	"testing"
	"time"
)

// A lock statement of an attempt admitted alone that took long may be a
// wait for another process's transaction, or a busy machine: only when
// more than one in eight of a window of 32 did is another process taken
// to hold the lock. Attempts admitted beside others wait for each other,
// and say nothing of other processes.
func TestHotSpotJudgesLockWaitsByTheirShare(t *testing.T) {
	const fast, slow = 100 * time.Microsecond, time.Millisecond
	for _, c := range []struct {
		name  string
		slow  int
		alone bool
		want  bool
	}{
		{"one slow statement in 32", 1, true, false},
		{"four slow in 32", 4, true, false},
		{"five slow in 32", 5, true, true},
		{"half of them slow", 16, true, true},
		{"all slow, beside other attempts", 32, false, false},
	} {
		h := HotSpot().(*hotSpot)
		h.mu.Lock()
		for range 64 { // the fastest, over two epochs' worth
			h.lockWaitsLocked(fast, false)
		}
		got := false
		for i := range leakWindow {
			d := fast
			if i%(leakWindow/c.slow) == 0 && i/(leakWindow/c.slow) < c.slow {
				d = slow
			}
			got = h.lockWaitsLocked(d, c.alone) || got
		}
		h.mu.Unlock()
		if got != c.want {
			t.Errorf("%s: judged waiting %v, want %v", c.name, got, c.want)
		}
	}
}
