package dbop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/txmark"
)

// HotSpot returns a Decorator for work that contends on the same rows — a
// few hot accounts, a counter, the head of a queue — that needs no number
// chosen for it. Listed after [WithRetry] in the same pipeline, it decides
// when each attempt may start:
//
//   - It admits as many attempts at once as get the most done. It starts
//     at one, doubles while no more than one attempt in eight conflicts,
//     halves when more do, and now and then tries one slot more or one
//     fewer for a moment, keeping the change only if more (or, for fewer,
//     not less) work got done. Once nobody has waited for a slot
//     for a while (128 successes in a row, none of them taking the
//     HotSpot's lock beside another attempt, below, and no other process
//     seen lately), it lets every attempt through at once, until an
//     attempt fails with a retryable verdict (a serialization failure, a
//     deadlock, a lock or statement timeout).
//   - Attempts that wait are admitted oldest first: the retry of an
//     operation that lost a conflict goes before every operation that
//     arrived after it lost, and is retried without the backoff's wait
//     when it lost to work that got done (the queue is its wait); an
//     operation that lost twice runs its next attempt alone, so it cannot
//     lose to this process again. While attempts lose conflicts to other
//     processes, a new operation waits as long as the fastest recent
//     attempt took before it starts, so that the retries of every process
//     take their rows first. After a failure while nothing gets done (the database is
//     down, say) the backoff applies as usual.
//   - While more than one attempt runs at once, or attempts lose conflicts
//     to other processes that take no lock (below), each attempt is
//     bounded by a time derived from the durations of recent successful
//     ones (their mean plus four deviations, as TCP derives its
//     retransmission timeout; at least 5 ms), doubled for each attempt its
//     operation already lost, and at most 200 ms, a fifth of PostgreSQL's
//     default deadlock_timeout, or what successful attempts take where
//     that is more. The attempt after one that timed out on a statement
//     (not on a lock wait) gets twice that one's bound, up to a minute, so
//     that work slower than every bound so far still finishes. The
//     adapters' transaction scopes set it as
//     the server's limit on lock waits (PostgreSQL's lock_timeout, whose
//     statement_timeout keeps the limit of the context's deadline below, so
//     that a statement slow on a busy server is no conflict; MariaDB's
//     max_statement_time, which covers both), so that an attempt caught in
//     a lock cycle fails within a few attempts' time, with an error the
//     retry retries, instead of waiting for the deadlock detector, and its
//     connection stays (a limit the server reports as a cancel is retried
//     too, see [WithTimeout]). The attempt's context ends at twice
//     the bound plus 50 ms, for what the server does not end (an Op of your
//     own, MySQL's lock waits), with a [*TimeoutError]; the driver then
//     closes the connection.
//
// One HotSpot is one set of shared rows: build it once and use it in every
// pipeline that writes them, as with a [Bulkhead]. Its queue is per
// process; the database orders the processes. The HotSpot asks the
// adapters' transaction scopes to take a lock as the first statement of an
// attempt's transaction, a lock every process takes for the HotSpot built
// at the same place (the function and line that call HotSpot) in the same
// code: on PostgreSQL a LOCK TABLE on one of the tables the adapters'
// CreateHotSpotLocks create, or without them a transaction-scoped advisory
// lock (pgxdb, sqldb, gormdb); on MySQL and MariaDB a row of the table
// mysqldb.CreateHotSpotLocks creates (sqldb, gormdb); COMMIT or ROLLBACK
// releases it. It asks once an attempt that ran alone in its process lost
// a conflict, or waited for the lock, so to another process (more than one
// in eight of 32 attempts admitted alone took, for their lock statement,
// more than half of the rest of their attempt plus 250 µs: one slow
// statement, however slow, may be a busy machine's); on its first 32
// attempts admitted alone after it begins to limit, and on its way to
// letting every attempt through, it asks every attempt it admits alone, so
// that a process whose attempts win every conflict (under SERIALIZABLE,
// the one whose transactions commit first) still learns of another whose
// attempts take the lock and lose to it; and where the
// lock waits in place (MySQL, MariaDB, PostgreSQL's lock tables at every
// isolation level, its advisory lock under READ COMMITTED), it may admit
// two at once, each asking: one holds the lock, the other waits for it in
// the server, its BEGIN done, and gets it the moment the holder ends. It
// does so while the level search finds that this gets more done than one
// attempt at a time (level one, which takes the lock only while other
// processes are seen). While the lock is taken, attempts carry no deadline
// and newcomers do not yield; on PostgreSQL an attempt's lock waits after
// the lock are bounded all the same (SET LOCAL lock_timeout, sent with the
// lock), since it then waits only for writers the lock does not order
// (a probe, which asks for the lock only to learn of other processes while
// the other attempts run unbounded, is not bounded either). Where no lock
// is taken (no such table, SQLite, an Op that is not an adapter's
// transaction), the bounds keep lock cycles short and the head start of
// retries keeps losers from losing again. Attempts that
// held the lock and still lost (more than one in eight, in four windows
// of 32 in a row) show writers the lock does not order (on a Galera cluster
// reached without a NodeSet, whose row locks hold on one node, the other
// nodes' write-sets): for a while the HotSpot then lets no attempt wait
// for the lock beside its holder, makes no newcomer yield, and takes the
// lock only while another process is seen waiting for it. On a Galera cluster reached
// through a mysqldb.NodeSet, the attempts a HotSpot admits while it limits
// begin on one node, the same in every process, so that the lock orders
// them there. docs/contention.md measures every case.
//
// Placement is meaning: listed after WithRetry it admits each attempt, and
// frees its slot between attempts; listed before a WithRetry in the same
// pipeline, where it could tell retries from newcomers no more than free
// its slot between them, it panics when the pipeline is built. It must
// decorate whole transactions (an [Op] that begins and ends its
// transaction, as the adapters' InTx do): inside a transaction (a context
// marked [WithinTx]), with a transaction scope listed after it (InSavepoint,
// [AroundTx]: each attempt runs inside a transaction the caller owns), and
// inside an attempt a HotSpot admitted (an operation its Op runs, or the
// same HotSpot listed twice) it lets attempts through, since waiting for a
// slot while holding locks, or a slot, could wait for ever. An Op that
// panics gives its slot back before the panic goes on.
//
// It learns from the verdicts of the errors its attempts return: a
// [ClassifyBy] for an Op of your own belongs after it (the adapters
// classify inside their transactions). Listed between WithRetry and the
// HotSpot, a ClassifyBy leaves it blind to conflicts: it then admits as if
// none happened. A HotSpot added outside a retry by a second call of With
// (op.With(WithRetry(…)).With(HotSpot())) holds its slot across the
// retry's waits, which no check at build time can see: list them in one
// pipeline.
//
// Waiting for a slot respects the context, as a Bulkhead does: when it
// ends first, the attempt fails with an error matching the context's error,
// and the Op is not run.
//
// Whenever it lets attempts through at once, a HotSpot costs one atomic
// load per attempt and no allocation. A HotSpot
// is safe for concurrent use.
func HotSpot() Decorator {
	h := &hotSpot{lo: minBound, hi: maxBound, p: params{window: window, maxHold: maxHold, gain: gain}, calmAfter: calmAfter, soloAfter: soloAfter, key: callerKey()}
	h.startLimiting()
	return h
}

