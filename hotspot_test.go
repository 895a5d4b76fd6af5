package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/txmark"
)

// errConflict is a serialization failure: retryable, as a classifier
// would call SQLSTATE 40001.
var errConflict = dbop.Classify(errors.New("could not serialize access"), dbop.RetryTransaction)

// errLockTimeout is a lock timeout: the statement may be retried, as a
// classifier would call SQLSTATE 55P03.
var errLockTimeout = dbop.Classify(errors.New("canceling statement due to lock timeout"), dbop.RetryStatement)

// hotRow is a row under optimistic concurrency, as SERIALIZABLE treats it:
// an attempt reads its version, works for a millisecond, and commits only
// if nobody committed meanwhile; otherwise it fails with errConflict.
type hotRow struct {
	version  atomic.Int64
	attempts atomic.Int64
	g        gauge
}

func (r *hotRow) update(ctx context.Context) error {
	r.attempts.Add(1)
	r.g.enter()
	defer r.g.leave()
	v := r.version.Load()
	time.Sleep(time.Millisecond)
	if !r.version.CompareAndSwap(v, v+1) {
		return errConflict
	}
	return nil
}

// hammer runs ops operations from each of workers goroutines, and returns
// the most attempts one operation needed.
func hammer(t *testing.T, workers, ops int, run func(tries *int) error) int {
	t.Helper()
	var mu sync.Mutex
	most := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range ops {
				tries := 0
				if err := run(&tries); err != nil {
					t.Errorf("operation failed after %d attempts: %v", tries, err)
				}
				mu.Lock()
				most = max(most, tries)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return most
}

// On a row that admits one writer at a time, 16 goroutines with a plain
// retry collide on most attempts; with a HotSpot after the retry, the first
// conflicts make it admit one attempt at a time, and an operation that lost
// twice runs alone, so no operation needs more than three attempts.
func TestHotSpotAdmitsWhatSucceedsTogether(t *testing.T) {
	retry := dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 100*time.Millisecond)), dbop.MaxAttempts(1000))
	for _, tt := range []struct {
		name    string
		chain   dbop.Decorator
		maxRate float64 // attempts per operation at most
		most    int     // attempts of one operation at most; 0: any
	}{
		{"retry alone", retry, 0, 0},
		{"retry and HotSpot", dbop.Chain(retry, dbop.HotSpot()), 1.2, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const workers, ops = 16, 100
				var row hotRow
				most := hammer(t, workers, ops, func(tries *int) error {
					_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
						*tries++
						return 0, row.update(ctx)
					}).With(tt.chain).Run(context.Background())
					return err
				})
				rate := float64(row.attempts.Load()) / (workers * ops)
				t.Logf("%.2f attempts per operation, at most %d for one, peak concurrency %d", rate, most, row.g.peak.Load())
				if tt.maxRate > 0 && rate > tt.maxRate {
					t.Errorf("%.2f attempts per operation, want at most %.2f", rate, tt.maxRate)
				}
				if tt.most > 0 && most > tt.most {
					t.Errorf("an operation needed %d attempts, want at most %d", most, tt.most)
				}
			})
		})
	}
}

// Rows that do not conflict are not limited for long: a HotSpot starts
// cautious, one attempt at a time with deadlines, doubles its slots while
// nothing conflicts, and once nobody waits for a slot it lets 16
// goroutines on 16 rows of their own run at once, with no deadline.
func TestHotSpotLeavesDisjointWorkAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond)), dbop.HotSpot())
		var g gauge
		deadlines := 0
		var mu sync.Mutex
		run := func(*int) error {
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				g.enter()
				defer g.leave()
				if _, ok := ctx.Deadline(); ok {
					mu.Lock()
					deadlines++
					mu.Unlock()
				}
				time.Sleep(time.Millisecond)
				return 1, nil
			}).With(hs).Run(context.Background())
			return err
		}
		hammer(t, 16, 20, run) // the cautious start
		g.peak.Store(0)
		deadlines = 0
		hammer(t, 16, 20, run)
		if p := g.peak.Load(); p != 16 {
			t.Errorf("peak concurrency %d, want 16", p)
		}
		if deadlines != 0 {
			t.Errorf("%d attempts got a deadline, though nothing conflicted", deadlines)
		}
	})
}

// The same where the transaction scopes take the HotSpot's lock when asked
// (PostgreSQL with the lock tables, MariaDB): a HotSpot's first attempt
// asks for it, to learn that it waits in place, but work that never
// conflicted is not put in the lock's order, one attempt at a time; it is
// let through as above.
func TestHotSpotLeavesDisjointWorkAloneWhereTheLockWaitsInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newLockedWork()
		hammer(t, 16, 100, w.run) // the cautious start
		wantLetThrough(t, w)
	})
}

