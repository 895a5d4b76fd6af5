package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/dbop-go/dbop"
)

// TestMain fails the package's test binary if any goroutine started by any
// of its tests is still running once they have all finished.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// What can outlive a call, and how the tests below catch it.
//
// A goroutine. Each leak test runs its call in a synctest bubble, where
// every goroutine the call starts belongs to the bubble. Once the call has
// returned, synctest.Wait returns when every other goroutine of the bubble
// is durably blocked or gone, and leftovers lists those that remain: each
// one outlived the call. (synctest.Test itself only complains about
// goroutines still blocked when the bubble ends, and goleak only about
// goroutines still around when the test ends; a goroutine that lingers
// after the call and exits later passes both.)
//
// A timer. Only a func timer can outlive a call: since Go 1.23 a channel
// timer (time.NewTimer, the retry's wait) is in the runtime's timer heap
// only while a goroutine is blocked receiving from it (runtime/time.go,
// needsAdd and unblockTimerChan), so one left unstopped cannot fire or hold
// anything once the select that waited on it has returned. The root package
// starts func timers only through context deadlines (context.WithTimeout*,
// WithDeadline*; it never calls time.AfterFunc), and a deadline's timer is
// stopped exactly when its context is cancelled. So a timer outlives a call
// exactly when a context with a deadline created during the call is neither
// cancelled nor expired when it returns. Three detectors catch that:
//
//   - the caller's context is a leakCtx, which implements AfterFunc; the
//     context package registers every cancelable context derived directly
//     from it through that method and calls the returned stop function
//     when the child is cancelled (context.go, propagateCancel and
//     removeChild), so a registration still live after the call is a
//     derived context nobody cancelled, and with it every context below it;
//   - a context derived from a value context (an observer's, WithinTx's)
//     is watched by a goroutine the context package starts until the child
//     or the parent is done: a child nobody cancelled leaves that goroutine
//     behind, and the goroutine census sees it;
//   - every context the operation itself received is kept, and one whose
//     deadline has not passed and that is not done when the call returns
//     has a pending timer — which also covers contexts derived from a
//     detached one (context.WithoutCancel), invisible to the other two.
//
// The one timer none of them sees is a bare time.AfterFunc, and
// TestNoBareFuncTimers keeps the package free of it.
//
// Time in the bubble is fake and moves only when every goroutine is
// blocked, so "its deadline has not passed" and the elapsed times asserted
// below are exact, and the hour-long waits take no time.
// TestLeakCheckCatchesLeaks shows that each detector fires.

// leakCtx is the caller's context in a leak test: never done on its own,
// cancelled by cancel, and recording every cancelable context derived
// directly from it (see above). It must be created inside the bubble, so
// that waiting on its Done channel is durably blocking.
type leakCtx struct {
	done chan struct{}

	mu   sync.Mutex
	err  error
	next int
	live map[int]func() // registered children, neither stopped nor fired
}

func newLeakCtx() *leakCtx {
	return &leakCtx{done: make(chan struct{}), live: map[int]func(){}}
}

func (c *leakCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *leakCtx) Done() <-chan struct{}       { return c.done }
func (c *leakCtx) Value(any) any               { return nil }

func (c *leakCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc is what the context package calls to tie a derived context to
// a parent of a type it does not know: f cancels the child, and the child
// calls stop when it is cancelled first.
func (c *leakCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	id := c.next
	c.next++
	c.live[id] = f
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.live[id]
		delete(c.live, id)
		return ok
	}
}

// cancel cancels c and, as context.AfterFunc does, runs each registered
// function on a goroutine of its own.
func (c *leakCtx) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	close(c.done)
	fs := c.live
	c.live = map[int]func(){}
	c.mu.Unlock()
	for _, f := range fs {
		go f()
	}
}

// undone returns how many contexts derived directly from c are neither
// cancelled nor told of c's cancellation.
func (c *leakCtx) undone() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
}

