package dbop_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
)

// A new HotSpot limits (one attempt at a time) until work shows it is not
// needed, so an attempt it admitted holds the only slot. An op that panics
// must give it back: a caller that recovers (net/http recovers a handler's
// panic) would otherwise find every later call waiting for a slot that is
// never freed. The panic goes on to the caller unchanged, and nothing the
// call started (timers of the attempt's bound, of a WithTimeout) outlives
// it.
func TestHotSpotGivesItsSlotBackWhenTheOpPanics(t *testing.T) {
	for _, c := range []struct {
		name string
		ds   []dbop.Decorator
		keys bool
	}{
		{"HotSpot", []dbop.Decorator{dbop.WithRetry(dbop.Constant(time.Millisecond)), dbop.HotSpot()}, false},
		{"HotSpot with keys", []dbop.Decorator{dbop.WithRetry(dbop.Constant(time.Millisecond)), dbop.HotSpot()}, true},
		{"HotSpot and WithTimeout", []dbop.Decorator{dbop.WithRetry(dbop.Constant(time.Millisecond)), dbop.HotSpot(), dbop.WithTimeout(time.Hour)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hot := dbop.Chain(c.ds...)
				p := newLeakProbe()
				ctx := context.Context(p.ctx)
				if c.keys {
					ctx = dbop.HotSpotKeys(ctx, 1, 2)
				}
				recovered := func() (r any) {
					defer func() { r = recover() }()
					watch(p, dbop.Op[int](func(context.Context) (int, error) { panic("nil map") })).With(hot).Run(ctx)
					return nil
				}()
				if recovered != "nil map" {
					t.Fatalf("recovered %v, want the op's panic", recovered)
				}
				for _, l := range p.leftovers() {
					t.Error(l)
				}
				p.ctx.cancel()

				// Every later call gets the slot, keys or not.
				var wg sync.WaitGroup
				var failed sync.Map
				for i := range 4 {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						defer cancel()
						if c.keys {
							ctx = dbop.HotSpotKeys(ctx, 1, 2)
						}
						if _, err := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(hot).Run(ctx); err != nil {
							failed.Store(i, err)
						}
					})
				}
				wg.Wait()
				failed.Range(func(i, err any) bool {
					t.Errorf("call %d after the recovered panic: %v", i, err)
					return true
				})
			})
		})
	}
}

// An operation its op runs outside a transaction, with the same HotSpot
// (or another), runs inside the attempt the HotSpot admitted: it is let
// through, as inside a transaction, instead of waiting for the slot its
// own caller holds. The same HotSpot listed twice in one pipeline (the
// README's pipeline applied twice) is refused when built: its first
// HotSpot would hold a slot across the second retry's waits
// (TestHotSpotBeforeAnyRetryIsRefused).
func TestHotSpotLetsThroughAnAttemptInsideItsOwn(t *testing.T) {
	ok := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	for _, c := range []struct {
		name string
		op   func(hot, other dbop.Decorator) dbop.Op[int]
	}{
		{"nested, the same HotSpot", func(hot, _ dbop.Decorator) dbop.Op[int] {
			inner := ok.With(hot)
			return dbop.Op[int](func(ctx context.Context) (int, error) { return inner.Run(ctx) }).With(hot)
		}},
		{"nested, another HotSpot", func(hot, other dbop.Decorator) dbop.Op[int] {
			inner := ok.With(other)
			return dbop.Op[int](func(ctx context.Context) (int, error) { return inner.Run(ctx) }).With(hot)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				retry := dbop.WithRetry(dbop.Constant(time.Millisecond))
				hot, other := dbop.Chain(retry, dbop.HotSpot()), dbop.Chain(retry, dbop.HotSpot())
				op := c.op(hot, other)
				// New HotSpots limit: each admits one attempt at a time.
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				start := time.Now()
				if _, err := op.Run(ctx); err != nil {
					t.Fatalf("after %v: %v", time.Since(start), err)
				}
			})
		})
	}
}

// A transaction scope listed inside a HotSpot (InSavepoint, any AroundTx)
// runs each attempt inside a transaction the caller owns, which holds its
// locks while the attempt waits for a slot: two such transactions, one
// waiting for a row the other holds, the other for the slot, would wait
// for each other until a deadline. The HotSpot lets those attempts
// through, as it does inside a transaction, and paces no retry.
func TestHotSpotLetsThroughAttemptsInsideTheCallersTransaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hot := dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)), dbop.MaxAttempts(50)), dbop.HotSpot())
		row := make(chan struct{}, 1) // a row lock, held by transaction B: a token when B has committed
		savepoint := func(tx string) dbop.Decorator {
			return dbop.AroundTx(tx, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
		}
		var errA error
		done := make(chan struct{})
		go func() {
			defer close(done)
			// A's step waits for the row B holds.
			_, errA = dbop.Op[int](func(ctx context.Context) (int, error) {
				select {
				case <-row:
					return 1, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}).With(hot, savepoint("A")).Run(t.Context())
		}()
		synctest.Wait() // A is in its attempt, waiting for the row
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		start := time.Now()
		_, errB := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(hot, savepoint("B")).Run(ctx)
		if errB != nil || time.Since(start) > 0 {
			t.Errorf("B's step: %v after %v, want it run at once", errB, time.Since(start))
		}
		row <- struct{}{} // B commits
		<-done
		if errA != nil {
			t.Errorf("A's step: %v", errA)
		}
	})
}

// A HotSpot listed before a WithRetry is refused when the pipeline is
// built, also with another retry before it (found by a review: it was
// accepted, and held its slot across the inner retry's waits), and so is
// the README's pipeline applied twice.
func TestHotSpotBeforeAnyRetryIsRefused(t *testing.T) {
	ok := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	retry := dbop.WithRetry(dbop.Constant(time.Millisecond))
	hot := dbop.Chain(retry, dbop.HotSpot())
	for name, build := range map[string]func(){
		"between two retries": func() { ok.With(retry, dbop.HotSpot(), retry) },
		"the pipeline twice":  func() { ok.With(hot, hot) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, "HotSpot (decorator 2) is listed before WithRetry (decorator 3)") {
					t.Errorf("panic %q, want the HotSpot before the retry named", msg)
				}
			}()
			build()
		})
	}
}
