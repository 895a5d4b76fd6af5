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
			h.lockWaitsLocked(fast, 0, true)
		}
		got := false
		for i := range leakWindow {
			d := fast
			if i%(leakWindow/c.slow) == 0 && i/(leakWindow/c.slow) < c.slow {
				d = slow
			}
			got = h.lockWaitsLocked(d, 0, c.alone) || got
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
		h.lockWaitsLocked(fast, 0, true)
	}
	h.waitedUntil = h.admitted + externalFor // another process seen
	for range 4 * epochLen {
		h.lockWaitsLocked(slow, 0, true)
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
		got = h.lockWaitsLocked(d, 0, true) || got
	}
	if !got {
		t.Error("once the other process was forgotten, 8 waits in 32 statements were not judged waits")
	}
}

// A process that starts beside another that takes the lock waits for it
// from its first statement: the fastest it learns are waits, and by them
// no wait looks slow. A statement that takes about as long as the rest of
// its attempt waited all the same; one that takes a round trip of several
// did not.
func TestHotSpotJudgesLockWaitsByTheirAttempt(t *testing.T) {
	for _, c := range []struct {
		name          string
		lock, attempt time.Duration
		want          bool
	}{
		{"every statement waited a transaction as long as the rest", time.Millisecond, 2 * time.Millisecond, true},
		{"every statement waited three quarters as long as the rest", 900 * time.Microsecond, 2100 * time.Microsecond, true},
		{"every statement waited half as long as the rest: a busy machine may", 600 * time.Microsecond, 1800 * time.Microsecond, false},
		{"no statement waited: a round trip of four", 100 * time.Microsecond, 500 * time.Microsecond, false},
		{"no statement waited, on a far server: a round trip of three", time.Millisecond, 4 * time.Millisecond, false},
		{"the attempt not timed", time.Millisecond, 0, false},
	} {
		h := HotSpot().(*hotSpot)
		h.mu.Lock()
		got := false
		for range leakWindow {
			got = h.lockWaitsLocked(c.lock, c.attempt, true) || got
		}
		h.mu.Unlock()
		if got != c.want {
			t.Errorf("%s (lock statements of %v in attempts of %v): judged waiting %v, want %v", c.name, c.lock, c.attempt, got, c.want)
		}
	}
}