// leakProbe is one leak test's caller context, the contexts its
// operations received, and the goroutines of the bubble before the calls
// (synctest's own).
type leakProbe struct {
	ctx    *leakCtx
	before map[string]bool

	mu   sync.Mutex
	seen []context.Context
}

// newLeakProbe returns a probe for calls about to be made on the calling
// goroutine, which must be in a synctest bubble.
func newLeakProbe() *leakProbe {
	p := &leakProbe{ctx: newLeakCtx(), before: map[string]bool{}}
	for id := range bubbleGoroutines() {
		p.before[id] = true
	}
	return p
}

// watch returns op recording the context of each of its runs.
func watch[T any](p *leakProbe, op dbop.Op[T]) dbop.Op[T] {
	return func(ctx context.Context) (T, error) {
		p.mu.Lock()
		p.seen = append(p.seen, ctx)
		p.mu.Unlock()
		return op(ctx)
	}
}

// leftovers waits until every other goroutine of the bubble is blocked or
// gone, and describes what is left of the calls made so far: goroutines,
// derived contexts nobody cancelled, and contexts the operations received
// whose deadline timer is still pending. Call it from the bubble's root
// goroutine once the calls have returned.
func (p *leakProbe) leftovers() []string {
	synctest.Wait()
	var out []string
	for id, g := range bubbleGoroutines() {
		if !p.before[id] {
			out = append(out, "goroutine outlived the call:\n"+g)
		}
	}
	if n := p.ctx.undone(); n > 0 {
		out = append(out, fmt.Sprintf("%d context(s) derived from the caller's context were never cancelled", n))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, ctx := range p.seen {
		if d, ok := ctx.Deadline(); ok && ctx.Err() == nil && time.Now().Before(d) {
			out = append(out, fmt.Sprintf("run %d's context is not done and its deadline, %v from now, has a pending timer", i+1, time.Until(d)))
		}
	}
	return out
}

// bubbleHeader matches the header of a goroutine's stack trace in a
// synctest bubble: "goroutine 7 [chan receive (durable), synctest bubble 1]:".
var bubbleHeader = regexp.MustCompile(`^goroutine (\d+) \[[^\n]*synctest bubble (\d+)`)

// bubbleGoroutines returns the stack traces of the goroutines of the
// caller's synctest bubble, the caller excepted, by goroutine ID.
func bubbleGoroutines() map[string]string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	traces := strings.Split(string(buf), "\n\n")
	self := bubbleHeader.FindStringSubmatch(traces[0]) // runtime.Stack puts the caller first
	if self == nil {
		panic("bubbleGoroutines called outside a synctest bubble")
	}
	out := map[string]string{}
	for _, tr := range traces[1:] {
		if m := bubbleHeader.FindStringSubmatch(tr); m != nil && m[2] == self[2] && m[1] != self[1] {
			out[m[1]] = tr
		}
	}
	return out
}

// errLeakTransient is a retryable failure: marked, since WithRetry retries
// only errors it recognises.
var errLeakTransient = dbop.Classify(errors.New("transient"), dbop.RetryTransaction)

// blockUntilDone is an operation that waits for its context to end.
func blockUntilDone(ctx context.Context) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

// failTimes returns an operation that fails with errLeakTransient n times,
// then succeeds.
func failTimes(n int) dbop.Op[int] { return failTimesWith(n, errLeakTransient) }

// failTimesWith returns an operation that fails with err n times, then
// succeeds.
func failTimesWith(n int, err error) dbop.Op[int] {
	var mu sync.Mutex
	calls := 0
	return func(context.Context) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls <= n {
			return 0, err
		}
		return calls, nil
	}
}

// valueObserver gives every operation and attempt a context of its own
// (a value context), as tracers do.
type valueObserver struct{}

type valueObserverKey struct{}

func (valueObserver) OperationStart(ctx context.Context, _ string) context.Context {
	return context.WithValue(ctx, valueObserverKey{}, "op")
}