// Contention that is gone does not keep work in the lock's order: attempts
// that the lock orders do not conflict, so a HotSpot cannot see it end;
// contention expires, and the HotSpot starts again from one attempt,
// doubling while nothing conflicts, until it lets every attempt through.
func TestHotSpotLetsWorkThroughOnceContentionIsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newLockedWork()
		w.contended.Store(true)
		hammer(t, 16, 50, w.run) // contention: the lock orders the attempts
		if w.asked.Load() < 100 {
			t.Fatalf("%d attempts took the lock under contention, want most", w.asked.Load())
		}
		w.contended.Store(false)
		hammer(t, 16, 400, w.run) // gone
		wantLetThrough(t, w)
	})
}

// lockedWork is work on rows of its own run through a HotSpot, by a scope
// that takes the HotSpot's lock in place when asked: an attempt begins in
// 100 µs and works for a millisecond. While contended is set, an
// operation's first attempt that did not take the lock fails with a lock
// timeout.
type lockedWork struct {
	hs        dbop.Decorator
	lock      chan struct{}
	g         gauge
	asked     atomic.Int32 // attempts that took the lock
	contended atomic.Bool
}

func newLockedWork() *lockedWork {
	return &lockedWork{
		hs:   dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond)), dbop.HotSpot()),
		lock: make(chan struct{}, 1),
	}
}

// run runs one operation; hammer's tries is unused.
func (w *lockedWork) run(*int) error {
	first := true
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		time.Sleep(100 * time.Microsecond) // BEGIN
		locked := takeInPlace(ctx)
		if locked {
			w.asked.Add(1)
			w.lock <- struct{}{}
			defer func() { <-w.lock }()
		}
		w.g.enter()
		defer w.g.leave()
		time.Sleep(time.Millisecond)
		if w.contended.Load() && first && !locked {
			first = false
			return 0, errLockTimeout
		}
		return 1, nil
	}).With(w.hs).Run(context.Background())
	return err
}

// wantLetThrough runs 20 operations of w from each of 16 goroutines and
// checks that its HotSpot let them all run at once, none taking its lock.
func wantLetThrough(t *testing.T, w *lockedWork) {
	t.Helper()
	w.g.peak.Store(0)
	w.asked.Store(0)
	hammer(t, 16, 20, w.run)
	if p := w.g.peak.Load(); p != 16 {
		t.Errorf("peak concurrency %d, want 16", p)
	}
	if n := w.asked.Load(); n != 0 {
		t.Errorf("%d attempts took the lock, though nothing conflicted lately", n)
	}
}

// An attempt stuck in a lock wait that would end only when the database's
// deadlock detector runs (here: never, until its context ends) is cut short
// by the bound a limiting HotSpot derives, well below PostgreSQL's 1 s
// deadlock_timeout, and the retry runs it again: the bound is a server
// deadline for the adapters (hotlock.WithServerDeadline), and the context
// ends at twice it plus 50 ms for what the server does not end. The Op
// stands for a transaction scope of dbop's, which ends its transaction and
// judges its COMMIT (TestHotSpotCutOfAnOpOfYourOwnIsAmbiguous: one of the
// user's own).
func TestHotSpotBoundsLockWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			attempts    int
			waited      []time.Duration
			serverBound time.Duration
			errs        []error
		)
		op := dbop.Op[int](scoped(func(ctx context.Context) (int, error) {
			attempts++
			switch attempts {
			case 1:
				// Lost to another process's transaction: the HotSpot
				// limits, and bounds lock waits from now on.
				time.Sleep(time.Millisecond)
				return 0, errConflict
			case 2:
				// A lock cycle with another process: wait until the
				// context ends. The adapters would have the server end
				// the wait at the server deadline; this Op ignores it.
				start := time.Now()
				if at, ok := hotlock.ServerDeadline(ctx); ok {
					serverBound = at.Sub(start)
				}
				<-ctx.Done()
				waited = append(waited, time.Since(start))
				return 0, context.Cause(ctx)
			}
			time.Sleep(time.Millisecond)
			return 1, nil
		})).With(dbop.WithRetry(dbop.Constant(0), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
			errs = append(errs, e.Err)
		})), dbop.HotSpot())
		start := time.Now()
		v, err := op.Run(context.Background())
		if v != 1 || err != nil {
			t.Fatalf("got %d, %v; want 1, nil", v, err)
		}
		if attempts != 3 {
			t.Errorf("%d attempts, want 3", attempts)
		}
		if serverBound <= 0 || serverBound > 200*time.Millisecond {
			t.Errorf("the stuck attempt's server deadline was %v after its start, want one in (0, 200ms]", serverBound)
		}
		if len(waited) != 1 || waited[0] != 2*serverBound+50*time.Millisecond {
			t.Errorf("the stuck attempt waited %v, want its context to end at twice the server's bound plus 50ms, %v", waited, 2*serverBound+50*time.Millisecond)
		}
		if elapsed := time.Since(start); elapsed >= time.Second {
			t.Errorf("the operation took %v, want less than PostgreSQL's deadlock_timeout (1s)", elapsed)
		}
		if len(errs) != 2 {
			t.Fatalf("retried %d errors, want 2", len(errs))
		}
		var te *dbop.TimeoutError
		if !errors.As(errs[1], &te) || !errors.Is(errs[1], context.DeadlineExceeded) {
			t.Errorf("the stuck attempt failed with %v, want a *dbop.TimeoutError", errs[1])
		}
	})
}

