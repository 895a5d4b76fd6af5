package dbop_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// ledger is a few accounts under optimistic concurrency, as SERIALIZABLE
// treats rows read by key: a transfer reads the versions of its two
// accounts, works for a millisecond, and commits only if neither changed
// meanwhile; otherwise it fails with errConflict. Transfers of disjoint
// accounts never conflict.
type ledger struct {
	mu        sync.Mutex
	version   []int64
	busy      []int // attempts in flight per account
	overlaps  atomic.Int64
	attempts  atomic.Int64
	conflicts atomic.Int64
	g         gauge
}

func newLedger(accounts int) *ledger {
	return &ledger{version: make([]int64, accounts), busy: make([]int, accounts)}
}

func (l *ledger) transfer(from, to int) error {
	l.attempts.Add(1)
	l.g.enter()
	defer l.g.leave()
	l.mu.Lock()
	vf, vt := l.version[from], l.version[to]
	if l.busy[from] > 0 || l.busy[to] > 0 {
		l.overlaps.Add(1)
	}
	l.busy[from]++
	l.busy[to]++
	l.mu.Unlock()
	time.Sleep(time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.busy[from]--
	l.busy[to]--
	if l.version[from] != vf || l.version[to] != vt {
		l.conflicts.Add(1)
		return errConflict
	}
	l.version[from]++
	l.version[to]++
	return nil
}

type transferRun struct {
	elapsed, slowest time.Duration
	mostTries        int
}

// transfers runs ops transfers between two random accounts of l from each
// of workers goroutines through one pipeline, with the accounts as
// HotSpotKeys when keyed.
func transfers(t *testing.T, l *ledger, chain dbop.Decorator, workers, ops int, keyed bool) transferRun {
	t.Helper()
	var (
		mu  sync.Mutex
		r   transferRun
		wg  sync.WaitGroup
		n   = len(l.version)
		beg = time.Now()
	)
	for w := range workers {
		rng := rand.New(rand.NewPCG(1, uint64(w)))
		wg.Go(func() {
			for range ops {
				from := rng.IntN(n)
				to := (from + 1 + rng.IntN(n-1)) % n
				ctx := context.Background()
				if keyed {
					ctx = dbop.HotSpotKeys(ctx, int64(from), int64(to))
				}
				tries := 0
				start := time.Now()
				_, err := dbop.Op[int](func(context.Context) (int, error) {
					tries++
					return 0, l.transfer(from, to)
				}).With(chain).Run(ctx)
				if err != nil {
					t.Errorf("transfer %d→%d failed after %d attempts: %v", from, to, tries, err)
				}
				mu.Lock()
				r.slowest = max(r.slowest, time.Since(start))
				r.mostTries = max(r.mostTries, tries)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(beg)
	return r
}

// With 16 workers moving money among 4 accounts, a HotSpot that knows each
// transfer's accounts runs transfers of disjoint accounts side by side and
// never two that share one: after the conflicts that make it limit, none
// conflicts, and the work is done in well under the time of one at a time.
// Without keys it runs them one at a time.
func TestHotSpotKeysRunDisjointWorkSideBySide(t *testing.T) {
	const workers, ops, accounts = 16, 100, 4
	retry := dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 100*time.Millisecond)), dbop.MaxAttempts(1000))
	var oneAtATime time.Duration
	for _, keyed := range []bool{false, true} {
		name := map[bool]string{false: "no keys", true: "keys"}[keyed]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLedger(accounts)
				chain := dbop.Chain(retry, dbop.HotSpot())
				// A first batch brings the HotSpot to its level.
				transfers(t, l, chain, workers, ops, keyed)
				l.g.peak.Store(0)
				l.overlaps.Store(0)
				c0, a0 := l.conflicts.Load(), l.attempts.Load()
				r := transfers(t, l, chain, workers, ops, keyed)
				conflicts, attempts := l.conflicts.Load()-c0, l.attempts.Load()-a0
				t.Logf("%v for %d transfers, %d attempts, %d conflicts, %d attempts beside one on a shared account, peak %d at once, slowest %v, at most %d attempts",
					r.elapsed, workers*ops, attempts, conflicts, l.overlaps.Load(), l.g.peak.Load(), r.slowest, r.mostTries)
				if !keyed {
					oneAtATime = r.elapsed
					return
				}
				if n := l.overlaps.Load(); n != 0 {
					t.Errorf("%d attempts ran beside another on a shared account, want none", n)
				}
				if conflicts != 0 {
					t.Errorf("%d conflicts, want none", conflicts)
				}
				if p := l.g.peak.Load(); p < 2 {
					t.Errorf("peak %d transfers at once, want 2 (two disjoint pairs of 4 accounts)", p)
				}
				if r.elapsed > oneAtATime*3/4 {
					t.Errorf("%v with keys, %v without: want at most three quarters", r.elapsed, oneAtATime)
				}
				// Fair: the oldest waiter keeps its accounts reserved, so
				// no transfer waits much longer than 16 others' turns.
				if r.slowest > 50*time.Millisecond {
					t.Errorf("the slowest transfer took %v, want at most 50ms", r.slowest)
				}
			})
		})
	}
}