func (valueObserver) AttemptStart(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, valueObserverKey{}, n)
}
func (valueObserver) AttemptEnd(context.Context, dbop.AttemptEvent)     {}
func (valueObserver) OperationEnd(context.Context, dbop.OperationEvent) {}

// TestNoLeaksAfterCall runs the root package's timing paths — waits
// between attempts ended by the caller, per-attempt and overall timeouts
// firing or stopped, All cancelling its siblings, a Bulkhead queue given
// up on, a shared run — and checks that nothing the call started outlives
// it. The elapsed (fake) time proves that each path was the one taken.
func TestNoLeaksAfterCall(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		call        func(ctx context.Context, p *leakProbe) error
		cancelAfter time.Duration // when the caller cancels; 0: never
		wantElapsed time.Duration
		wantErr     []error // errors.Is targets; none: success
		wantTimeout bool    // err carries a *dbop.TimeoutError
	}{
		{
			name: "retry: the caller cancels during the wait",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, failTimes(1000)).With(dbop.WithRetry(dbop.Constant(time.Hour))).Run(ctx)
				return err
			},
			cancelAfter: time.Minute,
			wantElapsed: time.Minute,
			wantErr:     []error{context.Canceled, errLeakTransient},
		},
		{
			name: "retry: the caller cancels during an attempt bounded by a per-attempt timeout",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, blockUntilDone).With(dbop.WithRetry(dbop.Constant(time.Second)), dbop.WithTimeout(time.Hour)).Run(ctx)
				return err
			},
			cancelAfter: time.Minute,
			wantElapsed: time.Minute,
			wantErr:     []error{context.Canceled},
		},
		{
			name: "per-attempt timeout fires on every attempt",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, blockUntilDone).With(
					dbop.WithRetry(dbop.Constant(time.Second), dbop.MaxAttempts(3)),
					dbop.WithTimeout(10*time.Second),
				).Run(ctx)
				return err
			},
			wantElapsed: 3*10*time.Second + 2*time.Second,
			wantErr:     []error{dbop.ErrRetriesExhausted, context.DeadlineExceeded},
			wantTimeout: true,
		},
		{
			name: "per-attempt timeout stopped when the attempt returns first",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, failTimes(2)).With(dbop.WithRetry(dbop.Constant(time.Second)), dbop.WithTimeout(time.Hour)).Run(ctx)
				return err
			},
			wantElapsed: 2 * time.Second,
		},
		{
			name: "overall timeout fires during the wait",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, failTimes(1000)).With(dbop.WithTimeout(5*time.Second), dbop.WithRetry(dbop.Constant(time.Hour))).Run(ctx)
				return err
			},
			wantElapsed: 5 * time.Second,
			wantErr:     []error{context.DeadlineExceeded, errLeakTransient},
			wantTimeout: true,
		},
		{
			name: "overall timeout fires during an attempt",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, blockUntilDone).With(dbop.WithTimeout(5*time.Second), dbop.WithRetry(dbop.Constant(0))).Run(ctx)
				return err
			},
			wantElapsed: 5 * time.Second,
			wantErr:     []error{context.DeadlineExceeded},
			wantTimeout: true,
		},
		{
			name: "overall and per-attempt timeouts stopped on success",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, failTimes(1)).With(
					dbop.WithTimeout(time.Hour),
					dbop.WithRetry(dbop.Constant(time.Second)),
					dbop.WithTimeout(time.Minute),
				).Run(ctx)
				return err
			},
			wantElapsed: time.Second,
		},
		{
			name: "per-attempt timeout under an observer's context",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, failTimes(1)).With(
					dbop.WithRetry(dbop.Constant(time.Second), dbop.Observe(valueObserver{})),
					dbop.WithTimeout(time.Hour),
				).Run(ctx)
				return err
			},
			wantElapsed: time.Second,
		},
		{
			name: "retry inside a transaction scope's context",
			call: func(ctx context.Context, p *leakProbe) error {
				// Inside a transaction only what a savepoint undid is retried.
				undone := undoneAtSavepoint("sp", dbop.Classify(errors.New("lock timeout"), dbop.RetryStatement))
				_, err := watch(p, failTimesWith(1, undone)).With(dbop.WithRetry(dbop.Constant(time.Second)), dbop.WithTimeout(time.Hour), passScope("sp")).Run(dbop.WithinTx(ctx))
				return err
			},
			wantElapsed: time.Second,
		},
		{
			name: "budget refuses the retry",
			call: func(ctx context.Context, p *leakProbe) error {
				budget := &dbop.Budget{Max: 0.5} // never a whole token
				_, err := watch(p, failTimes(1)).With(dbop.WithRetry(dbop.Constant(time.Hour), dbop.WithBudget(budget)), dbop.WithTimeout(time.Hour)).Run(ctx)
				return err
			},
			wantErr: []error{dbop.ErrBudgetExhausted, errLeakTransient},
		},
		{
			name: "All: a failure cancels the siblings and their timeouts",
			call: func(ctx context.Context, p *leakProbe) error {
				fail := dbop.Op[int](func(context.Context) (int, error) { time.Sleep(time.Second); return 0, errBoom })
				sibling := watch(p, blockUntilDone).With(dbop.WithTimeout(time.Hour))
				_, err := dbop.All(0, watch(p, fail), sibling, sibling, sibling).Run(ctx)
				return err
			},
			wantElapsed: time.Second,
			wantErr:     []error{errBoom},
		},
		{
			name: "All with a limit: the caller cancels",
			call: func(ctx context.Context, p *leakProbe) error {
				op := watch(p, blockUntilDone).With(dbop.WithRetry(dbop.Constant(time.Second)), dbop.WithTimeout(time.Hour))
				_, err := dbop.All(2, op, op, op, op, op).Run(ctx)
				return err
			},
			cancelAfter: time.Minute,
			wantElapsed: time.Minute,
			wantErr:     []error{context.Canceled},
		},
		{
			name: "AllKeyed succeeds",
			call: func(ctx context.Context, p *leakProbe) error {
				op := watch(p, dbop.Op[int](func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil })).With(dbop.WithTimeout(time.Hour))
				_, err := dbop.AllKeyed(2, map[string]dbop.Op[int]{"a": op, "b": op, "c": op}).Run(ctx)
				return err
			},
			wantElapsed: 2 * time.Second,
		},
		{
			name: "Bulkhead: a queued caller gives up",
			call: func(ctx context.Context, p *leakProbe) error {
				slots := dbop.Bulkhead(1)
				release := make(chan struct{})
				holder := watch(p, dbop.Op[int](func(context.Context) (int, error) { <-release; return 1, nil })).With(slots)
				var wg sync.WaitGroup
				wg.Go(func() { _, _ = holder.Run(ctx) })
				synctest.Wait() // the holder has the slot
				_, err := watch(p, value(2)).With(dbop.WithTimeout(time.Second), slots).Run(ctx)
				close(release)
				wg.Wait()
				return err
			},
			wantElapsed: time.Second,
			wantErr:     []error{context.DeadlineExceeded},
		},
		{
			name: "Bulkhead inside a retry gives the slot back during the wait",
			call: func(ctx context.Context, p *leakProbe) error {
				_, err := watch(p, failTimes(1)).With(dbop.WithRetry(dbop.Constant(time.Second)), dbop.Bulkhead(1), dbop.WithTimeout(time.Hour)).Run(ctx)
				return err
			},
			wantElapsed: time.Second,
		},
		{
			name: "Share: every caller waits for the shared run",
			call: func(ctx context.Context, p *leakProbe) error {
				var f dbop.Flight
				read := watch(p, dbop.Op[int](func(context.Context) (int, error) { time.Sleep(time.Second); return 7, nil })).
					With(f.Share("k"), dbop.WithTimeout(time.Hour), dbop.WithRetry(dbop.Constant(time.Second)))
				errs := make([]error, 3)
				var wg sync.WaitGroup
				for i := range errs {
					wg.Go(func() { _, errs[i] = read.Run(ctx) })
				}
				wg.Wait()
				return errors.Join(errs...)
			},
			wantElapsed: time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			synctest.Test(t, func(t *testing.T) {
				p := newLeakProbe()
				if tt.cancelAfter > 0 {
					go func() {
						time.Sleep(tt.cancelAfter)
						p.ctx.cancel()
					}()
				}
				start := time.Now()
				err := tt.call(p.ctx, p)
				elapsed := time.Since(start)

				for _, l := range p.leftovers() {
					t.Error(l)
				}
				if elapsed != tt.wantElapsed {
					t.Errorf("the call returned after %v, want %v", elapsed, tt.wantElapsed)
				}
				if len(tt.wantErr) == 0 && err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				for _, target := range tt.wantErr {
					if !errors.Is(err, target) {
						t.Errorf("err = %v, does not match %v", err, target)
					}
				}
				if tt.wantTimeout && !isTimeout(err) {
					t.Errorf("err = %v, want a *dbop.TimeoutError in it", err)
				}
				// Whatever leaked under the caller's context ends with it,
				// so that one leak fails this case rather than the bubble.
				p.ctx.cancel()
			})
		})
	}
}