// A conflict lost to work that got done is retried at once: the HotSpot's
// queue is the wait. A failure while nothing gets done (the database is
// down) waits for the backoff as usual.
func TestHotSpotPacesRetriesAfterLostConflicts(t *testing.T) {
	for _, tt := range []struct {
		name     string
		progress bool // another operation succeeds while the first attempt waits for its slot
		minWait  time.Duration
		maxWait  time.Duration
	}{
		{"lost to work that got done", true, 0, 10 * time.Millisecond},
		{"nothing gets done", false, time.Second, 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Second), dbop.MaxAttempts(10)), dbop.HotSpot())
				startLimiting(pipeline)
				hold, held := make(chan struct{}), make(chan struct{})
				var wg sync.WaitGroup
				if tt.progress {
					wg.Go(func() {
						dbop.Op[int](func(context.Context) (int, error) {
							close(held)
							<-hold
							return 1, nil
						}).With(pipeline).Run(context.Background())
					})
					<-held
				}
				attempts := 0
				op := dbop.Op[int](func(context.Context) (int, error) {
					attempts++
					if attempts == 1 {
						return 0, errConflict
					}
					return 1, nil
				}).With(pipeline)
				start := time.Now()
				if tt.progress {
					go func() {
						time.Sleep(time.Millisecond) // the op is queued
						close(hold)
					}()
				}
				if _, err := op.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				if took := time.Since(start); took < tt.minWait || took > tt.maxWait {
					t.Errorf("took %v, want between %v and %v", took, tt.minWait, tt.maxWait)
				}
			})
		})
	}
}

// startLimiting makes the HotSpot of pipeline limit, at one slot: one
// attempt conflicts, and the retry runs it again.
func startLimiting(pipeline dbop.Decorator) {
	once := true
	dbop.Op[int](func(context.Context) (int, error) {
		if once {
			once = false
			return 0, errConflict
		}
		return 1, nil
	}).With(pipeline).Run(context.Background())
}

// Inside a transaction a HotSpot lets attempts through: waiting for a slot
// while holding the transaction's locks could wait for ever.
func TestHotSpotInsideTransactionDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := dbop.HotSpot()
		pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), hs)
		// Limit at one attempt at a time, and hold the slot.
		startLimiting(pipeline)
		hold, held := make(chan struct{}), make(chan struct{})
		go dbop.Op[int](func(context.Context) (int, error) {
			close(held)
			<-hold
			return 1, nil
		}).With(pipeline).Run(context.Background())
		<-held
		inTx := dbop.WithinTx(context.Background())
		ran := false
		if _, err := dbop.Op[int](func(context.Context) (int, error) { ran = true; return 1, nil }).With(hs).Run(inTx); err != nil || !ran {
			t.Errorf("inside a transaction: ran %v, err %v; want it run at once", ran, err)
		}
		close(hold)
	})
}

// A HotSpot listed before the WithRetry whose attempts it would admit is
// refused when the pipeline is built.
func TestHotSpotPlacement(t *testing.T) {
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "HotSpot (decorator 1) is listed before WithRetry (decorator 2)") {
			t.Errorf("panic %q, want one naming HotSpot and WithRetry", msg)
		}
	}()
	op.With(dbop.HotSpot(), dbop.WithRetry(dbop.Constant(0)))
	t.Error("no panic")
}

// Waiting for a slot ends with the context, and the Op is not run.
func TestHotSpotWaitRespectsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
		startLimiting(pipeline)
		hold, held := make(chan struct{}), make(chan struct{})
		go dbop.Op[int](func(context.Context) (int, error) {
			close(held)
			<-hold
			return 1, nil
		}).With(pipeline).Run(context.Background())
		<-held
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		ran := false
		_, err := dbop.Op[int](func(context.Context) (int, error) { ran = true; return 1, nil }).With(pipeline).Run(ctx)
		if ran || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ran %v, err %v; want not run and context.DeadlineExceeded", ran, err)
		}
		close(hold)
	})
}

