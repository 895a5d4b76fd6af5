package dbop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
)

// A lock statement of an attempt admitted alone that took long may be a
// wait for another process's transaction, or a busy machine: only when
// more than one in eight of a window of 32 did is another process taken
// to hold the lock. Attempts admitted beside others wait for each other,
// and say nothing of other processes.
func TestHotSpotJudgesLockWaitsByTheirShare(t *testing.T) {
	const fast, slow, attempt = 100 * time.Microsecond, time.Millisecond, 2 * time.Millisecond
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
		for range 64 {
			h.lockWaitsLocked(fast, attempt, true)
		}
		got := false
		for i := range leakWindow {
			d := fast
			if i%(leakWindow/c.slow) == 0 && i/(leakWindow/c.slow) < c.slow {
				d = slow
			}
			got = h.lockWaitsLocked(d, attempt, c.alone) || got
		}
		h.mu.Unlock()
		if got != c.want {
			t.Errorf("%s: judged waiting %v, want %v", c.name, got, c.want)
		}
	}
}

// On a busy machine a lone process's BEGIN and its lock take their round
// trip at best and several times that now and then, a small part of the
// attempt all the same: no other process is there, however many of them
// are slow beside the fastest. Seen live on 2 cores: 60 µs at best, more
// than 370 µs in more than one in eight, in attempts of about a
// millisecond; taken for waits, they made a lone process take the lock on
// every attempt for the rest of its run.
func TestHotSpotTakesNoBusyMachineForAnotherProcess(t *testing.T) {
	const fast, busy, attempt = 60 * time.Microsecond, 400 * time.Microsecond, 1200 * time.Microsecond
	h := HotSpot().(*hotSpot)
	h.mu.Lock()
	defer h.mu.Unlock()
	got := false
	for i := range 8 * leakWindow {
		d := fast
		if i%4 == 0 { // one in four, eight in every window
			d = busy
		}
		got = h.lockWaitsLocked(d, attempt, true) || got
	}
	if got {
		t.Errorf("lock statements of %v and, one in four, %v, in attempts of %v, were judged waits for another process", fast, busy, attempt)
	}
}

