package dbop_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
)

// keyWatch counts attempts that ran beside another sharing a key, or a
// keyed one beside an unkeyed one.
type keyWatch struct {
	mu       sync.Mutex
	keys     map[int64]int
	unkeyed  int
	keyed    int
	overlaps int
}

func (w *keyWatch) enter(keys []int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.keys == nil {
		w.keys = map[int64]int{}
	}
	if keys == nil {
		if w.keyed > 0 {
			w.overlaps++
		}
		w.unkeyed++
		return
	}
	if w.unkeyed > 0 {
		w.overlaps++
	}
	for _, k := range keys {
		if w.keys[k] > 0 {
			w.overlaps++
		}
		w.keys[k]++
	}
	w.keyed++
}

func (w *keyWatch) leave(keys []int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if keys == nil {
		w.unkeyed--
		return
	}
	for _, k := range keys {
		w.keys[k]--
	}
	w.keyed--
}

// A HotSpot that ran only unkeyed work, at a level above one, then gets
// keyed operations that share a key while an unkeyed attempt runs: none
// runs beside the unkeyed one, nor beside another on its key.
func TestHotSpotKeysArriveAfterUnkeyedWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chain := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(100)), dbop.HotSpot())
		var w keyWatch
		var g gauge
		op := func(keys []int64, d time.Duration) {
			_, err := dbop.Op[int](func(context.Context) (int, error) {
				w.enter(keys)
				defer w.leave(keys)
				g.enter()
				defer g.leave()
				time.Sleep(d)
				return 0, nil
			}).With(chain).Run(dbop.HotSpotKeys(context.Background(), keys...))
			if err != nil {
				t.Error(err)
			}
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					op(nil, time.Millisecond)
				}
			})
		}
		wg.Wait()
		if p := g.peak.Load(); p < 2 {
			t.Fatalf("peak %d unkeyed attempts at once, want the level above one for the test to mean anything", p)
		}
		wg.Go(func() { op(nil, 10*time.Millisecond) })
		time.Sleep(time.Millisecond)
		for range 3 {
			wg.Go(func() { op([]int64{7}, 5*time.Millisecond) })
		}
		wg.Wait()
		if w.overlaps != 0 {
			t.Errorf("%d attempts ran beside another sharing a key, or keyed beside unkeyed", w.overlaps)
		}
	})
}

// Unkeyed attempts that run beside each other carry the HotSpot's
// deadline, whether or not the HotSpot has seen keyed operations: only
// keys keep attempts from forming lock cycles among themselves.
func TestHotSpotKeysLeaveUnkeyedWorkBounded(t *testing.T) {
	for _, keyedFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "never keyed", true: "one keyed operation first"}[keyedFirst], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				chain := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(100)), dbop.HotSpot())
				var inflight, n, company, unbounded atomic.Int64
				op := func(ctx context.Context) error {
					_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
						c := inflight.Add(1)
						defer inflight.Add(-1)
						time.Sleep(time.Millisecond)
						if c > 1 || inflight.Load() > 1 {
							company.Add(1)
							if _, ok := ctx.Deadline(); !ok {
								unbounded.Add(1)
							}
						}
						if n.Add(1)%25 == 0 { // a conflict now and then keeps it limiting
							return 0, errConflict
						}
						return 0, nil
					}).With(chain).Run(ctx)
					return err
				}
				if keyedFirst {
					if err := op(dbop.HotSpotKeys(context.Background(), 1)); err != nil {
						t.Fatal(err)
					}
				}
				var wg sync.WaitGroup
				for range 16 {
					wg.Go(func() {
						for range 300 { // well past the first 1024 admissions, bounded anyway
							if err := op(context.Background()); err != nil {
								t.Error(err)
							}
						}
					})
				}
				wg.Wait()
				if company.Load() == 0 {
					t.Fatal("no attempt ran beside another: the test means nothing")
				}
				if u := unbounded.Load(); u != 0 {
					t.Errorf("%d of %d unkeyed attempts that ran beside another had no deadline", u, company.Load())
				}
			})
		})
	}
}