// After an attempt lost a conflict while it ran alone in this process,
// so to another process, a newcomer waits a successful attempt's duration
// before it starts, and a retry does not: across processes, the retries
// take their locks before the newcomers.
func TestHotSpotNewcomersYieldToRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const took = 10 * time.Millisecond
		pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
		// Lost to another process, then a success that took 10 ms.
		attempts := 0
		dbop.Op[int](func(context.Context) (int, error) {
			attempts++
			time.Sleep(took)
			if attempts == 1 {
				return 0, errConflict
			}
			return 1, nil
		}).With(pipeline).Run(context.Background())

		var starts []time.Duration
		failed := time.Time{}
		begin := time.Now()
		_, err := dbop.Op[int](func(context.Context) (int, error) {
			if failed.IsZero() {
				starts = append(starts, time.Since(begin))
				failed = time.Now()
				return 0, errConflict
			}
			starts = append(starts, time.Since(failed))
			return 1, nil
		}).With(pipeline).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(starts) != 2 || starts[0] < took || starts[1] != 0 {
			t.Errorf("the newcomer and its retry started after %v; want at least %v, then 0", starts, took)
		}
	})
}

// newHotSpot builds every HotSpot of TestHotSpotAsksForTheFleetLock at one
// place, as the same code does in every process of a fleet.
func newHotSpot() dbop.Decorator { return dbop.HotSpot() }

// Once an attempt lost a conflict while it ran alone in this process, so to
// another process, the HotSpot asks each attempt's transaction scope to
// take its lock (internal/hotlock), under a key that the same code computes
// in every process and a HotSpot built elsewhere does not; once a scope
// took it, newcomers no longer yield, since the lock orders the processes.
func TestHotSpotAsksForTheFleetLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const took = 10 * time.Millisecond
		keys := map[string]int64{}
		for _, c := range []struct {
			name string
			hs   dbop.Decorator
		}{{"process 1", newHotSpot()}, {"process 2", newHotSpot()}, {"elsewhere", dbop.HotSpot()}} {
			pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), c.hs)
			// The first attempt of a limiting spell asks, to learn
			// whether the scope waits for the lock in place; this one
			// takes none, as an Op of one's own.
			var probe *hotlock.Request
			dbop.Op[int](func(ctx context.Context) (int, error) {
				probe = hotlock.From(ctx)
				time.Sleep(took)
				return 1, nil
			}).With(pipeline).Run(context.Background())
			if probe == nil {
				t.Fatalf("%s: the first attempt did not ask for the lock", c.name)
			}
			var reqs []*hotlock.Request
			attempts := 0
			dbop.Op[int](func(ctx context.Context) (int, error) {
				attempts++
				reqs = append(reqs, hotlock.From(ctx))
				time.Sleep(took)
				if attempts == 1 {
					return 0, errConflict // lost while alone: another process
				}
				return 1, nil
			}).With(pipeline).Run(context.Background())
			// The first attempt asks too: after a success with
			// nobody waiting, the HotSpot heads for letting every
			// attempt through, and asks each attempt admitted alone
			// for the lock, to learn whether another process holds it.
			if len(reqs) != 2 || reqs[0] == nil || reqs[1] == nil {
				t.Fatalf("%s: requests %v; want one on the first attempt (on the way to calm) and one on the retry", c.name, reqs)
			}
			keys[c.name] = reqs[1].Key

			// A scope takes the lock, as pgxdb's and sqldb's do.
			begin := time.Now()
			var start time.Duration
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				start = time.Since(begin)
				req := hotlock.From(ctx)
				if req == nil || !req.Claim() {
					t.Fatalf("%s: no request to claim", c.name)
				}
				if req.Claim() {
					t.Errorf("%s: a request claimed twice", c.name)
				}
				req.Took()
				time.Sleep(took)
				return 1, nil
			}).With(pipeline).Run(context.Background())
			if err != nil || start < took {
				t.Fatalf("%s: before the lock was taken, a newcomer started after %v (err %v); want a yield of %v", c.name, start, err, took)
			}
			begin = time.Now()
			dbop.Op[int](func(ctx context.Context) (int, error) {
				start = time.Since(begin)
				return 1, nil
			}).With(pipeline).Run(context.Background())
			if start != 0 {
				t.Errorf("%s: once the lock was taken, a newcomer started after %v; want at once", c.name, start)
			}
		}
		if keys["process 1"] != keys["process 2"] || keys["process 1"] == keys["elsewhere"] {
			t.Errorf("keys %v: want one key for the HotSpots built at one place, another elsewhere", keys)
		}
	})
}

