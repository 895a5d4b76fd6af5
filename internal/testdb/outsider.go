package testdb

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
)

// Outsider runs workers goroutines of transfers among 4 accounts for d,
// each transfer with an id of its own and two distinct accounts in random
// order, so that transfers meet on the same accounts in both orders (lock
// cycles, where a transfer writes its accounts in its own order). run runs
// a transfer through pipeline: the last worker's is WithRetry alone, the
// outsider, a writer of the same rows that a dbop.HotSpot's lock does not
// order; the others' is the same retry and a HotSpot, shared. Inside its
// transaction, run runs the transfer's statements through timed, which
// times a hot attempt's statements: the lock waits after the HotSpot's
// lock, without the waits for the lock itself, the backoff between
// attempts, or the BEGIN and COMMIT round trips, which a busy machine
// stretches. It fails tb with every error run returns and when
// PostgreSQL's deadlock detector ended a hot attempt (40P01: it waited
// deadlock_timeout, 1 s, for a lock, which a busy machine cannot fake as
// a slow transfer can), and returns how long each hot attempt's
// statements took, for [CheckNoDetectorWaits], and how many transfers
// committed in all, for [CheckLedger].
func Outsider(tb testing.TB, d time.Duration, workers int, run func(pipeline dbop.Decorator, tr Transfer, timed func(statements func() error) error) error) (hot []time.Duration, committed int) {
	tb.Helper()
	const accounts = 4
	backoff := dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond))
	retry := dbop.WithRetry(backoff, dbop.MaxAttempts(50))
	// A hot attempt that PostgreSQL's deadlock detector ended (40P01) sat
	// in a lock wait for deadlock_timeout (1 s): the detector runs in the
	// backend that waited that long (docs/backends.md §1.12), which a
	// HotSpot's bound on lock waits is there to prevent. InnoDB's detector
	// ends a cycle at once (1213), which says nothing of the wait.
	var detected atomic.Int64
	hotRetry := dbop.WithRetry(backoff, dbop.MaxAttempts(50), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		if se, ok := errors.AsType[interface {
			error
			SQLState() string
		}](e.Err); ok && se.SQLState() == "40P01" {
			detected.Add(1)
		}
	}))
	hotSpot := dbop.Chain(hotRetry, dbop.HotSpot())
	var (
		mu   sync.Mutex
		ids  atomic.Int64
		wg   sync.WaitGroup
		n    atomic.Int64
		stop = time.Now().Add(d)
	)
	hotTimed := func(statements func() error) error {
		start := time.Now()
		err := statements()
		mu.Lock()
		hot = append(hot, time.Since(start))
		mu.Unlock()
		return err
	}
	untimed := func(statements func() error) error { return statements() }
	for w := range workers {
		outsider := w == workers-1
		wg.Go(func() {
			for time.Now().Before(stop) {
				from := 1 + rand.IntN(accounts)
				to := 1 + (from+rand.IntN(accounts-1))%accounts
				tr := Transfer{ID: int(ids.Add(1)), From: from, To: to}
				pipeline, timed := hotSpot, hotTimed
				if outsider {
					pipeline, timed = retry, untimed
				}
				if err := run(pipeline, tr, timed); err != nil {
					tb.Errorf("transfer %d (%d → %d, hot %t): %v", tr.ID, from, to, !outsider, err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	slices.Sort(hot)
	if d := detected.Load(); d > 0 {
		tb.Errorf("%d hot attempts ended by PostgreSQL's deadlock detector (40P01): they waited deadlock_timeout (1 s) for a lock, which the HotSpot's bound should have ended", d)
	}
	return hot, int(n.Load())
}

// CheckNoDetectorWaits fails tb when the hot attempts of [Outsider] show
// lock waits that only PostgreSQL's deadlock detector ended: the
// statements of two hot attempts or more took 900 ms or more, about
// deadlock_timeout (1 s). A HotSpot bounds each lock wait after its lock
// to at most 200 ms (docs/contention.md), so an attempt's three
// statements take 600 ms at the very most; one slow attempt is left to a
// busy machine's stall. The count is absolute: only the attempt in a lock
// cycle waits for the detector, not the attempts queued behind it for the
// HotSpot's lock, so a share of all attempts would let a run of several
// hundred hide a few such waits. Whole transfers are not the measure: on a
// busy machine under SERIALIZABLE their retries, backoff and waits for the
// HotSpot's lock took more than 900 ms in 2 of 108 with no lock wait near
// the detector's.
func CheckNoDetectorWaits(tb testing.TB, hot []time.Duration) {
	tb.Helper()
	if len(hot) == 0 {
		tb.Fatal("no hot attempt ran its statements")
	}
	count := func(over time.Duration) int {
		i, _ := slices.BinarySearch(hot, over) // hot is sorted
		return len(hot) - i
	}
	slow := count(900 * time.Millisecond)
	tb.Logf("%d hot attempts' statements: p50 %v, p99 %v, max %v; %d over 500 ms, %d over 900 ms", len(hot), hot[len(hot)/2], hot[len(hot)*99/100], hot[len(hot)-1], count(500*time.Millisecond), slow)
	if slow >= 2 {
		tb.Errorf("the statements of %d of %d hot attempts took 900 ms or more, want at most 1: lock waits lasted until the deadlock detector (deadlock_timeout, 1 s)", slow, len(hot))
	}
}

// BoundsAfterLock counts the statements of stmts (one round trip each, as
// a tracer logs them) that set lock_timeout after a HotSpot's LOCK TABLE in
// the same round trip: the bound on the lock waits after the lock.
func BoundsAfterLock(stmts []string) int {
	n := 0
	for _, stmt := range stmts {
		if lock := strings.LastIndex(stmt, "LOCK TABLE"); lock >= 0 && strings.Contains(stmt[lock:], "; SELECT set_config('lock_timeout', ") {
			n++
		}
	}
	return n
}

// BoundsAfterAdvisoryLock counts the statements of stmts that set
// lock_timeout alone, in a round trip of their own: the bound a HotSpot's
// attempt sends once it holds PostgreSQL's advisory lock, where the lock
// tables are missing.
func BoundsAfterAdvisoryLock(stmts []string) int {
	n := 0
	for _, stmt := range stmts {
		if strings.HasPrefix(stmt, "SELECT set_config('lock_timeout', ") && !strings.Contains(stmt, ";") {
			n++
		}
	}
	return n
}
