package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
)

// gatedRead returns an Op that counts its runs and blocks until release is
// closed, then returns what result gives for the run's number.
func gatedRead[T any](release <-chan struct{}, result func(n int32) (T, error)) (dbop.Op[T], *atomic.Int32) {
	runs := new(atomic.Int32)
	return func(ctx context.Context) (T, error) {
		n := runs.Add(1)
		<-release
		return result(n)
	}, runs
}

type outcome[T any] struct {
	v   T
	err error
}

// runConcurrently runs op n times on n goroutines with ctx and returns a
// function that waits for them and returns their outcomes.
func runConcurrently[T any](ctx context.Context, op dbop.Op[T], n int) func() []outcome[T] {
	out := make([]outcome[T], n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			v, err := op.Run(ctx)
			out[i] = outcome[T]{v, err}
		})
	}
	return func() []outcome[T] { wg.Wait(); return out }
}

// In a synctest bubble, synctest.Wait returns only once every caller is
// blocked: the one running the Op on release, the others waiting for it.
// That is the barrier: no sleep decides who joined.
func TestSharedCollapsesConcurrentCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const callers = 10
		release := make(chan struct{})
		read, runs := gatedRead(release, func(n int32) (string, error) { return fmt.Sprint("row from run ", n), nil })
		var users dbop.Flight
		wait := runConcurrently(context.Background(), read.With(users.Share("user:7")), callers)

		synctest.Wait()
		if n := runs.Load(); n != 1 {
			t.Fatalf("%d runs started by %d concurrent callers, want 1", n, callers)
		}
		close(release)
		for i, o := range wait() {
			if o.v != "row from run 1" || o.err != nil {
				t.Errorf("caller %d got %q, %v; want the shared row", i, o.v, o.err)
			}
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("%d runs in all, want 1", n)
		}
	})
}

func TestSharedKeepsKeysApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var runs atomic.Int32
		var users dbop.Flight
		byID := func(id string) dbop.Op[string] {
			op := dbop.Op[string](func(context.Context) (string, error) {
				runs.Add(1)
				<-release
				return "user " + id, nil
			})
			return op.With(users.Share("user:" + id))
		}
		waitA := runConcurrently(context.Background(), byID("a"), 4)
		waitB := runConcurrently(context.Background(), byID("b"), 4)
		synctest.Wait()
		close(release)
		for _, o := range waitA() {
			if o.v != "user a" || o.err != nil {
				t.Errorf("key a got %q, %v", o.v, o.err)
			}
		}
		for _, o := range waitB() {
			if o.v != "user b" || o.err != nil {
				t.Errorf("key b got %q, %v", o.v, o.err)
			}
		}
		if n := runs.Load(); n != 2 {
			t.Errorf("%d runs for two keys, want 2", n)
		}
	})
}

func TestSharedWaiterLeavesOnItsOwnContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var sharedCtxErr error
		runs := 0
		op := dbop.Op[int](func(ctx context.Context) (int, error) {
			runs++
			<-release
			sharedCtxErr = ctx.Err()
			return 42, nil
		})
		var f dbop.Flight
		shared := op.With(f.Share("answer"))

		// The first caller starts the shared run, then gives up.
		firstCtx, cancelFirst := context.WithCancel(context.Background())
		waitFirst := runConcurrently(firstCtx, shared, 1)
		synctest.Wait()
		leaverCtx, cancelLeaver := context.WithCancel(context.Background())
		waitLeaver := runConcurrently(leaverCtx, shared, 1)
		waitOthers := runConcurrently(context.Background(), shared, 3)
		synctest.Wait()

		cancelFirst()
		cancelLeaver()
		first, leaver := waitFirst()[0], waitLeaver()[0] // they return before the run ends
		if !errors.Is(first.err, context.Canceled) || !errors.Is(leaver.err, context.Canceled) {
			t.Errorf("cancelled callers got %v and %v, want context.Canceled", first.err, leaver.err)
		}

		close(release)
		for i, o := range waitOthers() {
			if o.v != 42 || o.err != nil {
				t.Errorf("waiter %d got %d, %v; want 42", i, o.v, o.err)
			}
		}
		if sharedCtxErr != nil {
			t.Errorf("the shared run saw %v: the first caller's cancellation reached it", sharedCtxErr)
		}
		if runs != 1 {
			t.Errorf("%d runs, want 1", runs)
		}
	})
}