// A scope that waits for the lock in place (MariaDB's row lock, say) lets
// two attempts run at once in one process: one holds the lock, the other
// waits for it in the server, its BEGIN done. Alone in its process the
// HotSpot does that only where it gets more done than one attempt at a
// time without the lock, which the level search finds out: here each
// attempt begins in 2 ms, then holds the rows for 10 ms, and the lock's
// statement costs lockCost, spent holding it. A waiting attempt's BEGIN
// overlaps its holder's work, so pipelining wins with a cheap lock (10 ms
// per transfer against 12) and loses with a dear one (13 against 12).
func TestHotSpotLetsOneWaitInTheServer(t *testing.T) {
	for _, c := range []struct {
		name     string
		lockCost time.Duration
		pipeline bool
	}{
		{"the lock pays", 0, true},
		{"the lock costs more than it saves", 3 * time.Millisecond, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
				// Work that does not conflict is not put in the lock's
				// order (TestHotSpotLeavesDisjointWorkAloneWhereTheLockWaitsInPlace):
				// uncontended, the HotSpot lets attempts through; then
				// one conflicts (a lock timeout), and it limits again,
				// and its next attempts too, more than one in eight:
				// contention. The first attempt of the spell learns
				// that the lock waits in place.
				for range 2 * 128 {
					dbop.Op[int](func(ctx context.Context) (int, error) {
						takeInPlace(ctx)
						return 1, nil
					}).With(pipeline).Run(context.Background())
				}
				attempt := 0
				dbop.Op[int](func(ctx context.Context) (int, error) {
					switch attempt++; {
					case attempt == 1 && hotlock.From(ctx) != nil:
						t.Fatal("the HotSpot still limits after 256 uncontended operations")
					case attempt == 2 && !takeInPlace(ctx):
						t.Fatal("the first attempt of the spell did not ask for the lock")
					case attempt > 4:
						return 1, nil
					}
					return 0, errLockTimeout
				}).With(pipeline).Run(context.Background())

				rows := make(chan struct{}, 1) // the hot rows, or the lock that orders them
				const workers, each, last = 8, 200, 400
				var n, asked, inFlight, most atomic.Int32
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for range each {
							dbop.Op[int](func(ctx context.Context) (int, error) {
								late := n.Add(1) > workers*each-last
								if late {
									k := inFlight.Add(1)
									defer inFlight.Add(-1)
									for m := most.Load(); k > m && !most.CompareAndSwap(m, k); m = most.Load() {
									}
								}
								time.Sleep(2 * time.Millisecond) // BEGIN
								locked := takeInPlace(ctx)
								rows <- struct{}{}
								if locked {
									time.Sleep(c.lockCost)
								}
								if late && locked {
									asked.Add(1)
								}
								time.Sleep(10 * time.Millisecond)
								<-rows
								return 1, nil
							}).With(pipeline).Run(context.Background())
						}
					})
				}
				wg.Wait()
				// Of the last attempts, a trial of the other level may
				// take one window of 96. One at a time, every attempt
				// is admitted alone, and one in four of those asks all
				// the same, to find a process that may have started
				// meanwhile (TestHotSpotFindsAProcessThatCameBack).
				if c.pipeline && asked.Load() < last-96 {
					t.Errorf("%d of the last %d attempts asked for the lock, want at least %d", asked.Load(), last, last-96)
				}
				if want := int32(96 + last/4); !c.pipeline && asked.Load() > want {
					t.Errorf("%d of the last %d attempts asked for the lock, want at most %d", asked.Load(), last, want)
				}
				// Never more than the holder and one waiter.
				if most.Load() > 2 || (c.pipeline && most.Load() != 2) {
					t.Errorf("at most %d attempts ran at once", most.Load())
				}
			})
		})
	}
}

// An attempt that held the lock and still lost a conflict shows a writer
// the lock does not order (another Galera node, say), but one such loss in
// 32 is PostgreSQL's snapshot taken a moment before the lock, and a burst
// of them another process that does not take the lock yet: only when more
// than one in eight of the attempts that held the lock lost, in four
// windows of 32 in a row, does the HotSpot stop asking for it on every
// attempt (and letting one wait for it in the server).
func TestHotSpotJudgesALeakingLock(t *testing.T) {
	for _, c := range []struct {
		name string
		lose func(n int) bool // whether the n-th attempt that holds the lock loses
		asks bool             // whether attempts still ask for the lock
	}{
		{"one loss in 32", func(n int) bool { return n%32 == 0 }, true},
		{"every other lost", func(n int) bool { return n%2 == 0 }, false},
		// Processes starting: another one does not take the lock yet
		// (in two-process PostgreSQL runs, the first two windows).
		{"every other lost, then none", func(n int) bool { return n <= 40 && n%2 == 0 }, true},
		{"every other lost for three windows, then none", func(n int) bool { return n <= 96 && n%2 == 0 }, true},
	} {
		synctest.Test(t, func(t *testing.T) {
			pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
			n := 0
			// 90 operations: about 135 attempts, 4 windows of 32 that
			// held the lock, before the level search first tries a
			// second slot (after 2 windows of 96 attempts).
			for range 90 {
				dbop.Op[int](func(ctx context.Context) (int, error) {
					takeInPlace(ctx)
					time.Sleep(time.Millisecond)
					if n++; c.lose(n) {
						return 0, errConflict
					}
					return 1, nil
				}).With(pipeline).Run(context.Background())
			}
			var asked atomic.Int32
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					dbop.Op[int](func(ctx context.Context) (int, error) {
						if takeInPlace(ctx) {
							asked.Add(1)
						}
						time.Sleep(10 * time.Millisecond)
						return 1, nil
					}).With(pipeline).Run(context.Background())
				})
			}
			wg.Wait()
			if want := map[bool]int32{true: 3, false: 0}[c.asks]; asked.Load() != want {
				t.Errorf("%s: %d of 3 attempts asked for the lock, want %d", c.name, asked.Load(), want)
			}
		})
	}
}