const (
	// minBound is the least deadline an attempt gets while a HotSpot
	// bounds lock waits: below it, scheduling noise on a busy client
	// would fail attempts that wait for nothing.
	minBound = 5 * time.Millisecond
	// maxBound is the most: a fifth of PostgreSQL's default
	// deadlock_timeout (1 s, docs/backends.md §1.12), so that a lock cycle is
	// broken by the deadline well before the detector would run.
	maxBound = 200 * time.Millisecond
	// maxEscalated is the most an attempt's bound grows to after attempts
	// of its operation timed out on statements (bound): work of up to
	// about a minute on MariaDB (whose bound is max_statement_time) and
	// two on PostgreSQL (whose statement_timeout follows the backstop)
	// still finishes, once; an attempt's backstop stays near two minutes.
	maxEscalated = time.Minute
	// soloAfter is the number of attempts an operation may lose before
	// its next attempt runs alone: nothing else of the HotSpot's is
	// admitted while it runs, so it cannot lose to this process again.
	soloAfter = 2
	// probation and externalFor are the numbers of admissions for which
	// deadlines stay on at one slot: after the HotSpot starts limiting,
	// until it knows whether attempts conflict with other processes; and
	// after a conflict of an attempt that ran alone in this process, so
	// with another process or client (newcomers also yield for as long,
	// see yieldLocked).
	probation, externalFor = 1024, 4096
	// leakWindow is the number of attempts that held the lock over which
	// a HotSpot judges whether the lock leaks, and leakWindows the number
	// of such windows in a row that must show it (judgeLeakLocked).
	leakWindow, leakWindows = 32, 4
	// probeEvery: while a HotSpot limits and has not seen another process
	// lately, one in every probeEvery attempts it admits alone asks for the
	// lock, so that a process that starts, or comes back, while this one
	// wins every conflict finds it (see probes).
	probeEvery = 4
	// backstopMargin is added to twice an attempt's bound for its
	// context's deadline: the server's answer to a limit it enforced can
	// arrive tens of milliseconds late on a loaded machine
	// (docs/backends.md §11.3).
	backstopMargin = 50 * time.Millisecond
	// epochLen is the number of durations over which a HotSpot takes the
	// shortest (shortest): of successful attempts, for the newcomers'
	// yield; of the statements that took the lock, for lockWaitsLocked's
	// hint.
	epochLen = 128
)

// The state word of a hotSpot: limiting, set while the HotSpot admits
// attempts by its level, and in the low 32 bits the attempts it admitted
// that are in flight.
const (
	inflightMask = 1<<32 - 1
	limiting     = 1 << 32
)

