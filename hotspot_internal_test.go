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
		for range 64 { // the fastest, learnt from attempts admitted alone
			h.lockWaitsLocked(fast, true)
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

// While another process is seen, both take the lock one after the other and
// every statement waits: those statements do not teach the HotSpot what a
// statement that waits for nobody takes, or, the other process forgotten,
// no wait for it would look slow.
func TestHotSpotLearnsTheFastestLockStatementsAlone(t *testing.T) {
	const fast, slow = 100 * time.Microsecond, time.Millisecond
	h := HotSpot().(*hotSpot)
	h.mu.Lock()
	defer h.mu.Unlock()
	for range 64 {
		h.lockWaitsLocked(fast, true)
	}
	h.waitedUntil = h.admitted + externalFor // another process seen
	for range 4 * epochLen {
		h.lockWaitsLocked(slow, true)
	}
	if got := h.lockFastest.get(); got != fast {
		t.Errorf("after the statements waited for another process, the fastest is %v, want %v", got, fast)
	}
	h.waitedUntil = 0 // forgotten
	got := false
	for i := range leakWindow {
		d := fast
		if i%4 == 0 {
			d = slow
		}
		got = h.lockWaitsLocked(d, true) || got
	}
	if !got {
		t.Error("once the other process was forgotten, 8 waits in 32 statements were not judged waits")
	}
}