// takeTimed takes lock for a request already claimed, as a scope whose
// lock waits in place does, and times its statement (a 50 µs round trip
// and the wait), as the scopes time it for lockWaitsLocked.
func takeTimed(req *hotlock.Request, lock chan struct{}) {
	start := time.Now()
	time.Sleep(50 * time.Microsecond) // the statement's round trip
	lock <- struct{}{}
	req.Took()
	req.InPlace()
	req.TookFor(time.Since(start))
}

// takeInPlace claims the lock request on ctx, if any, as a scope whose
// lock waits in place (MariaDB's row lock) does, and reports whether it did.
func takeInPlace(ctx context.Context) bool {
	req := hotlock.From(ctx)
	if req == nil || !req.Claim() {
		return false
	}
	req.Took()
	req.InPlace()
	return true
}

// A HotSpot lets every attempt through at once only when that is safe: not
// while the attempts it admits run side by side because its lock puts them
// in order (two workers, one holding the lock, one waiting for it in the
// server), nor while another process's attempts write the rows. Let
// through unordered, opposite transfers wait for each other until the
// deadlock detector ends one, a second later on PostgreSQL. The rows here
// are such a pair: an attempt that writes them beside another without
// holding the lock waits until its deadline, or a second.
func TestHotSpotStaysWhileItsLockOrdersAttempts(t *testing.T) {
	for _, c := range []struct {
		name               string
		processes, workers int
	}{
		{"two workers in one process", 1, 2},
		{"one worker in each of two processes", 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lock := make(chan struct{}, 1) // the HotSpot's lock, across processes
				var inFlight, unordered, cycles atomic.Int32
				attempt := scoped(func(ctx context.Context) (int, error) {
					time.Sleep(100 * time.Microsecond) // BEGIN
					if req := hotlock.From(ctx); req != nil && req.Claim() {
						req.Took()
						req.InPlace()
						select {
						case lock <- struct{}{}:
						default:
							req.Waited()
							lock <- struct{}{}
						}
						defer func() { <-lock }()
						time.Sleep(500 * time.Microsecond)
						return 1, nil
					}
					if inFlight.Add(1) > 1 || len(lock) > 0 {
						// Beside another writer, unordered: a lock
						// cycle, ended by the attempt's deadline or
						// the deadlock detector.
						defer inFlight.Add(-1)
						unordered.Add(1)
						timer := time.NewTimer(time.Second)
						defer timer.Stop()
						select {
						case <-timer.C:
							cycles.Add(1)
							return 0, errConflict
						case <-ctx.Done():
							return 0, ctx.Err()
						}
					}
					time.Sleep(500 * time.Microsecond)
					inFlight.Add(-1)
					return 1, nil
				})
				var wg sync.WaitGroup
				for range c.processes {
					// Built at one place: the same lock in every process.
					pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(20)), dbop.HotSpot())
					for range c.workers {
						wg.Go(func() {
							for range 2000 {
								if _, err := dbop.Op[int](attempt).With(pipeline).Run(context.Background()); err != nil {
									t.Errorf("transfer failed: %v", err)
								}
							}
						})
					}
				}
				wg.Wait()
				if n := cycles.Load(); n > 0 {
					t.Errorf("%d attempts waited a second in a lock cycle (%d ran unordered beside another), want none", n, unordered.Load())
				}
			})
		})
	}
}

// A process whose attempts win every conflict never loses one, so only the
// HotSpot's lock can tell it of another process, whose attempts take the
// lock and lose to it again and again (under SERIALIZABLE the faster writer
// wins). Before it lets every attempt through, a HotSpot therefore asks
// the attempts it admits alone for the lock, and one that waited for it,
// even briefly, keeps it limiting and taking the lock.
func TestHotSpotLearnsOfAnotherProcessBeforeItStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := make(chan struct{}, 1) // the HotSpot's lock, across processes
		ctx, stop := context.WithCancel(context.Background())
		var other sync.WaitGroup
		other.Go(func() {
			// The other process: its attempts hold the lock for a
			// millisecond, then leave it free for one.
			for ctx.Err() == nil {
				lock <- struct{}{}
				time.Sleep(time.Millisecond)
				<-lock
				time.Sleep(time.Millisecond)
			}
		})
		pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot())
		unlocked := 0
		for i := range 3000 {
			dbop.Op[int](func(ctx context.Context) (int, error) {
				req := hotlock.From(ctx)
				if req == nil || !req.Claim() {
					if i >= 1000 {
						unlocked++
					}
					time.Sleep(300 * time.Microsecond)
					return 1, nil
				}
				takeTimed(req, lock)
				time.Sleep(300 * time.Microsecond)
				<-lock
				return 1, nil
			}).With(pipeline).Run(context.Background())
		}
		stop()
		other.Wait()
		if unlocked > 0 {
			t.Errorf("%d of the last 2000 attempts ran without the lock while another process took it, want none", unlocked)
		}
	})
}