// A Flight's shared run ends with its last caller: once every caller has
// left, the run's context is cancelled, and nothing of the run outlives the
// call by more than the run takes to return once cancelled.
func TestSharedRunEndsWithItsLastCaller(t *testing.T) {
	tests := []struct {
		name string
		read dbop.Op[int]
		// how long the run goes on after its last caller left
		lingers time.Duration
	}{
		{name: "a run that returns when cancelled", read: blockUntilDone},
		{
			name: "a run that ignores its context for 4s more",
			read: func(ctx context.Context) (int, error) {
				<-ctx.Done()
				time.Sleep(4 * time.Second)
				return 0, ctx.Err()
			},
			lingers: 4 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			synctest.Test(t, func(t *testing.T) {
				p := newLeakProbe()
				var f dbop.Flight
				read := watch(p, tt.read).With(f.Share("k"), dbop.WithTimeout(time.Hour))
				go func() {
					time.Sleep(time.Second)
					p.ctx.cancel()
				}()
				start := time.Now()
				_, err := read.Run(p.ctx)
				if !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
					t.Fatalf("the caller got %v after %v, want context.Canceled after 1s", err, time.Since(start))
				}
				if tt.lingers > 0 {
					if left := p.leftovers(); len(left) != 1 || !strings.Contains(left[0], "goroutine outlived the call") {
						t.Errorf("while the run returns: %d leftovers, want 1 (the shared run's goroutine):\n%s", len(left), strings.Join(left, "\n"))
					}
					time.Sleep(tt.lingers)
				}
				for _, l := range p.leftovers() {
					t.Errorf("once the run returned: %s", l)
				}
			})
		})
	}
}