type hotSpot struct {
	state atomic.Uint64
	// progress counts the attempts that succeeded while limiting: a retry
	// reads it before an attempt, to tell a lost conflict from an outage.
	progress atomic.Uint64

	// Fixed at construction.
	lo, hi    time.Duration
	p         params
	calmAfter int
	soloAfter int

	mu    sync.Mutex
	queue waitQueue // attempts waiting for a slot, oldest operation first
	level levelSearch

	// Durations of successful attempts, for the deadlines.
	srtt, rttvar float64 // smoothed duration and deviation, ns
	sampled      bool
	// fastest: what a successful attempt takes when it waits for
	// nothing, for yieldLocked; lockFastest: the same for the statements
	// that took the lock in place (hotlock.Request.LockTime), learnt from
	// attempts admitted alone while no other process was seen, for
	// lockWaitsLocked's hint (never its judgement).
	fastest, lockFastest shortest
	// lockTimed and lockSlow count the attempts admitted alone whose
	// lock statement was timed, and those of them that took long, in a
	// window of leakWindow (lockWaitsLocked).
	lockTimed, lockSlow int

	// key names the HotSpot to every process that runs the same code: the
	// lock the transaction scopes take for it (hotlock).
	key int64
	// coordinated is set once a transaction scope took the HotSpot's lock:
	// while attempts take it (coordinating), the processes' attempts run
	// one at a time, so newcomers need not yield and attempts need no
	// bound. inPlace: the last scope that took it waits for it in place
	// (hotlock.Request.InPlace), so every attempt takes it while the
	// HotSpot limits, even in one process, and one attempt may wait for it
	// in the server while another holds it; else this process admits one
	// at a time. probed: an attempt of this limiting spell asked for the
	// lock, to learn inPlace. postgres: the last scope that took it is
	// PostgreSQL's, where a bound on lock waits is a SET LOCAL sent with
	// the lock or the BEGIN (hotlock.Request.Bound), not a session
	// setting of round trips of its own.
	coordinated, inPlace, probed, postgres bool
	// contendedUntil: conflicts were too many in a block of attempts
	// (levelSearch.crowdedSeen), until admitted passes it; ordering: the
	// HotSpot was contended at the last outcome (see contended).
	contendedUntil uint64
	ordering       bool
	// leakyUntil: an attempt that held the lock still lost a conflict, so
	// the lock does not order every writer of the rows (a Galera cluster,
	// whose row locks hold on one node; a client without the HotSpot):
	// until admitted passes it, no attempt waits for the lock beside one
	// that holds it, and attempts ask for it only while conflicts are
	// lost to other processes.
	leakyUntil uint64
	// held and heldLost count attempts that held the lock, and those of
	// them that lost a conflict, for judgeLeakLocked; leakStreak the
	// windows in a row in which too many lost.
	held, heldLost, leakStreak int
	// waitedUntil: an attempt that ran alone in this process waited for
	// the lock, so another process holds it, until admitted passes this.
	waitedUntil uint64
	// probes is the number of attempts admitted alone that still ask for
	// the lock since the HotSpot began to limit: one window of leakWindow,
	// which lockWaitsLocked judges. Under SERIALIZABLE the transaction that
	// commits first wins, so a process whose short transactions win every
	// conflict never loses one to learn of another process, and the
	// other's attempts, which lose and so take the lock, would lose to it
	// again and again. Taking the lock from the start, each process waits
	// for the other's, and the waits keep them taking it (fleet). Alone, a
	// process pays the lock for 32 attempts, and its level search hardly
	// notices. Later, one attempt in probeEvery admitted alone asks, for
	// as long as the HotSpot limits without having seen another process:
	// a process that starts, or comes back from a pause, while this one
	// limits takes the lock and loses to this one's attempts, which do not
	// take it, until one of them waits for it. Alone, a HotSpot pays a lock
	// statement on one attempt in probeEvery while it limits (on pgx's own
	// handles the LOCK travels with the BEGIN).
	probes int

	// locking counts the attempts in flight that asked for the lock.
	locking int

	// keyedUntil: an operation with keys (HotSpotKeys) arrived lately,
	// until admitted passes it: in one process attempts then run side by
	// side without the lock (keyed).
	keyedUntil uint64
	// keyedIn and unkeyedIn count the admitted attempts in flight with and
	// without keys; keysIn counts the keys of the keyed ones.
	keyedIn, unkeyedIn int
	keysIn             map[int64]int32
	// keysLieUntil: a keyed attempt admitted beside others lost a
	// conflict, so the keys do not keep apart the rows attempts write;
	// until admitted passes it, attempts side by side are bounded again.
	keysLieUntil uint64
	// keysHeld: the scope of the last coordinated attempt with keys took
	// a lock per key (hotlock.Request.KeysHeld), not the HotSpot's lock
	// alone (too many stripes, PostgreSQL's advisory lock).
	keysHeld bool
	// scratch and reserved are admitWaitersLocked's buffers.
	scratch  []*waiter
	reserved map[int64]int32

	admitted      uint64 // attempts admitted while limiting
	externalUntil uint64 // deadlines stay on at one slot until admitted passes this
	yieldUntil    uint64 // newcomers yield to retries until admitted passes this (see yieldLocked)
	calm          int    // successive successes with nobody waiting (see calmAfter)
	solo          bool   // a solo attempt is in flight
}

func (*hotSpot) decorator() {}

// open reports whether the HotSpot lets attempts through at once. An
// attempt it lets through is not counted: it reports its end only when it
// fails, through settle with a zero ticket.
func (h *hotSpot) open() bool { return h.state.Load()&limiting == 0 }

// ticket is an attempt admitted while limiting.
type ticket struct {
	seq     uint64 // its admission number, from 1
	alone   bool   // nothing else of the HotSpot's was in flight when it was admitted
	solo    bool   // nothing else may be admitted while it runs
	bounded bool   // it needs a deadline
	// coordinate asks its transaction scope to take the HotSpot's lock,
	// while attempts lose conflicts to other processes (hotlock).
	coordinate bool
	// boundLock asks the scope of a coordinated attempt to bound its lock
	// waits after the lock (hotlock.Request.Bound): while attempts ask for
	// the lock to be put in order (asking), or when the attempt needs a
	// deadline all the same. A probe of a HotSpot whose other attempts run
	// unbounded (one that asks only to learn whether another process takes
	// the lock) gets no bound they do not get: the bound's statement costs
	// the server more than the lock (docs/contention-log.md, "A lone
	// process's costs").
	boundLock bool
	// yield is how long a newcomer waits before it starts, while attempts
	// lose conflicts to other processes (see yieldLocked); 0 for a retry.
	yield time.Duration
	// keys are its operation's keys (HotSpotKeys), nil if none.
	keys hotKeys
	// lockKeys: the keys are believed (not mayCycle) and the attempt is
	// not solo, so a coordinated attempt locks its keys' stripes and the
	// HotSpot's lock only in a shared mode (hotlock.Request.Keys).
	lockKeys bool
}