// serializableFleet simulates two processes writing the same rows under
// SERIALIZABLE, with the HotSpot's lock between them: the winning one's
// short transactions commit first, so it loses only to its own; the losing
// one's lose to any of the winner's that ran meanwhile without the lock.
type serializableFleet struct {
	lock                                      chan struct{} // the HotSpot's lock, across processes
	winnersUnlocked, winnerRuns, winnerLocked atomic.Int64
	winners, losers                           dbop.Decorator
	mu                                        sync.Mutex
	rng                                       *rand.Rand
}

// write is how long a transaction writes the rows: a millisecond, give or
// take a fifth, as a server's answers vary (in lockstep, the processes'
// lock statements would all wait exactly as long, which no server does).
func (f *serializableFleet) write() {
	f.mu.Lock()
	d := 800*time.Microsecond + time.Duration(f.rng.Int64N(int64(400*time.Microsecond)))
	f.mu.Unlock()
	time.Sleep(d)
}

// newSerializableFleet: the losing process retries after wait, at most
// loserAttempts times.
func newSerializableFleet(wait dbop.Backoff, loserAttempts int) *serializableFleet {
	return &serializableFleet{
		lock:    make(chan struct{}, 1),
		rng:     rand.New(rand.NewPCG(1, 2)),
		winners: dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot()),
		losers:  dbop.Chain(dbop.WithRetry(wait, dbop.MaxAttempts(loserAttempts)), dbop.HotSpot()),
	}
}

// attempt runs one attempt of a process's operation: it takes the lock if
// asked (timing the wait, as the scopes do), writes the rows (write), and
// loses a conflict: in the winning process, when another
// of its transactions ran beside it, neither holding the lock; in the
// losing one, when a transaction of the winning one that did not take the
// lock ran meanwhile.
func (f *serializableFleet) attempt(ctx context.Context, winner bool) error {
	req := hotlock.From(ctx)
	locked := req != nil && req.Claim()
	if locked {
		takeTimed(req, f.lock)
		defer func() { <-f.lock }()
	}
	if winner {
		if locked {
			f.winnerLocked.Add(1)
		} else {
			f.winnersUnlocked.Add(1)
			defer f.winnersUnlocked.Add(-1)
		}
		f.winnerRuns.Add(1)
		f.write()
		if !locked && f.winnersUnlocked.Load() > 1 {
			return errConflict // with its own process's other transaction
		}
		return nil
	}
	before, during := f.winnerRuns.Load(), f.winnersUnlocked.Load() > 0
	f.write()
	if during || (f.winnerRuns.Load() != before && f.winnersUnlocked.Load() > 0) {
		return errConflict
	}
	return nil
}

// win starts the winning process's two workers; stop ends them and waits
// for them.
func (f *serializableFleet) win() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				dbop.Op[int](func(ctx context.Context) (int, error) { return 1, f.attempt(ctx, true) }).With(f.winners).Run(context.Background())
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// lose runs ops operations in each of the losing process's two workers and
// reports how many gave up, the most attempts one took and the longest one
// took.
func (f *serializableFleet) lose(ops int) (gaveUp, most int32, longest time.Duration) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range ops {
				tries, start := int32(0), time.Now()
				_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
					tries++
					return 1, f.attempt(ctx, false)
				}).With(f.losers).Run(context.Background())
				mu.Lock()
				if err != nil {
					gaveUp++
				}
				most, longest = max(most, tries), max(longest, time.Since(start))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return gaveUp, most, longest
}

// Under SERIALIZABLE the transaction that commits first wins: a process
// whose short transactions win every conflict never loses one, so nothing
// of its own shows it another process, and the other's attempts, which lose
// and so take the HotSpot's lock, lose to it again and again (seen live:
// two workers in each of two processes on PostgreSQL, one process's
// operations losing 14 times in a row, 4.7 s). A HotSpot that begins to
// limit asks for the lock on its first attempts, so that each process
// waits for the other's, and the waits keep both taking it.
func TestHotSpotsOfTwoProcessesFindEachOtherWhenOneWinsEveryConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSerializableFleet(dbop.Constant(time.Millisecond), 10)
		stop := f.win()
		gaveUp, most, _ := f.lose(300)
		stop()
		// Each process's first lock statements wait for the other's
		// transactions, about as long as the rest of its own attempt
		// takes, so they find each other before the first probes end
		// (none lost in 2000 runs under the race detector; judged by
		// the fastest statement alone, whose first samples are such
		// waits, 7 to 10 attempts in 5 of 300 runs, a give-up in 2).
		if gaveUp > 0 || most > 3 {
			t.Errorf("the losing process gave up %d of 600 operations, and one took %d attempts; want none, and at most 3 (the winning process took the lock in %d of its %d attempts)", gaveUp, most, f.winnerLocked.Load(), f.winnerRuns.Load())
		}
	})
}