// A transfer between two accounts that others keep busy one at a time is
// not starved: once it waits, the later transfers that share one of its
// accounts wait behind it.
func TestHotSpotKeysKeepTheOldestWaitersPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLedger(2)
		chain := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(100)), dbop.HotSpot())
		run := func(ctx context.Context, keys []int64, f func() error) error {
			_, err := dbop.Op[int](func(context.Context) (int, error) { return 0, f() }).With(chain).Run(dbop.HotSpotKeys(ctx, keys...))
			return err
		}
		// Two streams keep account 0 and account 1 busy, each one at a
		// time: a HotSpot starts limiting, and with nothing conflicting
		// its level soon lets them run side by side.
		var stop atomic.Bool
		var wg sync.WaitGroup
		for k := range int64(2) {
			for range 4 {
				wg.Go(func() {
					for !stop.Load() {
						if err := run(context.Background(), []int64{k}, func() error { l.g.enter(); defer l.g.leave(); time.Sleep(time.Millisecond); return nil }); err != nil {
							t.Error(err)
						}
					}
				})
			}
		}
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		// Starved, it would wait for ever: give up after a second.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := run(ctx, []int64{0, 1}, func() error { time.Sleep(time.Millisecond); return nil }); err != nil {
			t.Errorf("the transfer of both accounts: %v", err)
		}
		waited := time.Since(start)
		time.Sleep(time.Millisecond)
		stop.Store(true)
		wg.Wait()
		t.Logf("the transfer of both accounts took %v; the streams ran %d at once at most", waited, l.g.peak.Load())
		if p := l.g.peak.Load(); p != 2 {
			t.Errorf("the streams ran %d at once at most, want 2", p)
		}
		if waited > 20*time.Millisecond {
			t.Errorf("the transfer of both accounts took %v, want at most 20ms", waited)
		}
	})
}

// Keys that do not name the rows an operation writes cost conflicts, never
// correctness: every operation still succeeds, and one that lost twice
// runs alone.
func TestHotSpotKeysThatLie(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var row hotRow
		chain := dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 100*time.Millisecond)), dbop.MaxAttempts(1000)), dbop.HotSpot())
		var next atomic.Int64
		most := hammer(t, 16, 50, func(tries *int) error {
			ctx := dbop.HotSpotKeys(context.Background(), next.Add(1)) // every operation claims a row of its own
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				*tries++
				return 0, row.update(ctx)
			}).With(chain).Run(ctx)
			return err
		})
		rate := float64(row.attempts.Load()) / (16 * 50)
		t.Logf("%.2f attempts per operation, at most %d", rate, most)
		if most > 3 {
			t.Errorf("an operation needed %d attempts, want at most 3 (the third runs alone)", most)
		}
	})
}

func TestHotSpotKeysWithoutKeys(t *testing.T) {
	ctx := context.Background()
	if got := dbop.HotSpotKeys(ctx); got != ctx {
		t.Error("HotSpotKeys with no keys returned a new context")
	}
}

// Across processes, once the HotSpot takes its lock, an attempt with keys
// asks its scope for the lock with its keys (sorted, once each), so that
// the scope takes a lock per key (internal/hotlock); one without keys asks
// for the HotSpot's lock alone. Once a keyed attempt that ran beside
// another loses a conflict, the keys are not believed, and attempts ask
// for the HotSpot's lock alone again.
func TestHotSpotKeysAskForLocksPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const took = 10 * time.Millisecond
		pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
		run := func(ctx context.Context, lose bool) *hotlock.Request {
			var last *hotlock.Request
			attempts := 0
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				attempts++
				last = hotlock.From(ctx)
				takeInPlace(ctx)
				time.Sleep(took)
				if lose && attempts == 1 {
					return 0, errConflict
				}
				return 1, nil
			}).With(pipeline).Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return last
		}
		bg := context.Background()
		run(bg, false) // the probe: the scope waits in place
		run(bg, true)  // lost alone: another process writes the rows
		if req := run(dbop.HotSpotKeys(bg, 4, 2, 4), false); req == nil || !slices.Equal(req.Keys, []int64{2, 4}) {
			t.Fatalf("a keyed attempt asked for %+v, want the lock with keys [2 4]", req)
		}
		if req := run(bg, false); req == nil || req.Keys != nil {
			t.Fatalf("an attempt without keys asked for %+v, want the lock without keys", req)
		}

		// A burst of keyed work, disjoint, lets the level grow above one.
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for range 50 {
					run(dbop.HotSpotKeys(bg, int64(100+w)), false)
				}
			})
		}
		wg.Wait()

		// Two keyed operations at once, whose keys lie: the second,
		// admitted beside the first, loses. (The level search may be
		// trying one slot at the moment: then the second runs after the
		// first, and the pair runs again.)
		var retried *hotlock.Request
		beside := false
		for try := 0; !beside && try < 200; try++ {
			started := make(chan struct{})
			var done atomic.Bool
			wg.Go(func() {
				dbop.Op[int](func(ctx context.Context) (int, error) {
					close(started)
					takeInPlace(ctx)
					time.Sleep(3 * took)
					done.Store(true)
					return 1, nil
				}).With(pipeline).Run(dbop.HotSpotKeys(bg, 2))
			})
			wg.Go(func() {
				<-started
				attempts := 0
				dbop.Op[int](func(ctx context.Context) (int, error) {
					takeInPlace(ctx)
					if attempts++; attempts == 1 {
						beside = !done.Load()
						time.Sleep(took)
						if beside {
							return 0, errConflict
						}
						return 1, nil
					}
					retried = hotlock.From(ctx)
					return 1, nil
				}).With(pipeline).Run(dbop.HotSpotKeys(bg, 1))
			})
			wg.Wait()
		}
		if !beside {
			t.Fatal("the second keyed operation never ran beside the first")
		}
		if retried == nil || retried.Keys != nil {
			t.Errorf("after keys were caught lying, the retry asked for %+v, want the lock without keys", retried)
		}
	})
}