// A probe comes upon the transaction of a process that takes the lock at a
// random moment of it, and waits for what is left: most often less than
// half of the rest of its own attempt, which is no wait by its share (a
// simulation's probes waited 70 to 650 µs in attempts of a millisecond,
// TestHotSpotFindsAProcessThatCameBack). Longer than twice the fastest lock
// statement lately plus 250 µs, it makes the next attempt admitted alone
// ask for the lock too, which then waits for the other process's whole
// next transaction; it is no wait itself. Shorter, it asks for nothing.
func TestHotSpotAsksAgainAfterAProbeThatWaitedLittle(t *testing.T) {
	const fast, attempt = 50 * time.Microsecond, 1600 * time.Microsecond
	for _, c := range []struct {
		name string
		lock time.Duration
		asks bool
	}{
		{"the end of another's transaction", 440 * time.Microsecond, true},
		{"a free lock", 60 * time.Microsecond, false},
	} {
		h := HotSpot().(*hotSpot)
		h.mu.Lock()
		// Limiting, past its first probes; no other process seen.
		h.admitted = 10 * probation
		h.externalUntil, h.probes, h.probed = 0, 0, true
		for range 16 {
			h.lockWaitsLocked(fast, attempt, true)
		}
		waited := h.lockWaitsLocked(c.lock, attempt, true)
		h.mu.Unlock()
		if waited {
			t.Errorf("%s: a lock statement of %v in an attempt of %v was judged a wait", c.name, c.lock, attempt)
		}
		var req *hotlock.Request
		if err := h.run(context.Background(), func(ctx context.Context) error {
			req = hotlock.From(ctx)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if asked := req != nil; asked != c.asks {
			t.Errorf("%s (a lock statement of %v, the fastest %v): the next attempt admitted alone, not one in probeEvery, asked for the lock: %v, want %v", c.name, c.lock, fast, asked, c.asks)
		}
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

// A probe, an attempt that asks for the lock only so that the HotSpot
// learns whether another process takes it, gets no bound on its lock waits
// after the lock that the HotSpot's other attempts do not get: the bound's
// statement costs a PostgreSQL server more than the lock itself. While the
// attempts ask for the lock to be put in order (another process seen), or
// need a deadline anyway (the first admissions after the HotSpot begins to
// limit), the coordinated ones are bounded after the lock.
func TestHotSpotBoundsAProbeOnlyWhereAttemptsAreBounded(t *testing.T) {
	for _, c := range []struct {
		name  string
		state func(h *hotSpot)
		bound bool
	}{
		{"a probe while attempts run unbounded", func(h *hotSpot) {}, false},
		{"while attempts lose conflicts to another process", func(h *hotSpot) {
			h.yieldUntil = h.admitted + externalFor
		}, true},
		{"a probe while the HotSpot has just begun to limit", func(h *hotSpot) {
			h.externalUntil = h.admitted + probation
		}, true},
	} {
		h := HotSpot().(*hotSpot)
		h.mu.Lock()
		// Limiting, past its first admissions, the first probe done; the
		// next admission is one in probeEvery.
		h.admitted = 10*probation + probeEvery - 1
		h.externalUntil, h.probes, h.probed = 0, 0, true
		c.state(h)
		h.mu.Unlock()
		var req *hotlock.Request
		err := h.run(context.Background(), func(ctx context.Context) error {
			req = hotlock.From(ctx)
			return nil
		})
		switch {
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case req == nil:
			t.Errorf("%s: the attempt did not ask for the lock", c.name)
		case (req.Bound > 0) != c.bound:
			t.Errorf("%s: the lock request's bound is %v, want one: %v", c.name, req.Bound, c.bound)
		}
	}
}

// TestHotSpotBoundGrowsPastItsCapOnlyAfterTimeouts: the retry of an
// attempt that lost a conflict gets twice the bound, up to 200 ms (a lock
// cycle is still cut well before PostgreSQL's detector); the retry of one
// that timed out gets twice that one's bound, past 200 ms (slow work, or
// a wait the same bound would cut again); and the bound is never below
// what successful attempts take.
func TestHotSpotBoundGrowsPastItsCapOnlyAfterTimeouts(t *testing.T) {
	h := HotSpot().(*hotSpot)
	ms := time.Millisecond
	for _, c := range []struct {
		name string
		rs   *retryState
		want time.Duration
	}{
		{"first attempt, nothing learnt", nil, 200 * ms},
		{"fifth attempt after conflicts", &retryState{attempt: 5}, 200 * ms},
		{"second attempt after a timeout", &retryState{attempt: 2, timedOut: true}, 400 * ms},
		{"third after two", &retryState{attempt: 3, timedOut: true, bound: 400 * ms}, 800 * ms},
		{"after a timeout, then a conflict", &retryState{attempt: 4, bound: 800 * ms}, 200 * ms},
		{"far past the cap", &retryState{attempt: 40, timedOut: true, bound: 40 * time.Second}, time.Minute},
	} {
		if got := h.bound(c.rs); got != c.want {
			t.Errorf("unsampled, %s: bound %v, want %v", c.name, got, c.want)
		}
	}
	h.srtt, h.rttvar, h.sampled = float64(10*ms), float64(ms), true
	for _, c := range []struct {
		name string
		rs   *retryState
		want time.Duration
	}{
		{"first attempt", nil, 14 * ms},
		{"third attempt after conflicts", &retryState{attempt: 3}, 56 * ms},
		{"sixth attempt after conflicts", &retryState{attempt: 6}, 200 * ms},
		{"second attempt after a timeout", &retryState{attempt: 2, timedOut: true}, 28 * ms},
	} {
		if got := h.bound(c.rs); got != c.want {
			t.Errorf("successes of 10 ms ± 1, %s: bound %v, want %v", c.name, got, c.want)
		}
	}
	h.srtt, h.rttvar = float64(600*ms), float64(100*ms)
	if got := h.bound(&retryState{attempt: 3}); got != time.Second {
		t.Errorf("successes of 600 ms ± 100, third attempt after conflicts: bound %v, want 1s (what they take, not 200 ms)", got)
	}
}

// TestHotSpotEscalatesOnStatementsNotLockWaits: what makes the next
// attempt's bound at least twice the last one's. A lock timeout (55P03)
// is the bound ending a wait that may be a lock cycle: the next bound
// must end the next one as soon.
func TestHotSpotEscalatesOnStatementsNotLockWaits(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"the backstop fired", &TimeoutError{Timeout: 450 * time.Millisecond, Err: context.DeadlineExceeded}, true},
		{"a statement timeout", Classify(sqlStateErr("57014"), RetryStatement), true},
		{"MariaDB's max_statement_time", Classify(errors.New("Error 1969 (70100)"), RetryStatement), true},
		{"a lock timeout", Classify(sqlStateErr("55P03"), RetryStatement), false},
		{"a serialization failure", Classify(sqlStateErr("40001"), RetryTransaction), false},
		{"a final error", sqlStateErr("23505"), false},
	} {
		if got := escalates(c.err); got != c.want {
			t.Errorf("%s: escalates %v, want %v", c.name, got, c.want)
		}
	}
}

type sqlStateErr string

func (e sqlStateErr) Error() string    { return "SQLSTATE " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

// TestHotSpotIgnoresAnotherHotSpotsRetry: a retryState in the context is
// the operation of the HotSpot listed inside its retry. Another HotSpot's
// attempts inside that operation (an Op that runs another pipeline, All's
// goroutines) neither read it (they would run solo, with an escalated
// bound, for someone else's retry) nor write it (from several goroutines
// at once).
func TestHotSpotIgnoresAnotherHotSpotsRetry(t *testing.T) {
	outer, inner := HotSpot().(*hotSpot), HotSpot().(*hotSpot)
	rs := &retryState{hotSpot: outer, attempt: 5, timedOut: true, bound: 10 * time.Second}
	ctx := context.WithValue(context.Background(), retryStateKey{}, rs)
	var bound time.Duration
	err := inner.run(ctx, func(ctx context.Context) error {
		if at, ok := hotlock.ServerDeadline(ctx); ok {
			bound = time.Until(at)
		}
		return nil
	})
	if err != nil || bound <= 0 || bound > maxBound {
		t.Errorf("inner attempt: %v, server deadline %v away; want a new HotSpot's bound, at most %v", err, bound, maxBound)
	}
	if rs.bound != 10*time.Second || rs.attempt != 5 {
		t.Errorf("the outer retry's state became %+v; want it untouched", *rs)
	}
}

// TestHotSpotEscalatesOncePerAttempt: an attempt that asks for the lock
// with a bound after it and has a deadline of its own gets one bound for
// both, twice the last attempt's after a timeout, not four times.
func TestHotSpotEscalatesOncePerAttempt(t *testing.T) {
	h := HotSpot().(*hotSpot) // a new HotSpot: its first attempts are bounded and ask for the lock
	rs := &retryState{hotSpot: h, attempt: 2, timedOut: true, bound: 300 * time.Millisecond}
	ctx := context.WithValue(context.Background(), retryStateKey{}, rs)
	var deadline, lockBound time.Duration
	err := h.run(ctx, func(ctx context.Context) error {
		if at, ok := hotlock.ServerDeadline(ctx); ok {
			deadline = time.Until(at)
		}
		if req := hotlock.From(ctx); req != nil {
			lockBound = req.Bound
		}
		return nil
	})
	want := 600 * time.Millisecond
	if err != nil || lockBound != want || deadline <= want-50*time.Millisecond || deadline > want || rs.bound != want {
		t.Errorf("attempt after a timeout at 300ms: %v, bound after the lock %v, server deadline %v away, recorded %v; want %v for each", err, lockBound, deadline, rs.bound, want)
	}
}
