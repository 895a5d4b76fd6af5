package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
)

// gauge counts the runs in progress and remembers the peak.
type gauge struct{ running, peak atomic.Int32 }

func (g *gauge) enter() {
	n := g.running.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
}

func (g *gauge) leave() { g.running.Add(-1) }

// Under synctest time moves only once every goroutine is blocked, so each
// op that got a slot is asleep in it at once: the peak is exactly the limit,
// and the test fails if the limit is exceeded or never reached.
func TestBulkheadCapsConcurrency(t *testing.T) {
	for _, limit := range []int64{1, 4, 10} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const goroutines = 100
				var g gauge
				op := dbop.Op[int](func(context.Context) (int, error) {
					g.enter()
					defer g.leave()
					time.Sleep(time.Millisecond)
					return 1, nil
				}).With(dbop.Bulkhead(limit))

				var wg sync.WaitGroup
				var done atomic.Int32
				for range goroutines {
					wg.Go(func() {
						if v, err := op.Run(context.Background()); v != 1 || err != nil {
							t.Errorf("got %d, %v", v, err)
						}
						done.Add(1)
					})
				}
				wg.Wait()
				if p := g.peak.Load(); p != int32(limit) {
					t.Errorf("peak concurrency %d, want exactly the limit %d", p, limit)
				}
				if n := done.Load(); n != goroutines {
					t.Errorf("%d runs completed, want %d", n, goroutines)
				}
			})
		})
	}
}

// One Bulkhead shared by Ops of different result types is one limit.
func TestBulkheadIsSharedByEveryOpItDecorates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := dbop.Bulkhead(3)
		var g gauge
		work := func() { g.enter(); time.Sleep(time.Second); g.leave() }
		count := dbop.Op[int](func(context.Context) (int, error) { work(); return 1, nil }).With(pool)
		name := dbop.Op[string](func(context.Context) (string, error) { work(); return "x", nil }).With(dbop.Chain(pool))
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() { count.Run(context.Background()) })
			wg.Go(func() { name.Run(context.Background()) })
		}
		wg.Wait()
		if p := g.peak.Load(); p != 3 {
			t.Errorf("peak concurrency across both ops %d, want 3", p)
		}
	})
}

// Inside the retry the bulkhead caps attempts, and a retrying operation
// gives its slot back while it waits, so other operations go ahead; outside
// it caps operations, which hold their slot through the waits.
func TestBulkheadPlacement(t *testing.T) {
	const (
		ops     = 20
		work    = 100 * time.Millisecond
		backoff = time.Second
	)
	tests := []struct {
		name     string
		pipeline func(pool dbop.Decorator) dbop.Decorator
		min, max time.Duration // the time all ops take
	}{
		{
			name: "inside the retry: attempts",
			pipeline: func(pool dbop.Decorator) dbop.Decorator {
				return dbop.Chain(dbop.WithRetry(dbop.Constant(backoff)), pool)
			},
			// 60 attempts of 100ms two at a time, waits overlapping others' work.
			min: 3 * time.Second, max: 4 * time.Second,
		},
		{
			name: "outside the retry: operations",
			pipeline: func(pool dbop.Decorator) dbop.Decorator {
				return dbop.Chain(pool, dbop.WithRetry(dbop.Constant(backoff)))
			},
			// 10 rounds of two operations holding their slot for 2.3s each.
			min: 23 * time.Second, max: 24 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var g gauge
				var attempts atomic.Int32
				pipeline := tt.pipeline(dbop.Bulkhead(2))
				failTwice := func() dbop.Op[int] {
					n := 0
					return dbop.Op[int](func(ctx context.Context) (int, error) {
						g.enter()
						defer g.leave()
						attempts.Add(1)
						time.Sleep(work)
						if n++; n < 3 {
							return 0, errRetryable
						}
						return 1, nil
					}).With(pipeline)
				}
				start := time.Now()
				var wg sync.WaitGroup
				for range ops {
					op := failTwice()
					wg.Go(func() {
						if _, err := op.Run(context.Background()); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				if p := g.peak.Load(); p != 2 {
					t.Errorf("peak concurrent attempts %d, want 2", p)
				}
				if n := attempts.Load(); n != 3*ops {
					t.Errorf("%d attempts, want %d", n, 3*ops)
				}
				if elapsed < tt.min || elapsed > tt.max {
					t.Errorf("all operations took %v, want between %v and %v", elapsed, tt.min, tt.max)
				}
			})
		})
	}
}

func TestBulkheadWaitRespectsTheContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		cancel  bool // cancel once the run waits for a slot
		wantErr error
	}{
		{
			name:    "cancelled while waiting",
			ctx:     func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			cancel:  true,
			wantErr: context.Canceled,
		},
		{
			name: "deadline while waiting",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Second)
			},
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pool := dbop.Bulkhead(1)
				release := make(chan struct{})
				holder := dbop.Op[int](func(context.Context) (int, error) { <-release; return 1, nil }).With(pool)
				ran := false
				waiter := dbop.Op[int](func(context.Context) (int, error) { ran = true; return 2, nil }).With(pool)

				waitHolder := runConcurrently(context.Background(), holder, 1)
				synctest.Wait()
				ctx, cancel := tt.ctx()
				defer cancel()
				waitWaiter := runConcurrently(ctx, waiter, 1)
				synctest.Wait()
				if tt.cancel {
					cancel()
				}
				got := waitWaiter()[0]
				if !errors.Is(got.err, tt.wantErr) || ran {
					t.Errorf("waiter got %v (ran %v), want %v without running", got.err, ran, tt.wantErr)
				}
				if dbop.VerdictOf(got.err) != dbop.Unclassified {
					t.Errorf("verdict %v, want none", dbop.VerdictOf(got.err))
				}

				// The slot was not lost: the holder finishes and the next run goes ahead.
				close(release)
				waitHolder()
				if v, err := waiter.Run(context.Background()); v != 2 || err != nil {
					t.Errorf("after the holder left: %d, %v", v, err)
				}
			})
		})
	}
}

// A per-attempt timeout that fires while the attempt waits for a slot is
// retried: only the caller's context ends the retry.
func TestBulkheadQueueTimeoutIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := dbop.Bulkhead(1)
		holder := dbop.Op[int](func(context.Context) (int, error) { time.Sleep(1500 * time.Millisecond); return 1, nil }).With(pool)
		attempts := 0
		op := dbop.Op[int](func(context.Context) (int, error) { return 2, nil }).With(
			dbop.WithRetry(dbop.Constant(0), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { attempts++ })),
			dbop.WithTimeout(time.Second),
			pool,
		)
		waitHolder := runConcurrently(context.Background(), holder, 1)
		synctest.Wait()
		if v, err := op.Run(context.Background()); v != 2 || err != nil {
			t.Errorf("got %d, %v; want 2 after a retry", v, err)
		}
		if attempts != 1 {
			t.Errorf("%d retries, want 1", attempts)
		}
		waitHolder()
	})
}

func TestBulkheadCallerCancelledInQueueIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := dbop.Bulkhead(1)
		release := make(chan struct{})
		holder := dbop.Op[int](func(context.Context) (int, error) { <-release; return 1, nil }).With(pool)
		retries := 0
		op := dbop.Op[int](func(context.Context) (int, error) { return 2, nil }).With(
			dbop.WithRetry(dbop.Constant(0), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { retries++ })),
			pool,
		)
		waitHolder := runConcurrently(context.Background(), holder, 1)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := op.Run(ctx); !errors.Is(err, context.DeadlineExceeded) || retries != 0 {
			t.Errorf("got %v after %d retries, want the caller's deadline and no retry", err, retries)
		}
		close(release)
		waitHolder()
	})
}

func TestBulkheadReleasesOnPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := dbop.Bulkhead(1)
		boom := dbop.Op[int](func(context.Context) (int, error) { panic("boom") }).With(pool)
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the op's panic", r)
				}
			}()
			boom.Run(context.Background())
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if v, err := value(3).With(pool).Run(ctx); v != 3 || err != nil {
			t.Errorf("after a panic: %d, %v; the slot was not given back", v, err)
		}
	})
}

func TestBulkheadPanicsOnNoSlots(t *testing.T) {
	for _, n := range []int64{0, -1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			defer func() {
				want := fmt.Sprintf("dbop: Bulkhead(%d): at least one slot is required", n)
				if got := recover(); got != want {
					t.Errorf("panic = %v, want %q", got, want)
				}
			}()
			dbop.Bulkhead(n)
		})
	}
}

// BenchmarkBulkhead is the success path of a retry capping its attempts with
// a Bulkhead that has a free slot: 0 B/op.
func BenchmarkBulkhead(b *testing.B) {
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	runBench(b, op.With(dbop.WithRetry(dbop.Exponential(time.Millisecond, time.Second)), dbop.Bulkhead(8)))
}