// TestLeakCheckCatchesLeaks shows that the checks of TestNoLeaksAfterCall
// can fail: a decorator that leaks a context's timer, under each kind of
// parent, or a goroutine, is reported, and once the leak is cleaned up the
// report is empty.
func TestLeakCheckCatchesLeaks(t *testing.T) {
	type leakKey struct{}
	tests := []struct {
		name string
		leak func(ctx context.Context, undo *[]func()) context.Context
		want []string // substrings of the report, one per expected entry
	}{
		{
			name: "timer of a context derived from the caller's",
			leak: func(ctx context.Context, undo *[]func()) context.Context {
				leaked, cancel := context.WithTimeout(ctx, time.Hour)
				*undo = append(*undo, cancel)
				return leaked
			},
			want: []string{"never cancelled", "pending timer"},
		},
		{
			name: "timer of a context derived from a value context",
			leak: func(ctx context.Context, undo *[]func()) context.Context {
				leaked, cancel := context.WithTimeout(context.WithValue(ctx, leakKey{}, 1), time.Hour)
				*undo = append(*undo, cancel)
				return leaked
			},
			want: []string{"goroutine outlived the call", "pending timer"},
		},
		{
			name: "timer of a context derived from a detached context",
			leak: func(ctx context.Context, undo *[]func()) context.Context {
				leaked, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Hour)
				*undo = append(*undo, cancel)
				return leaked
			},
			want: []string{"pending timer"},
		},
		{
			name: "goroutine left blocked",
			leak: func(ctx context.Context, undo *[]func()) context.Context {
				stop := make(chan struct{})
				go func() { <-stop }()
				*undo = append(*undo, func() { close(stop) })
				return ctx
			},
			want: []string{"goroutine outlived the call"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			synctest.Test(t, func(t *testing.T) {
				p := newLeakProbe()
				var undo []func()
				leaky := dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
					return next(tt.leak(ctx, &undo))
				})
				if _, err := watch(p, value(1)).With(dbop.WithRetry(dbop.Constant(time.Second)), leaky).Run(p.ctx); err != nil {
					t.Fatal(err)
				}
				left := p.leftovers()
				if len(left) != len(tt.want) {
					t.Errorf("%d leftovers, want %d:\n%s", len(left), len(tt.want), strings.Join(left, "\n"))
				}
				for i, w := range tt.want {
					if i < len(left) && !strings.Contains(left[i], w) {
						t.Errorf("leftover %d = %q, want it to mention %q", i, left[i], w)
					}
				}
				for _, f := range undo {
					f()
				}
				for _, l := range p.leftovers() {
					t.Errorf("after the cleanup: %s", l)
				}
			})
		})
	}
}