// run runs an attempt that found the HotSpot limiting: admission, deadline,
// and the account of its outcome.
//
// Inside a transaction, and inside an attempt a HotSpot admitted (this one
// or another: an operation its op runs outside a transaction), it lets the
// attempt through: waiting for a slot there would wait while holding one,
// or the transaction's locks, for ever if the slot is the one it holds.
// An attempt that panics gives its slot back before the panic goes on.
func (h *hotSpot) run(ctx context.Context, attempt func(context.Context) error) error {
	if isWithinTx(ctx) {
		return attempt(ctx)
	}
	if _, in := hotlock.Spot(ctx); in {
		return attempt(ctx)
	}
	rs := retryStateOf(ctx)
	if rs != nil && rs.hotSpot != h {
		// Another HotSpot's retry, around this one's caller (an Op
		// that runs this pipeline inside an attempt, All's goroutines):
		// not this HotSpot's operation, nor its attempts.
		rs = nil
	}
	t, err := h.admit(ctx, rs, hotKeysOf(ctx))
	if err != nil {
		return err
	}
	if t.seq == 0 { // it stopped limiting meanwhile
		err := attempt(ctx)
		if err != nil {
			h.settle(t, outcomeOf(err, false), 0)
		}
		return err
	}
	left := false // the attempt returned, and leave ran
	defer func() {
		if !left {
			// The attempt panicked (or the wait below ended): a
			// recovered panic must not keep the slot, which every
			// later call would wait for.
			h.leave(t, neutral, 0, nil, false)
		}
	}()
	if t.yield > 0 {
		timer := time.NewTimer(t.yield)
		select {
		case <-timer.C:
			// The context may have ended too by the time the timer was
			// received, and select chose between the two at random:
			// the attempt must not start after the caller gave up.
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("dbop: waiting for a hot spot's slot: %w", err)
			}
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("dbop: waiting for a hot spot's slot: %w", ctx.Err())
		}
	}
	// The attempt's bound, computed once: bound escalates from the last
	// one recorded.
	var bound time.Duration
	if t.bounded || (t.coordinate && t.boundLock) {
		bound = h.bound(rs)
		if rs != nil {
			rs.bound = bound
		}
	}
	var req *hotlock.Request
	if t.coordinate {
		// Holding the lock, the attempt waits only for writers the lock
		// does not order; the scope bounds those waits with req.Bound
		// (not the wait for the lock itself) on PostgreSQL, unless the
		// attempt is a probe among attempts that run unbounded
		// (boundLock). A bounded attempt's wait for the lock is bounded
		// by its server deadline below where the scope sets its limits
		// before the LOCK (READ COMMITTED): a lock timeout there, 55P03,
		// does not escalate its operation's next bound (escalates).
		req = &hotlock.Request{Key: h.key}
		if t.boundLock {
			req.Bound = bound
		}
		if t.lockKeys {
			req.Keys = t.keys
		}
		ctx = hotlock.With(ctx, req)
	} else {
		ctx = hotlock.WithSpot(ctx, h.key)
	}
	start := time.Now()
	if !t.bounded {
		err := attempt(ctx)
		left = true
		h.leave(t, outcomeOf(err, false), time.Since(start), req, lockTimedOut(err))
		return err
	}
	// The server ends the attempt's lock waits at bound (the adapters
	// derive their limits from it, hotlock.WithServerDeadline: on
	// PostgreSQL lock_timeout, on MariaDB max_statement_time, its one
	// limit); the context, whose end makes the driver close the
	// connection, only later, for what the server does not end; on
	// PostgreSQL statement_timeout just before it.
	backstop := 2*bound + backstopMargin
	cause := &TimeoutError{Timeout: backstop, Err: context.DeadlineExceeded}
	actx, cancel := context.WithDeadlineCause(ctx, start.Add(backstop), cause)
	defer cancel()
	actx = hotlock.WithServerDeadline(actx, start.Add(bound))
	actx, owner := txmark.WithOwnerWatch(actx)
	// A 57014 can be the server's statement limit only once the attempt
	// ran for the statement limit the adapters derive from the context's
	// deadline (resolve.ServerLimits), not for the bound, which limits
	// lock waits alone where the server has a limit for them: a cancel
	// before that is someone's on purpose (pg_cancel_backend), which no
	// retry should run again.
	stmtLimit := bound
	if dl, ok := actx.Deadline(); ok {
		if l, ok := hotlock.LimitFor(dl.Sub(start)); ok {
			stmtLimit = l
		}
	}
	err = attempt(actx)
	left = true
	fired := context.Cause(actx) == error(cause)
	d := time.Since(start)
	if err != nil && !fired {
		err = serverLimitFired(ctx, err, d, stmtLimit)
	}
	h.leave(t, outcomeOf(err, fired), d, req, lockTimedOut(err))
	if err != nil && fired {
		err = &TimeoutError{Timeout: backstop, Err: err}
		if !owner.Owns(err, followRetry) {
			err = Classify(&unownedCutError{err}, Ambiguous)
		}
	}
	return err
}

// unownedCutError is the error of an attempt a HotSpot's backstop cut
// short where the error did not come from transaction scopes of dbop's
// alone (txmark.OwnerWatch): in work of the user's own, nothing says where
// the cut fell, and in a COMMIT the server may have committed (the driver
// closes the connection on the context's end). It is Ambiguous: retried
// only by an Idempotent retry, never replaced by a fallback. A scope of
// dbop's ends its transaction and judges its COMMIT itself, and an attempt
// whose error is a scope's is retried as any timed-out attempt.
type unownedCutError struct{ err error }

func (e *unownedCutError) Error() string {
	return "dbop: HotSpot: the attempt's deadline ended work that no transaction scope of dbop's ended, so whether it committed is unknown: " + e.err.Error()
}

func (e *unownedCutError) Unwrap() error { return e.err }

// followRetry is txmark.OwnerWatch.Owns' follow: a retry's error inside
// the attempt leads to its last attempt's error, not to its reason.
func followRetry(err error) (error, bool) {
	if re, ok := err.(*RetryError); ok {
		return re.Err, true
	}
	return nil, false
}