// The same two processes, when the losing one pauses for longer than the
// winning one remembers another process (externalFor admissions) and comes
// back while the winning one still limits (its own two workers keep its
// queue busy); the same holds for a process that starts while another
// limits. The winner takes the lock only while it sees the other, so the
// returning process's attempts, which take it, lose to the winner's, which
// do not, until the winner asks for the lock again: a HotSpot that limits
// asks on one attempt in probeEvery it admits alone, and on the next few
// after one that waited. The returning operations wait for a few of the
// winner's attempts, not for good: none gives up with the README's 50
// attempts, none takes long, and none needs many attempts (one in 16
// attempts asking: 15 and 19 attempts in 2 of 10 runs; one in 4: at most
// 8 in 100).
func TestHotSpotFindsAProcessThatCameBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSerializableFleet(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)), 50)
		stop := f.win()
		f.lose(100)
		// The winner runs alone for 8 s: some 8000 admissions, one at a
		// time, twice what it remembers.
		runs, locked := f.winnerRuns.Load(), f.winnerLocked.Load()
		time.Sleep(8 * time.Second)
		runs, locked = f.winnerRuns.Load()-runs, f.winnerLocked.Load()-locked
		gaveUp, most, longest := f.lose(300)
		stop()
		if gaveUp > 0 || longest > 100*time.Millisecond || most > 10 {
			t.Errorf("back after a pause, the losing process gave up %d of 600 operations, and one took %v and %d attempts; want none, at most 100ms and at most 10 attempts (while it paused, the winner ran %d attempts, %d of them with the lock)", gaveUp, longest, most, runs, locked)
		}
	})
}

// An Op of the user's own (it begins no transaction through a scope of
// dbop's) that the HotSpot's backstop cuts short may have been cut in its
// COMMIT, which the server may have applied: the driver closes the
// connection, and nothing says where the cut fell. So the error is
// Ambiguous, retried only by an Idempotent retry and never replaced by a
// fallback. Before, it was a *dbop.TimeoutError, retried whole: a review
// saw a COMMIT whose answer came 600 ms late applied twice.
func TestHotSpotCutOfAnOpOfYourOwnIsAmbiguous(t *testing.T) {
	for _, idempotent := range []bool{false, true} {
		t.Run(fmt.Sprintf("idempotent=%v", idempotent), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				attempts := 0
				op := dbop.Op[int](func(ctx context.Context) (int, error) {
					attempts++
					switch attempts {
					case 1:
						// Lost to another process: the HotSpot bounds
						// attempts from now on.
						time.Sleep(time.Millisecond)
						return 0, errConflict
					case 2:
						// Its COMMIT's answer is slow to come back.
						<-ctx.Done()
						return 0, ctx.Err()
					}
					return 1, nil
				})
				var opts []dbop.RetryOption
				if idempotent {
					opts = append(opts, dbop.Idempotent())
				}
				v, err := op.With(dbop.OrDefault(-1), dbop.WithRetry(dbop.Constant(0), opts...), dbop.HotSpot()).Run(context.Background())
				if idempotent {
					if v != 1 || err != nil || attempts != 3 {
						t.Errorf("Idempotent: got %d, %v after %d attempts; want 1, nil after 3", v, err, attempts)
					}
					return
				}
				var te *dbop.TimeoutError
				if dbop.VerdictOf(err) != dbop.Ambiguous || !errors.As(err, &te) || attempts != 2 {
					t.Errorf("got %d, %v (verdict %v) after %d attempts; want the cut attempt's *dbop.TimeoutError, Ambiguous, not run again nor defaulted", v, err, dbop.VerdictOf(err), attempts)
				}
			})
		})
	}
}

// scoped runs op as a transaction scope of dbop's returns its errors: an
// adapter's InTx and Do, whose classifiers make a cut attempt's errors
// retryable, return them marked released (txmark.Mark), a mark new for each
// return, and report the mark to a HotSpot that cut the attempt short
// (txmark.OwnerEnded). The fakes of these tests stand for them.
func scoped[T any](op func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		v, err := op(ctx)
		if err != nil {
			m := &txmark.Mark{Kind: txmark.Released, Err: err}
			txmark.OwnerEnded(ctx, m)
			return v, m
		}
		return v, nil
	}
}