// When every caller waiting for a shared run has gone, nobody wants its
// result: its context is cancelled and its key forgotten at once, so a
// later caller starts a fresh run even while the abandoned one has not yet
// returned (the run here ignores its context until released). While one
// caller still waits, the run goes on and later callers join it.
func TestSharedRunAbandoned(t *testing.T) {
	tests := []struct {
		name          string
		leave, stay   int   // callers that give up, callers that wait on
		wantCancelled bool  // the first run's context, once the leavers left
		wantLater     int32 // the run whose value a later caller receives
	}{
		{name: "every caller leaves: cancelled, the next caller starts afresh", leave: 3, wantCancelled: true, wantLater: 2},
		{name: "the only caller leaves", leave: 1, wantCancelled: true, wantLater: 2},
		{name: "one leaves, others stay: the run goes on", leave: 1, stay: 2, wantLater: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var (
					mu   sync.Mutex
					ctxs []context.Context // each run's context
				)
				op := dbop.Op[int32](func(ctx context.Context) (int32, error) {
					mu.Lock()
					ctxs = append(ctxs, ctx)
					n := int32(len(ctxs))
					mu.Unlock()
					<-release // ignores ctx, as a driver may until its query returns
					return n, nil
				})
				runCtx := func(i int) context.Context {
					mu.Lock()
					defer mu.Unlock()
					return ctxs[i]
				}
				var f dbop.Flight
				shared := op.With(f.Share("k"))

				leaveCtx, leave := context.WithCancel(context.Background())
				waitLeavers := runConcurrently(leaveCtx, shared, tt.leave)
				waitStayers := runConcurrently(context.Background(), shared, tt.stay)
				synctest.Wait()
				leave()
				for i, o := range waitLeavers() {
					if !errors.Is(o.err, context.Canceled) {
						t.Errorf("leaver %d got %d, %v; want context.Canceled", i, o.v, o.err)
					}
				}
				synctest.Wait()
				if got := runCtx(0).Err() != nil; got != tt.wantCancelled {
					t.Errorf("the first run's context cancelled: %v, want %v", got, tt.wantCancelled)
				}
				if cause := context.Cause(runCtx(0)); tt.wantCancelled && (cause == nil || !strings.Contains(cause.Error(), "every caller")) {
					t.Errorf("the first run's context cause = %v, want one saying every caller has gone", cause)
				}

				waitLater := runConcurrently(context.Background(), shared, 1)
				synctest.Wait()
				mu.Lock()
				runs := int32(len(ctxs))
				lastErr := ctxs[runs-1].Err()
				mu.Unlock()
				if runs != tt.wantLater {
					t.Errorf("%d runs, want %d", runs, tt.wantLater)
				}
				if lastErr != nil {
					t.Errorf("the last run's context ended (%v) while a caller waited for it", lastErr)
				}
				close(release)
				if o := waitLater()[0]; o.v != tt.wantLater || o.err != nil {
					t.Errorf("a later caller got %d, %v; want run %d's value", o.v, o.err, tt.wantLater)
				}
				for i, o := range waitStayers() {
					if o.v != 1 || o.err != nil {
						t.Errorf("waiter %d got %d, %v; want the first run's value", i, o.v, o.err)
					}
				}
			})
		})
	}
}

// A run that every caller left, still running, does not free the key of
// the fresh run that replaced it when it returns at last.
func TestSharedAbandonedRunKeepsItsSuccessorsKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int32
		op := dbop.Op[int32](func(ctx context.Context) (int32, error) {
			n := runs.Add(1)
			if n == 1 {
				<-ctx.Done()
				time.Sleep(time.Second) // returns a second after it was abandoned
			} else {
				time.Sleep(time.Hour)
			}
			return n, nil
		})
		var f dbop.Flight
		shared := op.With(f.Share("k"))

		ctx, leave := context.WithCancel(context.Background())
		first := runConcurrently(ctx, shared, 1)
		synctest.Wait()
		leave()
		first()
		second := runConcurrently(context.Background(), shared, 1)
		time.Sleep(2 * time.Second) // the abandoned run has returned
		third := runConcurrently(context.Background(), shared, 1)
		for i, o := range append(second(), third()...) {
			if o.v != 2 || o.err != nil {
				t.Errorf("caller %d got %d, %v; want the second run's value", i+2, o.v, o.err)
			}
		}
		if n := runs.Load(); n != 2 {
			t.Errorf("%d runs, want 2", n)
		}
	})
}

func TestSharedErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := &driverError{code: "57P01"}
		release := make(chan struct{})
		read, runs := gatedRead(release, func(int32) (int, error) { return 0, drv })
		var f dbop.Flight
		wait := runConcurrently(context.Background(), read.With(f.Share("k")), 3)
		synctest.Wait()
		close(release)
		for _, o := range wait() {
			var got *driverError
			if !errors.As(o.err, &got) || got != drv {
				t.Errorf("err = %v, want the driver error", o.err)
			}
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("%d runs, want 1", n)
		}
	})
}

func TestSharedSkipped(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		with func(f *dbop.Flight) dbop.Decorator
	}{
		{
			name: "inside a transaction",
			ctx:  dbop.WithinTx(context.Background()),
			with: func(f *dbop.Flight) dbop.Decorator { return f.Share("k") },
		},
		{
			name: "when the key function declines",
			ctx:  context.Background(),
			with: func(f *dbop.Flight) dbop.Decorator {
				return f.ShareBy(func(context.Context) (string, bool) { return "", false })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				read, runs := gatedRead(release, func(n int32) (int32, error) { return n, nil })
				var f dbop.Flight
				wait := runConcurrently(tt.ctx, read.With(tt.with(&f)), 3)
				synctest.Wait()
				close(release)
				wait()
				if n := runs.Load(); n != 3 {
					t.Errorf("%d runs for 3 callers, want 3", n)
				}
			})
		})
	}
}

func TestSharedByKeyFromContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var runs atomic.Int32
		settings := dbop.Op[string](func(ctx context.Context) (string, error) {
			runs.Add(1)
			<-release
			return "settings of " + ctx.Value(ctxKey{}).(string), nil
		})
		var f dbop.Flight
		shared := settings.With(f.ShareBy(func(ctx context.Context) (string, bool) {
			tenant, ok := ctx.Value(ctxKey{}).(string)
			return tenant, ok
		}))
		acme := context.WithValue(context.Background(), ctxKey{}, "acme")
		initech := context.WithValue(context.Background(), ctxKey{}, "initech")
		waitAcme := runConcurrently(acme, shared, 3)
		waitInitech := runConcurrently(initech, shared, 3)
		synctest.Wait()
		close(release)
		for _, o := range waitAcme() {
			if o.v != "settings of acme" {
				t.Errorf("acme got %q, %v", o.v, o.err)
			}
		}
		for _, o := range waitInitech() {
			if o.v != "settings of initech" {
				t.Errorf("initech got %q, %v", o.v, o.err)
			}
		}
		if n := runs.Load(); n != 2 {
			t.Errorf("%d runs for two tenants, want 2", n)
		}
	})
}

// A Flight is not a cache: calls that do not overlap run the Op again.
func TestSharedDoesNotCache(t *testing.T) {
	runs := 0
	op := dbop.Op[int](func(context.Context) (int, error) { runs++; return runs, nil })
	var f dbop.Flight
	shared := op.With(f.Share("k"))
	for want := 1; want <= 3; want++ {
		if got, err := shared.Run(context.Background()); got != want || err != nil {
			t.Errorf("call %d got %d, %v", want, got, err)
		}
	}
}

func TestSharedWithAlreadyCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	op := dbop.Op[int](func(context.Context) (int, error) { ran = true; return 1, nil })
	var f dbop.Flight
	if _, err := op.With(f.Share("k")).Run(ctx); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("err = %v, ran = %v; want context.Canceled without running", err, ran)
	}
}

// The shared run holds a retry: every waiter gets the retried result, and
// the retry's attempts are not repeated per waiter.
func TestSharedAroundARetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		attempts := 0
		op := dbop.Op[string](func(context.Context) (string, error) {
			if attempts++; attempts < 3 {
				return "", errRetryable
			}
			return "ok", nil
		})
		var f dbop.Flight
		shared := op.With(f.Share("k"), dbop.WithTimeout(time.Minute), dbop.WithRetry(dbop.Constant(time.Second)))
		for i, o := range runConcurrently(context.Background(), shared, 5)() {
			if o.v != "ok" || o.err != nil {
				t.Errorf("caller %d got %q, %v", i, o.v, o.err)
			}
		}
		if attempts != 3 {
			t.Errorf("%d attempts, want 3", attempts)
		}
	})
}

func TestSharedBuildPanics(t *testing.T) {
	var nilFlight *dbop.Flight
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"Share on nil", func() { nilFlight.Share("k") }, "dbop: Share called on a nil *Flight"},
		{"ShareBy on nil", func() { nilFlight.ShareBy(func(context.Context) (string, bool) { return "", true }) }, "dbop: ShareBy called on a nil *Flight"},
		{"ShareBy(nil)", func() { new(dbop.Flight).ShareBy(nil) }, "dbop: Flight.ShareBy(nil)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Errorf("panic = %v, want %q", got, tt.want)
				}
			}()
			tt.build()
		})
	}
}

func TestSharedKeyAcrossResultTypesPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f dbop.Flight
		release := make(chan struct{})
		number := dbop.Op[int](func(context.Context) (int, error) { <-release; return 1, nil })
		text := dbop.Op[string](func(context.Context) (string, error) { return "one", nil })
		wait := runConcurrently(context.Background(), number.With(f.Share("k")), 1)
		synctest.Wait()
		go func() {
			time.Sleep(time.Second) // the text call below has joined when time moves
			close(release)
		}()
		defer func() {
			wait()
			want := "dbop: a Flight shared a int with an Op[string]: Ops sharing a key must have the same result type"
			if got := recover(); got != want {
				t.Errorf("panic = %v, want %q", got, want)
			}
		}()
		text.With(f.Share("k")).Run(context.Background())
		t.Error("no panic")
	})
}

// BenchmarkShared is an uncontended shared read: what sharing costs when
// there is nothing to share (the value is boxed, the call runs on a
// goroutine of its own under a cancellable context).
func BenchmarkShared(b *testing.B) {
	var f dbop.Flight
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	runBench(b, op.With(f.Share("k")))
}