// admit waits for a slot and returns the attempt's ticket, a zero one if
// the HotSpot no longer limits.
func (h *hotSpot) admit(ctx context.Context, rs *retryState, keys hotKeys) (ticket, error) {
	solo := rs != nil && rs.attempt > h.soloAfter
	retry := rs != nil
	h.mu.Lock()
	s := h.state.Load()
	if s&limiting == 0 {
		h.mu.Unlock()
		return ticket{}, nil
	}
	if keys != nil {
		h.keyedUntil = h.admitted + externalFor
	}
	if len(h.queue.items) == 0 && h.admissible(solo, keys, int(s&inflightMask)) && h.keysFit(keys) {
		t := h.admitLocked(solo, retry, keys)
		h.mu.Unlock()
		return t, nil
	}
	w := &waiter{ready: make(chan struct{}), solo: solo, retry: retry, keys: keys}
	if rs != nil {
		w.key = rs.first
	} else {
		w.key = time.Now().UnixNano()
	}
	h.queue.push(w)
	h.calm = 0
	if keys != nil {
		// Its keys may let it pass the waiters before it.
		h.admitWaitersLocked()
	}
	h.mu.Unlock()
	select {
	case <-w.ready:
		return w.ticket, nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	if w.index >= 0 {
		h.queue.remove(w)
		// It may have held back the waiters after it.
		h.admitWaitersLocked()
		h.mu.Unlock()
	} else {
		// Admitted as the context ended: give the slot back.
		h.mu.Unlock()
		h.leave(w.ticket, neutral, 0, nil, false)
	}
	return ticket{}, fmt.Errorf("dbop: waiting for a hot spot's slot: %w", ctx.Err())
}

// admissible reports whether an attempt with keys may be admitted with
// inflight attempts in flight: a solo one only alone, any other only below
// the level, and none while a solo one runs.
func (h *hotSpot) admissible(solo bool, keys hotKeys, inflight int) bool {
	switch {
	case h.solo:
		return false
	case solo:
		return inflight == 0
	case h.coordinating() && h.pipelines():
		// At level two, one holds the lock and one waits for it; not
		// beside an attempt that runs without it, with which it could
		// form a lock cycle. Keyed attempts whose keys are believed
		// take a lock per key, and run as many at once as the level
		// says (keysFit keeps their keys apart).
		most := min(h.level.slots, 2)
		if h.locksKeys(keys) {
			most = h.level.slots
		}
		return inflight == 0 || (inflight < most && h.locking == inflight)
	case h.coordinating():
		return inflight == 0
	}
	return inflight < h.level.slots
}

// admitLocked counts an attempt in. Whether it needs a deadline is
// decided now, at the level it is admitted at.
func (h *hotSpot) admitLocked(solo, retry bool, keys hotKeys) ticket {
	alone := h.state.Add(1)&inflightMask == 1
	h.admitted++
	h.solo = solo
	h.holdKeys(keys)
	bounded := h.boundedLocked(keys)
	asks := h.asksLocked()
	probe := alone && (h.calm > 0 || h.probes > 0 || (h.admitted%probeEvery == 0 && !h.fleet()))
	t := ticket{seq: h.admitted, alone: alone, solo: solo, bounded: bounded, coordinate: asks || probe, keys: keys, lockKeys: !h.mayCycle(keys) && !solo}
	t.boundLock = t.coordinate && (bounded || h.asking())
	if alone && h.probes > 0 {
		h.probes--
	}
	if t.coordinate {
		h.locking++
	}
	if !retry {
		t.yield = h.yieldLocked()
	}
	return t
}

// yieldLocked returns how long a newcomer waits before its first attempt
// starts: while attempts lose conflicts to other processes, half the
// smoothed duration of a successful attempt, else 0. Each process's queue
// puts its retries before its newcomers, but nothing orders them across
// processes: a retry that starts as another process's newcomer does races
// it for the rows, and under SERIALIZABLE whoever writes second loses, so
// an unlucky operation could lose again and again. The newcomers' head
// start to the retries of every process makes a retry take its locks
// first: it is the newcomer that loses, and then is a retry itself.
func (h *hotSpot) yieldLocked() time.Duration {
	if h.admitted >= h.yieldUntil || !h.sampled || h.coordinating() || h.leaky() {
		return 0
	}
	return h.fastest.get()
}

// boundedLocked reports whether attempts need a deadline: when more than
// one runs at once, they can form lock cycles among themselves; when
// another process or client may hold the rows, with it. Only a lost
// conflict of an attempt that ran alone, nothing of this HotSpot's
// admitted from its start to its end, shows another party: a timeout may
// be this client's own slowness. Once the processes take the HotSpot's
// lock, they no longer form lock cycles with each other: attempts then wait
// for the lock, in its order, without a deadline of the HotSpot's (on
// PostgreSQL their lock waits after the lock are bounded all the same,
// hotlock.Request.Bound).
func (h *hotSpot) boundedLocked(keys hotKeys) bool {
	if h.coordinating() || (h.leaky() && h.inPlace && !h.postgres) {
		return false
	}
	return (h.level.slots > 1 && h.mayCycle(keys)) || h.admitted < h.externalUntil
}

// mayCycle reports whether an attempt with keys admitted beside others may
// form a lock cycle with them: an unkeyed one may (it runs only beside
// unkeyed ones); a keyed one only if the keys do not keep apart the rows
// attempts write, which the HotSpot believes until an attempt that had
// company lost a conflict all the same (keysLieUntil).
func (h *hotSpot) mayCycle(keys hotKeys) bool { return keys == nil || h.admitted < h.keysLieUntil }

// locksKeys reports whether an attempt with keys, coordinated, takes a
// lock per key, as far as the HotSpot knows: its keys are believed, and the
// scope took the lock per key for the last one that asked.
func (h *hotSpot) locksKeys(keys hotKeys) bool { return !h.mayCycle(keys) && h.keysHeld }

// anyKeys stands for an attempt with keys in admissible, where a round of
// admission asks whether any waiter may start.
var anyKeys = hotKeys{}

// keyed reports whether operations with keys arrived lately.
func (h *hotSpot) keyed() bool { return h.admitted < h.keyedUntil }

// asksLocked reports whether an attempt admitted now asks its transaction
// scope to take the HotSpot's lock: while attempts lose conflicts to other
// processes; while limiting at all, where the scopes wait for the lock in
// place; and once per limiting spell, to learn whether they do.
func (h *hotSpot) asksLocked() bool {
	if !h.probed {
		h.probed = true
		return true
	}
	return h.asking()
}

// asking reports whether attempts ask for the HotSpot's lock now, the
// probe aside: while the scopes wait for it in place (pipelines) and
// other processes were seen or the level search found two attempts at
// once, one waiting for the lock, to get more done than one at a time
// without it (on a server whose round trips cost little beside its
// context switches, PostgreSQL on a small machine, the lock's statement
// and the wake-up of its waiter cost more than they save); while
// attempts lose conflicts to other processes, unless the lock was seen to
// leak and no attempt alone in this process waited for it since (on a
// Galera cluster in one process, conflicts come from the other nodes
// applying this process's own writes, and a lock nobody else holds only
// costs a round trip).
func (h *hotSpot) asking() bool {
	if h.coordinated && h.pipelines() && (h.fleet() || (h.level.slots > 1 && !h.keyed() && h.contended())) {
		return true
	}
	if h.leaky() && h.admitted >= h.waitedUntil {
		return false
	}
	return h.admitted < h.yieldUntil
}

// leaky reports whether an attempt that held the lock still lost a
// conflict lately: the conflicts come from writers the lock does not
// order, which on a Galera cluster are other nodes' write-sets, certified
// at COMMIT, not lock waits. Neither a bound on lock waits nor the
// newcomers' yield helps against those, and both cost (a bound is a
// session setting on MariaDB, two round trips): a leaky HotSpot makes no
// newcomer yield, bounds no attempt on MySQL, MariaDB and Galera, and lets
// no attempt wait for the lock beside its holder (the level search alone
// decides how many run). On PostgreSQL, where the writers the lock does
// not order are clients without the HotSpot, attempts stay bounded (a
// SET LOCAL): a lock cycle with such a writer would otherwise wait for
// the deadlock detector, a second.
func (h *hotSpot) leaky() bool { return h.admitted < h.leakyUntil }

// judgeLeakLocked counts an attempt that held the lock, and whether it
// lost a conflict all the same. A few such losses prove nothing: on
// PostgreSQL under SERIALIZABLE the snapshot is taken by the statement
// that tries the lock, a moment before it gets it, and a holder that
// committed in that moment fails the write with 40001. Nor does a burst:
// when processes start, one may take the lock while another does not yet
// (it has not seen a conflict with a process), and the first one's holders
// lose to it until it does. Only when more than one in crowdShare of
// leakWindow attempts that held the lock lost, in leakWindows windows in
// a row, is the lock judged leaky.
func (h *hotSpot) judgeLeakLocked(lost bool) {
	h.held++
	if lost {
		h.heldLost++
	}
	if h.held < leakWindow {
		return
	}
	if h.heldLost*crowdShare <= h.held {
		h.leakStreak = 0
	} else if h.leakStreak++; h.leakStreak >= leakWindows {
		h.leakyUntil = h.admitted + externalFor
		h.leakStreak = 0
	}
	h.held, h.heldLost = 0, 0
}

// fleet reports whether other processes (or clients) were seen writing
// the rows lately: an attempt lost a conflict, or waited for the lock,
// while nothing else of this process's was in flight. Otherwise the lock
// only lets one attempt wait in the server while another holds it, which
// the level search weighs against one attempt at a time without it. A
// lock taken in place is judged waited for by its time, so a slow BEGIN
// can pass for a wait: that makes attempts ask for the lock for a while,
// never for good.
func (h *hotSpot) fleet() bool { return h.admitted < h.yieldUntil || h.admitted < h.waitedUntil }

// coordinating reports whether attempts take the HotSpot's lock now.
func (h *hotSpot) coordinating() bool { return h.coordinated && h.asking() }

// pipelines reports whether an attempt may wait for the lock in the server
// while another holds it: the scopes wait in place, and the lock has not
// been seen to leak.
func (h *hotSpot) pipelines() bool { return h.inPlace && h.admitted >= h.leakyUntil }

// bound is the deadline of an attempt admitted while limiting: what
// recent successful attempts took (their smoothed duration plus four
// deviations, at least lo; hi before the first), doubled for each attempt
// its operation already made, up to hi, or up to the derived value when
// that is more — a bound below what the attempts that succeed take would
// fail them all. The attempt after one that timed out on something other
// than a lock wait (escalates: its deadline fired, a statement limit of
// the server's) gets at least twice that one's bound, past hi, up to
// maxEscalated: the same bound would cut it short again, and an operation
// whose work takes longer than any bound so far would otherwise never
// succeed, nor teach the HotSpot what its attempts take. A lock timeout
// does not escalate: it is the bound ending a wait that may be a lock
// cycle, which it must keep ending well before PostgreSQL's detector.
func (h *hotSpot) bound(rs *retryState) time.Duration {
	h.mu.Lock()
	b, top := h.hi, h.hi
	if h.sampled {
		b = max(time.Duration(h.srtt+4*h.rttvar), h.lo)
		top = max(top, b)
	}
	h.mu.Unlock()
	if rs == nil {
		return b // b <= top
	}
	prev := rs.bound
	if prev == 0 { // the operation's first attempt, which had no retryState
		prev = b
	}
	for i := 1; i < rs.attempt && b < top; i++ {
		b *= 2
	}
	b = min(b, top)
	if rs.timedOut {
		b = max(b, min(2*prev, maxEscalated))
	}
	return b
}

// paces reports whether the HotSpot is limiting and an attempt succeeded
// since progress read mark: a retry then runs its next attempt without
// waiting, and the HotSpot's queue paces it.
func (h *hotSpot) paces(mark uint64) bool {
	return h.state.Load()&limiting != 0 && h.progress.Load() != mark
}

// leave ends an attempt admitted while limiting. req is the lock request
// the attempt carried, nil if none.
//
// lockWait says that the attempt's error was a lock timeout (SQLSTATE
// 55P03): only that, in an attempt that held the lock exclusively with a
// bound after it, shows a writer the lock does not order; a statement
// timeout is slow work, or a busy machine.
func (h *hotSpot) leave(t ticket, o outcome, d time.Duration, req *hotlock.Request, lockWait bool) {
	h.state.Add(^uint64(0))
	if req != nil {
		took, waited, inPlace := req.Outcome()
		if took || waited {
			h.mu.Lock()
			if h.lockWaitsLocked(req.LockTime(), d, t.alone) {
				waited = true
			}
			if took {
				h.coordinated, h.inPlace, h.postgres = true, inPlace, req.OnPostgres()
				h.judgeLeakLocked(o == lost)
				if o == timedOut && req.Bound > 0 && req.Keys == nil && h.postgres && lockWait {
					// It held the lock exclusively and a lock wait
					// after it timed out (most likely its Bound): a
					// writer the lock does not order holds the rows.
					// Keep the attempts coordinated, and those that
					// are not bounded, for a while.
					h.yieldUntil = max(h.yieldUntil, h.admitted+externalFor)
					h.externalUntil = max(h.externalUntil, h.admitted+externalFor)
				}
				if o == lost && t.alone && inPlace && !h.leaky() {
					// It held the lock, alone in this process, and
					// lost all the same: to a process that does not
					// take the lock yet, not having seen this one,
					// and whose transaction committed. Work got done,
					// so the retry runs again at once (paces) and
					// holds the lock again soon, where that process's
					// next request for it waits and shows it this
					// one. After a backoff's wait it would hold the
					// lock too seldom to be seen (seen live: a process
					// that started while another limited lost 10
					// times in a row, 1.8 s).
					h.progress.Add(1)
				}
				if req.Keys != nil {
					h.keysHeld = req.KeysHeld()
					if h.keysHeld && (o == lost || (o == timedOut && req.Bound > 0 && h.postgres && lockWait)) {
						// It held its keys' locks, so no attempt of
						// any process that keeps to its keys wrote
						// its rows: the keys lie, or the database
						// reports conflicts between disjoint rows.
						h.keysLieUntil = h.admitted + externalFor
					}
				}
			}
			if waited && t.alone {
				// It waited with nothing else of this process's in
				// flight: another process still writes the rows, so
				// keep coordinating.
				h.yieldUntil = max(h.yieldUntil, h.admitted+externalFor)
				h.externalUntil = max(h.externalUntil, h.admitted+externalFor)
				h.waitedUntil = h.admitted + externalFor
			}
			h.mu.Unlock()
		}
	}
	h.settle(t, o, d)
}

// lockWaitSlack is what a statement that took the lock in place may take
// beyond half of the rest of its attempt before lockWaitsLocked calls it a
// wait, or beyond twice the fastest such statement lately before it asks
// again: room for the scheduling of a busy client and server.
const lockWaitSlack = 250 * time.Microsecond

// lockWaitsLocked reports whether the attempts admitted alone wait for
// another process's transactions to take the lock, judged by the time d
// their lock statement took (0: none timed) against the rest of their
// attempt (attempt is the whole attempt's duration, 0 if not known): when
// more than one in crowdShare of a window of leakWindow such statements
// took more than half of the rest of their attempt plus lockWaitSlack. A
// statement that waits for nobody is one round trip of the several in its
// transaction, and takes less than half of the rest; one that waited for
// the other process's transaction, as short as its own, takes about as
// long as the rest. The measure is the attempt's own, so it needs nothing
// learnt: a process that starts beside another that takes the lock waits
// for it from its first statement, and a fixed threshold would miss the
// waits for the short transactions of a hot spot on a nearby server, a
// fraction of a millisecond each (a process whose attempts wait for
// another's that briefly would take it for gone, stop taking the lock,
// and let its attempts form lock cycles with the other's, or starve them).
//
// It is not judged against the fastest such statement lately, as it once
// also was (the fastest gives only a hint, below): on a busy machine (two
// cores shared by the client and the server), more than one in eight of a
// lone process's lock statements took twice its fastest plus
// lockWaitSlack, a few hundred microseconds, without any other process;
// the HotSpot then took another process to be there, took the lock on
// every attempt, and the same noise kept it so for the rest of the run
// (benchmarks/results/hotspot-lockwait-relative.txt).
// One slow statement proves nothing, however slow: a busy client or server
// delays some by milliseconds (the scopes report times, never a wait of a
// lock taken in place, hotlock.Request.TookFor).
//
// The fastest lately still gives a hint, which counts for nothing: a
// statement that took more than twice it plus lockWaitSlack, while no
// other process is seen, makes the next attempt admitted alone ask for
// the lock too. A probe, one attempt in probeEvery, comes upon the
// transaction of a process that takes the lock at a random moment of it,
// and waits for what is left of it, most often less than half of the rest
// of its own attempt: in a simulation of a process coming back beside one
// that wins every conflict (TestHotSpotFindsAProcessThatCameBack), a
// dozen probes in a row waited 70 to 650 µs in attempts of a millisecond
// and not one counted, while the returning process's operations lost 11
// to 24 times in a row (in 7 to 9 of 200 runs under the race detector;
// none in 500 with the hint). The next attempt asks right after this
// one's transaction, where the other process's next one waits for the
// lock in the server: it waits for the whole of it, which counts. A lone
// process's noise pays a lock statement now and then, and is never taken
// for another process (simulated, lock statements of 60 µs and, one in
// seven, 300 to 600 µs: 28 % of the attempts asked instead of 25 %).
func (h *hotSpot) lockWaitsLocked(d, attempt time.Duration, alone bool) bool {
	if d <= 0 || !alone {
		return false
	}
	if !h.fleet() {
		h.lockFastest.add(d)
	}
	slow := attempt > d && d > (attempt-d)/2+lockWaitSlack
	h.lockTimed++
	switch {
	case slow:
		h.lockSlow++
		if !h.fleet() {
			// Look again soon: the next attempts admitted alone ask
			// too, so that a process that waits for this one's
			// operations is found within a few of them.
			h.probes = max(h.probes, crowdShare)
		}
	case d > 2*h.lockFastest.get()+lockWaitSlack && !h.fleet():
		// Perhaps the end of another process's transaction: the next
		// attempt admitted alone asks too, and waits for the whole of
		// the next one if it is there.
		h.probes = max(h.probes, 1)
	}
	// Too many slow ones for a window are too many before it ends: the
	// operations of a process that waits for this one's need not wait for
	// the rest of a window that one probe in probeEvery fills slowly.
	many := h.lockSlow*crowdShare > leakWindow
	if !many && h.lockTimed < leakWindow {
		return false
	}
	h.lockTimed, h.lockSlow = 0, 0
	return many
}

// shortest is the shortest of a series of durations over the last two
// epochs of epochLen of them (the current one and the one before): what
// they take when they wait for nothing, lately.
type shortest struct {
	cur, prev time.Duration
	left      int // durations left in the current epoch
	seen      bool
}

func (s *shortest) add(d time.Duration) {
	if !s.seen {
		s.cur, s.seen = d, true
	}
	if s.left--; s.left <= 0 {
		s.prev, s.cur, s.left = s.cur, d, epochLen
	}
	s.cur = min(s.cur, d)
}

// get returns the shortest duration, 0 before the first.
func (s *shortest) get() time.Duration { return min(s.cur, s.prev) }

// outcome is what the end of an attempt says about the contention.
type outcome uint8

const (
	neutral  outcome = iota // nothing: an error no retry acts on, or no attempt
	success                 // the attempt succeeded
	timedOut                // its deadline fired, or the server's lock or statement timeout (RetryStatement)
	lost                    // it lost a conflict: a serialization failure, a deadlock (RetryTransaction)
)

// conflicted reports whether o is a conflict of either kind.
func (o outcome) conflicted() bool { return o >= timedOut }

func outcomeOf(err error, fired bool) outcome {
	if err == nil {
		return success
	}
	switch v := VerdictOf(err); {
	case v == RetryTransaction && !fired:
		return lost
	case fired || v.Retryable():
		return timedOut
	}
	return neutral
}

// settle accounts for the outcome o of an attempt that has left its slot,
// and admits waiters into the slots that are free. t is the attempt's
// ticket, zero when it was let through at once; d its duration.
func (h *hotSpot) settle(t ticket, o outcome, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.solo {
		h.solo = false
	}
	if t.coordinate {
		h.locking--
	}
	if t.seq > 0 {
		h.dropKeys(t.keys)
	}
	s := h.state.Load()
	if s&limiting == 0 {
		if o.conflicted() {
			h.startLimiting()
		}
		return
	}
	inflight := int(s & inflightMask)
	switch {
	case o.conflicted():
		h.calm = 0
		if t.keys != nil && !t.alone {
			h.keysLieUntil = h.admitted + externalFor
		}
		if t.alone && inflight == 0 && h.admitted == t.seq && o == lost {
			h.externalUntil = h.admitted + externalFor
			h.yieldUntil = h.admitted + externalFor
		}
	case o == success:
		h.progress.Add(1)
		if t.seq > 0 {
			h.fastest.add(d)
			x := float64(d)
			if !h.sampled {
				h.srtt, h.rttvar, h.sampled = x, x/2, true
			} else {
				h.rttvar += (abs(h.srtt-x) - h.rttvar) / 4
				h.srtt += (x - h.srtt) / 8
			}
		}
		if len(h.queue.items) == 0 && inflight < h.level.slots && h.unneeded(t, inflight) {
			if h.calm++; h.calm >= h.calmAfter {
				h.calm = 0
				h.state.Add(^uint64(limiting - 1)) // stop limiting
				return
			}
		} else {
			h.calm = 0
		}
	}
	if o != neutral {
		// With a lock that waits in place, the search weighs one
		// attempt at a time (without the lock, alone in its process)
		// against two, one waiting for the lock in the server: more
		// slots add nothing. Keys that are believed lock their own
		// stripes, and more slots may run more of them.
		ceiling := 0
		if h.coordinated && h.pipelines() && h.contended() && (!h.keyed() || (h.fleet() && !h.locksKeys(anyKeys))) {
			ceiling = 2
		}
		// Attempts wait for a slot when the level admitted as many as it
		// allows; with keys they may wait for their keys instead, which
		// more slots do not help.
		waiting := len(h.queue.items) > 0 && inflight+1 >= h.level.slots
		h.level.measure(o == success, waiting, ceiling, h.p)
		if h.level.crowdedSeen {
			h.level.crowdedSeen = false
			h.contendedUntil = h.admitted + externalFor
		}
		if c := h.contended(); c != h.ordering {
			h.ordering = c
			if !c {
				// Contention is gone: the search starts again from
				// one slot, doubling while nothing conflicts.
				h.level.start()
			}
		}
	}
	h.admitWaitersLocked()
}

// unneeded reports whether the success of attempt t, with inflight others
// in flight now, shows that the HotSpot is not needed: it did not take the
// HotSpot's lock beside another attempt of this process's, and no other
// process was seen lately. Attempts that the lock put in order, one
// waiting for it in the server while another held it, would run side by
// side unbounded once the HotSpot let every attempt through, and could
// form lock cycles that only the deadlock detector ends (after a second on
// PostgreSQL); other processes' attempts too, which nothing of this
// process's queue shows.
func (h *hotSpot) unneeded(t ticket, inflight int) bool {
	if h.fleet() {
		return false
	}
	return !t.coordinate || (t.alone && inflight == 0 && h.admitted == t.seq)
}

// contended reports whether the HotSpot has seen a reason to put its
// attempts in the lock's order lately: conflicts too many in a block of
// crowdCheck attempts (more than one in crowdShare), within the last
// externalFor admissions, or other processes seen. A HotSpot starts
// limiting when it is built, or after one conflict; a lock cycle now and
// then among disjoint work, or a deadline that fires on a busy machine, is
// no contention: such work is let through as its level grows, never put
// in the lock's order one attempt at a time (where the lock waits in place,
// the level search finds two attempts ordered by the lock no better than
// one, and keeps one). Attempts in the lock's order do not conflict, so
// contention expires; the level search then starts again from one slot,
// and finds it again if it is still there.
func (h *hotSpot) contended() bool { return h.admitted < h.contendedUntil || h.fleet() }

// startLimiting makes the HotSpot limit: when it is built, and after a
// conflict of attempts it let through.
func (h *hotSpot) startLimiting() {
	h.state.Add(limiting)
	h.solo = false
	h.probed = false
	h.calm = 0
	h.externalUntil = h.admitted + probation
	h.probes = leakWindow
	h.level.start()
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// retryState is what a WithRetry tells the HotSpot listed after it about
// the attempt it admits: it is a retry, its operation first lost at first.
// The retry puts it in the context of every attempt after the first, so a
// success costs nothing.
type retryState struct {
	first   int64 // when the first attempt failed, in Unix nanoseconds
	attempt int   // the attempt about to run, from 2
	// hotSpot is the HotSpot listed right inside the retry, the only one
	// the state is for.
	hotSpot *hotSpot
	// timedOut: the last attempt timed out, not on a lock wait (escalates,
	// set by the retry); bound: the bound the HotSpot gave the last
	// attempt that had a retryState, 0 before (bound).
	timedOut bool
	bound    time.Duration
}

// escalates reports whether err, an attempt's error, makes the next
// attempt's bound at least twice the last one's (bound): the attempt timed
// out (outcomeOf) — its deadline fired, a statement limit of the server's
// (57014, MariaDB's 1969) — but not on a lock wait (55P03): a lock
// timeout is what the bound is for, the end of a wait that could be a lock
// cycle, and the same bound ends the next one as soon.
func escalates(err error) bool {
	_, fired := errors.AsType[*TimeoutError](err)
	return outcomeOf(err, fired) == timedOut && !lockTimedOut(err)
}

// lockTimedOut reports whether err is PostgreSQL's lock timeout, 55P03.
func lockTimedOut(err error) bool { return sqlState(err) == "55P03" }

type retryStateKey struct{}

func (retryStateKey) AttemptScoped() {} // package attempt

func retryStateOf(ctx context.Context) *retryState {
	rs, _ := ctx.Value(retryStateKey{}).(*retryState)
	return rs
}

// callerKey names the HotSpot being built by where HotSpot was called: the
// function (qualified by its package path) and the line. Every process
// running the same build computes the same key, and so takes the same
// lock (hotlock); two HotSpots built at different places take different
// ones.
func callerKey() int64 { return hotlock.CallSiteKey(2, "dbop.HotSpot") }