// TestNoBareFuncTimers keeps the argument above sound: the leak checks see
// a func timer only through the context it belongs to, so the package must
// not start one of its own with time.AfterFunc.
func TestNoBareFuncTimers(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		timePkg := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"time"` {
				timePkg = "time"
				if imp.Name != nil {
					timePkg = imp.Name.Name
				}
			}
		}
		if timePkg == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "AfterFunc" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == timePkg {
					t.Errorf("%v: time.AfterFunc starts a timer the leak checks cannot see; use a context deadline, or extend leak_test.go", fset.Position(sel.Pos()))
				}
			}
			return true
		})
	}
}

// An Op that panics, under each decorator that starts something for its
// attempts (a deadline's timer, a slot): the panic reaches the caller as it
// was, and nothing the call started outlives it once the caller recovers.
func TestNoLeaksAfterAPanic(t *testing.T) {
	for _, c := range []struct {
		name string
		ds   []dbop.Decorator
	}{
		{"WithTimeout", []dbop.Decorator{dbop.WithTimeout(time.Hour)}},
		{"WithRetry, WithTimeout", []dbop.Decorator{dbop.WithRetry(dbop.Constant(time.Second)), dbop.WithTimeout(time.Hour)}},
		{"Bulkhead", []dbop.Decorator{dbop.Bulkhead(1)}},
		{"WithRetry, HotSpot", []dbop.Decorator{dbop.WithRetry(dbop.Constant(time.Second)), dbop.HotSpot()}},
		{"WithRetry, HotSpot, WithTimeout", []dbop.Decorator{dbop.WithRetry(dbop.Constant(time.Second)), dbop.HotSpot(), dbop.WithTimeout(time.Hour)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newLeakProbe()
				got := func() (r any) {
					defer func() { r = recover() }()
					watch(p, dbop.Op[int](func(context.Context) (int, error) { panic("boom") })).With(c.ds...).Run(p.ctx)
					return nil
				}()
				if got != "boom" {
					t.Errorf("recovered %v, want the Op's panic", got)
				}
				for _, l := range p.leftovers() {
					t.Error(l)
				}
				p.ctx.cancel()
			})
		})
	}
}
