package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/internal/txmark"
)

// driverError stands in for a driver's error type, to prove errors.As
// reaches it through everything dbop wraps around it.
type driverError struct{ code string }

func (e *driverError) Error() string { return "driver: " + e.code }

// failing returns an Op that fails with errs in turn, then succeeds with
// "ok", and a pointer to its call count.
func failing(errs ...error) (dbop.Op[string], *int) {
	calls := new(int)
	return func(context.Context) (string, error) {
		*calls++
		if *calls <= len(errs) {
			return "", errs[*calls-1]
		}
		return "ok", nil
	}, calls
}

// undoneAtSavepoint returns err as the savepoint scope on the transaction
// scope returns a statement failure it rolled back to its savepoint
// (scopes.InSavepoint does): the one kind of error a retry inside a
// transaction may run again after, when that scope is listed inside it.
func undoneAtSavepoint(scope any, err error) error {
	return &txmark.Mark{Kind: txmark.Undone, Key: scope, Err: err}
}

// passScope is a transaction scope on the transaction key that runs each
// attempt as it is, certified as the library's savepoint scopes are:
// listed inside a retry, it is the scope whose certificate
// (undoneAtSavepoint with the same key) the retry trusts. An AroundTx of
// the caller's (ownScope) is not trusted.
func ownScope(key any) dbop.Decorator {
	return dbop.AroundTx(key, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
}
func passScope(key any) dbop.Decorator {
	d := dbop.AroundTx(key, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
	txmark.Certify(d) // as the library's savepoint scopes are
	return d
}

func repeat(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

func TestRetryDecisions(t *testing.T) {
	drv := &driverError{code: "40001"}
	plain := errors.New("connection reset")
	transient := dbop.Classify(plain, dbop.RetryTransaction)
	tests := []struct {
		name      string
		errs      []error
		opts      []dbop.RetryOption
		scopes    []dbop.Decorator // listed after the retry
		withinTx  bool
		wantCalls int
		wantValue string
		wantErr   error // matched with errors.Is; nil means success
		same      bool  // the error is wantErr itself (==), as the op returned it
		exhausted bool
	}{
		{name: "success at once", wantCalls: 1, wantValue: "ok"},
		{name: "unclassified errors are not retried", errs: []error{plain, plain}, wantCalls: 1, wantErr: plain, same: true},
		{name: "unclassified errors are not retried inside a transaction", errs: []error{plain, plain}, withinTx: true, wantCalls: 1, wantErr: plain, same: true},
		{name: "transient errors are retried", errs: []error{transient, transient}, wantCalls: 3, wantValue: "ok"},
		{name: "default limit is six attempts", errs: repeat(transient, 10), wantCalls: 6, wantErr: transient, exhausted: true},
		{name: "MaxAttempts limits attempts", errs: repeat(transient, 10), opts: []dbop.RetryOption{dbop.MaxAttempts(3)}, wantCalls: 3, wantErr: transient, exhausted: true},
		{name: "MaxAttempts(1) never retries", errs: []error{transient}, opts: []dbop.RetryOption{dbop.MaxAttempts(1)}, wantCalls: 1, wantErr: transient, exhausted: true},
		{name: "success on the last allowed attempt", errs: repeat(transient, 2), opts: []dbop.RetryOption{dbop.MaxAttempts(3)}, wantCalls: 3, wantValue: "ok"},
		{name: "permanent stops at once", errs: []error{dbop.Classify(drv, dbop.NotRetryable)}, wantCalls: 1, wantErr: drv},
		{name: "permanent after retries", errs: []error{transient, dbop.Classify(drv, dbop.NotRetryable)}, wantCalls: 2, wantErr: drv},
		{name: "unclassified after retries", errs: []error{transient, plain}, wantCalls: 2, wantErr: plain, same: true},
		{name: "ambiguous is not retried", errs: []error{dbop.Classify(drv, dbop.Ambiguous)}, wantCalls: 1, wantErr: drv},
		{name: "ambiguous is retried when idempotent", errs: []error{dbop.Classify(drv, dbop.Ambiguous)}, opts: []dbop.RetryOption{dbop.Idempotent()}, wantCalls: 2, wantValue: "ok"},
		{name: "statement verdict is retried", errs: []error{dbop.Classify(drv, dbop.RetryStatement)}, wantCalls: 2, wantValue: "ok"},
		{name: "transaction verdict is retried outside a transaction", errs: []error{dbop.Classify(drv, dbop.RetryTransaction)}, wantCalls: 2, wantValue: "ok"},
		{name: "transaction verdict escapes a retry inside a transaction", errs: []error{dbop.Classify(drv, dbop.RetryTransaction)}, withinTx: true, wantCalls: 1, wantErr: drv},
		{name: "statement verdict no savepoint undid escapes a retry inside a transaction", errs: []error{dbop.Classify(drv, dbop.RetryStatement)}, withinTx: true, wantCalls: 1, wantErr: drv},
		{name: "statement verdict a savepoint scope listed inside the retry undid is retried inside a transaction", errs: []error{undoneAtSavepoint("sp", dbop.Classify(drv, dbop.RetryStatement))}, scopes: []dbop.Decorator{passScope("sp")}, withinTx: true, wantCalls: 2, wantValue: "ok"},
		{name: "statement verdict a savepoint scope listed in another pipeline undid escapes a retry inside a transaction", errs: []error{undoneAtSavepoint("sp", dbop.Classify(drv, dbop.RetryStatement))}, withinTx: true, wantCalls: 1, wantErr: drv},
		{name: "statement verdict another scope undid escapes a retry inside a transaction", errs: []error{undoneAtSavepoint("sp", dbop.Classify(drv, dbop.RetryStatement))}, scopes: []dbop.Decorator{passScope("other")}, withinTx: true, wantCalls: 1, wantErr: drv},
		{name: "statement verdict a savepoint scope undid with the caller's code between escapes a retry inside a transaction", errs: []error{undoneAtSavepoint("sp", dbop.Classify(drv, dbop.RetryStatement))}, scopes: []dbop.Decorator{dbop.Around(func(ctx context.Context, next func(context.Context) error) error { return next(ctx) }), passScope("sp")}, withinTx: true, wantCalls: 1, wantErr: drv},
		{name: "statement verdict escapes a retry inside a transaction when the scope listed is an AroundTx of the caller's", errs: []error{undoneAtSavepoint("sp", dbop.Classify(drv, dbop.RetryStatement))}, scopes: []dbop.Decorator{ownScope("sp")}, withinTx: true, wantCalls: 1, wantErr: drv},
		{name: "statement verdict a savepoint scope in another pipeline undid is retried inside a transaction when idempotent", errs: []error{undoneAtSavepoint("sp", dbop.Classify(drv, dbop.RetryStatement))}, opts: []dbop.RetryOption{dbop.Idempotent()}, withinTx: true, wantCalls: 2, wantValue: "ok"},
		{name: "statement verdict a savepoint scope in another pipeline undid is retried outside a transaction", errs: []error{undoneAtSavepoint("sp", dbop.Classify(drv, dbop.RetryStatement))}, wantCalls: 2, wantValue: "ok"},
		{name: "ambiguous escapes a retry inside a transaction even when idempotent", errs: []error{dbop.Classify(drv, dbop.Ambiguous)}, opts: []dbop.RetryOption{dbop.Idempotent()}, withinTx: true, wantCalls: 1, wantErr: drv},
		{name: "verdict found through wrapping", errs: []error{fmt.Errorf("transfer: %w", dbop.Classify(drv, dbop.NotRetryable))}, wantCalls: 1, wantErr: drv},
		{name: "verdict found through a join", errs: []error{errors.Join(plain, dbop.Classify(drv, dbop.NotRetryable))}, wantCalls: 1, wantErr: drv},
		{name: "an op's own context error, unclassified, is not retried", errs: []error{context.DeadlineExceeded}, wantCalls: 1, wantErr: context.DeadlineExceeded, same: true},
		{name: "an op's own context error marked transient is retried while the caller's context lives", errs: []error{dbop.Classify(context.DeadlineExceeded, dbop.RetryTransaction)}, wantCalls: 2, wantValue: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, calls := failing(tt.errs...)
			ctx := context.Background()
			if tt.withinTx {
				ctx = dbop.WithinTx(ctx)
			}
			got, err := op.With(append([]dbop.Decorator{dbop.WithRetry(dbop.Constant(0), tt.opts...)}, tt.scopes...)...).Run(ctx)
			if *calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", *calls, tt.wantCalls)
			}
			if got != tt.wantValue {
				t.Errorf("value = %q, want %q", got, tt.wantValue)
			}
			if diff := cmp.Diff(tt.wantErr, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if tt.same && err != tt.wantErr {
				t.Errorf("err = %#v, want the op's error itself", err)
			}
			if got := errors.Is(err, dbop.ErrRetriesExhausted); got != tt.exhausted {
				t.Errorf("errors.Is(err, ErrRetriesExhausted) = %v, want %v (err: %v)", got, tt.exhausted, err)
			}
			if tt.exhausted {
				var re *dbop.RetryError
				if !errors.As(err, &re) || re.Attempts != tt.wantCalls {
					t.Errorf("err = %#v, want a *RetryError after %d attempts", err, tt.wantCalls)
				}
			}
		})
	}
}

func TestRetryExhaustedKeepsDriverError(t *testing.T) {
	drv := &driverError{code: "40P01"}
	op, _ := failing(repeat(fmt.Errorf("exec: %w", dbop.Classify(drv, dbop.RetryTransaction)), 5)...)
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))).Run(context.Background())
	var got *driverError
	if !errors.As(err, &got) || got != drv {
		t.Fatalf("errors.As(%v) did not reach the driver error", err)
	}
	var re *dbop.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("error %T is not a *RetryError", err)
	}
	if re.Attempts != 2 || !errors.Is(re.Reason, dbop.ErrRetriesExhausted) {
		t.Errorf("RetryError = {Attempts: %d, Reason: %v}, want 2 attempts, exhausted", re.Attempts, re.Reason)
	}
	if got, want := dbop.VerdictOf(err), dbop.RetryTransaction; got != want {
		t.Errorf("VerdictOf(exhausted) = %v, want %v: the last error's verdict stays visible", got, want)
	}
}

func TestRetryStopsWhenCallerContextEnds(t *testing.T) {
	t.Run("cancelled during an attempt: no retry, the op's error unchanged", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		op := dbop.Op[int](func(ctx context.Context) (int, error) {
			calls++
			cancel()
			return 0, ctx.Err()
		})
		_, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(ctx)
		if calls != 1 || err != context.Canceled {
			t.Fatalf("calls = %d, err = %v; want 1, context.Canceled", calls, err)
		}
	})
	t.Run("a retryable error once the caller is gone is returned, not retried", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		drv := &driverError{code: "40001"}
		calls := 0
		op := dbop.Op[int](func(context.Context) (int, error) {
			calls++
			cancel()
			return 0, dbop.Classify(drv, dbop.RetryTransaction)
		})
		_, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(ctx)
		if calls != 1 || !errors.Is(err, drv) {
			t.Fatalf("calls = %d, err = %v; want 1 call and the driver error", calls, err)
		}
	})
	t.Run("cancelled while waiting: returns at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			drv := &driverError{code: "55P03"}
			op, calls := failing(repeat(dbop.Classify(drv, dbop.RetryStatement), 10)...)
			stop := errors.New("shutting down")
			time.AfterFunc(3*time.Second, func() { cancel(stop) })
			start := time.Now()
			_, err := op.With(dbop.WithRetry(dbop.Constant(time.Hour))).Run(ctx)
			if elapsed := time.Since(start); elapsed != 3*time.Second {
				t.Errorf("returned after %v, want 3s (the cancellation)", elapsed)
			}
			if *calls != 1 {
				t.Errorf("calls = %d, want 1", *calls)
			}
			if !errors.Is(err, stop) || !errors.Is(err, drv) || errors.Is(err, dbop.ErrRetriesExhausted) {
				t.Errorf("err = %v: want the cancel cause and the driver error, not exhaustion", err)
			}
			var re *dbop.RetryError
			if !errors.As(err, &re) || re.Attempts != 1 {
				t.Errorf("err = %#v, want a *RetryError after 1 attempt", err)
			}
		})
	})
	t.Run("overall timeout outside the retry ends it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			op, calls := failing(repeat(errRetryable, 100)...)
			start := time.Now()
			_, err := op.With(
				dbop.WithTimeout(10*time.Second),
				dbop.WithRetry(dbop.Constant(3*time.Second), dbop.MaxAttempts(100)),
			).Run(context.Background())
			if got := time.Since(start); got != 10*time.Second {
				t.Errorf("took %v, want the 10s budget", got)
			}
			if *calls != 4 { // at 0s, 3s, 6s, 9s
				t.Errorf("calls = %d, want 4", *calls)
			}
			if !isTimeout(err) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want a dbop timeout", err)
			}
		})
	})
}

func TestRetryWaitsTheBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waits []time.Duration
		op, _ := failing(repeat(errRetryable, 4)...)
		last := time.Now()
		traced := dbop.Op[string](func(ctx context.Context) (string, error) {
			now := time.Now()
			waits = append(waits, now.Sub(last))
			last = now
			return op(ctx)
		})
		got, err := traced.With(dbop.WithRetry(dbop.Exponential(100*time.Millisecond, 250*time.Millisecond))).Run(context.Background())
		if err != nil || got != "ok" {
			t.Fatalf("Run = %q, %v", got, err)
		}
		want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}
		if diff := cmp.Diff(want, waits); diff != "" {
			t.Errorf("waits (-want +got):\n%s", diff)
		}
	})
}

func TestMaxElapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op, calls := failing(repeat(errRetryable, 100)...)
		start := time.Now()
		_, err := op.With(dbop.WithRetry(dbop.Constant(time.Second), dbop.MaxAttempts(100), dbop.MaxElapsed(3500*time.Millisecond))).Run(context.Background())
		// Attempts at 0s, 1s, 2s, 3s; the wait after the fourth would end at 4s > 3.5s.
		if *calls != 4 || time.Since(start) != 3*time.Second {
			t.Errorf("calls = %d after %v; want 4 after 3s", *calls, time.Since(start))
		}
		if !errors.Is(err, dbop.ErrRetriesExhausted) {
			t.Errorf("err = %v, want ErrRetriesExhausted", err)
		}
	})
}

// negativeBackoff misbehaves on purpose: the loop must not pass a negative
// delay on.
type negativeBackoff struct{}

func (negativeBackoff) Delay(int, time.Duration, uint64) time.Duration { return -time.Second }

func TestNegativeDelayIsClamped(t *testing.T) {
	var delays []time.Duration
	op, _ := failing(errRetryable)
	_, err := op.With(dbop.WithRetry(negativeBackoff{}, dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		delays = append(delays, e.Delay)
	}))).Run(context.Background())
	if err != nil || len(delays) != 1 || delays[0] != 0 {
		t.Fatalf("err = %v, delays = %v; want success after one 0s wait", err, delays)
	}
}

func TestWithRandIsReproducible(t *testing.T) {
	schedule := func() []time.Duration {
		var got []time.Duration
		op, _ := failing(repeat(errRetryable, 5)...)
		_, _ = op.With(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Nanosecond, time.Nanosecond<<10)),
			dbop.WithRand(rand.NewPCG(1, 2)),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { got = append(got, e.Delay) }),
		)).Run(context.Background())
		return got
	}
	first, second := schedule(), schedule()
	if len(first) != 5 {
		t.Fatalf("got %d delays, want 5", len(first))
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("same seed, different schedules (-first +second):\n%s", diff)
	}
	want := dboptest.Schedule(dbop.FullJitter(dbop.Exponential(time.Nanosecond, time.Nanosecond<<10)), 5, rand.NewPCG(1, 2))
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("retry loop and dboptest.Schedule disagree (-Schedule +loop):\n%s", diff)
	}
}

func TestOnRetryEvents(t *testing.T) {
	drv := &driverError{code: "1205"}
	stmt := dbop.Classify(drv, dbop.RetryStatement)
	reset := dbop.Classify(errors.New("reset"), dbop.RetryTransaction)
	op, _ := failing(stmt, reset)
	var got []dbop.AttemptEvent
	obs := &eventObserver{}
	_, err := op.With(dbop.WithRetry(dbop.Exponential(time.Nanosecond, time.Microsecond),
		dbop.Observe(obs),
		dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { got = append(got, e) }))).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []dbop.AttemptEvent{
		{Attempt: 1, Err: stmt, Verdict: dbop.RetryStatement, Retry: true, Delay: time.Nanosecond},
		{Attempt: 2, Err: reset, Verdict: dbop.RetryTransaction, Retry: true, Delay: 2 * time.Nanosecond},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// An Observer's AttemptEnd receives the same events for these attempts,
	// and then the success.
	want = append(want, dbop.AttemptEvent{Attempt: 3})
	if diff := cmp.Diff(want, obs.events, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("the observer's events (-want +got):\n%s", diff)
	}
}

// eventObserver is an Observer that keeps the events of AttemptEnd.
type eventObserver struct{ events []dbop.AttemptEvent }

func (*eventObserver) OperationStart(ctx context.Context, _ string) context.Context { return ctx }

func (*eventObserver) AttemptStart(ctx context.Context, _ int) context.Context { return ctx }

func (o *eventObserver) AttemptEnd(_ context.Context, e dbop.AttemptEvent) {
	o.events = append(o.events, e)
}

func (*eventObserver) OperationEnd(context.Context, dbop.OperationEvent) {}

// recorder is an Observer that logs what it is told.
type recorder struct {
	mu  sync.Mutex
	log []string
}

type ctxTag struct{ r *recorder }

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
}

func (r *recorder) OperationStart(ctx context.Context, name string) context.Context {
	r.add("start %s", name)
	return context.WithValue(ctx, ctxTag{r}, "op")
}

func (r *recorder) AttemptStart(ctx context.Context, n int) context.Context {
	r.add("attempt %d start (parent %v)", n, ctx.Value(ctxTag{r}))
	return context.WithValue(ctx, ctxTag{r}, fmt.Sprintf("attempt %d", n))
}

func (r *recorder) AttemptEnd(ctx context.Context, e dbop.AttemptEvent) {
	r.add("%v end: err=%v verdict=%v retry=%v delay=%v", ctx.Value(ctxTag{r}), e.Err, e.Verdict, e.Retry, e.Delay)
}

func (r *recorder) OperationEnd(ctx context.Context, e dbop.OperationEvent) {
	r.add("%v end %s: attempts=%d err=%v", ctx.Value(ctxTag{r}), e.Name, e.Attempts, e.Err)
}

func TestObserver(t *testing.T) {
	t.Run("retries then success", func(t *testing.T) {
		rec := &recorder{}
		op, _ := failing(dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction))
		var seen any
		traced := dbop.Op[string](func(ctx context.Context) (string, error) {
			seen = ctx.Value(ctxTag{rec})
			return op(ctx)
		})
		_, err := traced.With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(rec), dbop.Named("transfer"))).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"start transfer",
			"attempt 1 start (parent op)",
			"attempt 1 end: err=deadlock verdict=retry-transaction retry=true delay=0s",
			"attempt 2 start (parent op)",
			"attempt 2 end: err=<nil> verdict=unclassified retry=false delay=0s",
			"op end transfer: attempts=2 err=<nil>",
		}
		if diff := cmp.Diff(want, rec.log); diff != "" {
			t.Errorf("log (-want +got):\n%s", diff)
		}
		if seen != "attempt 2" {
			t.Errorf("the op ran with context tagged %v, want the attempt's context", seen)
		}
	})
	t.Run("two observers, exhaustion", func(t *testing.T) {
		a, b := &recorder{}, &recorder{}
		op, _ := failing(repeat(errRetryable, 3)...)
		_, _ = op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), dbop.Observe(a), dbop.Observe(b))).Run(context.Background())
		want := []string{
			"start ",
			"attempt 1 start (parent op)",
			"attempt 1 end: err=busy verdict=retry-transaction retry=true delay=0s",
			"attempt 2 start (parent op)",
			"attempt 2 end: err=busy verdict=retry-transaction retry=false delay=0s",
			"op end : attempts=2 err=dbop: retries exhausted after 2 attempts: busy",
		}
		for name, r := range map[string]*recorder{"first": a, "second": b} {
			if diff := cmp.Diff(want, r.log); diff != "" {
				t.Errorf("%s observer log (-want +got):\n%s", name, diff)
			}
		}
	})
}

func TestPanicPassesThroughRetry(t *testing.T) {
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) { calls++; panic("boom") })
	defer func() {
		if r := recover(); r != "boom" || calls != 1 {
			t.Errorf("recovered %v after %d calls; want the op's panic after 1", r, calls)
		}
	}()
	_, _ = op.With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
	t.Error("Run returned; want the panic to propagate")
}

// spanObserver keeps its "span" under a key shared by every instance, as
// tracers do; each must still end its own.
type spanObserver struct {
	name  string
	ended *[]string
}

type sharedSpanKey struct{}

func (o spanObserver) OperationStart(ctx context.Context, _ string) context.Context {
	return context.WithValue(ctx, sharedSpanKey{}, o.name+"/op")
}

func (o spanObserver) AttemptStart(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, sharedSpanKey{}, fmt.Sprintf("%s/attempt%d", o.name, n))
}

func (o spanObserver) AttemptEnd(ctx context.Context, _ dbop.AttemptEvent) {
	*o.ended = append(*o.ended, o.name+" ends "+ctx.Value(sharedSpanKey{}).(string))
}

func (o spanObserver) OperationEnd(ctx context.Context, _ dbop.OperationEvent) {
	*o.ended = append(*o.ended, o.name+" ends "+ctx.Value(sharedSpanKey{}).(string))
}

func TestObserversEachGetTheirOwnContext(t *testing.T) {
	var ended []string
	op, _ := failing(errRetryable)
	_, err := op.With(dbop.WithRetry(dbop.Constant(0),
		dbop.Observe(spanObserver{"a", &ended}),
		dbop.Observe(spanObserver{"b", &ended}),
		dbop.Observe(spanObserver{"c", &ended}),
	)).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"c ends c/attempt1", "b ends b/attempt1", "a ends a/attempt1",
		"c ends c/attempt2", "b ends b/attempt2", "a ends a/attempt2",
		"c ends c/op", "b ends b/op", "a ends a/op",
	}
	if diff := cmp.Diff(want, ended); diff != "" {
		t.Errorf("ends (-want +got):\n%s", diff)
	}
}

// After an attempt whose outcome is unknown was retried, the work may be
// applied: however the retry ends, short of success, the error must say so.
func TestIdempotentRetryKeepsTheUnknownOutcome(t *testing.T) {
	commitLost := dbop.Classify(&driverError{code: "08006"}, dbop.Ambiguous)
	refused := dbop.Classify(errors.New("connection refused"), dbop.RetryTransaction)
	duplicate := dbop.Classify(&driverError{code: "23505"}, dbop.NotRetryable)
	tests := []struct {
		name      string
		errs      []error
		cancel    bool // the caller cancels during the second attempt
		wantFinal error
		exhausted bool
		attempts  int
	}{
		{name: "then exhausted", errs: []error{commitLost, refused, refused}, wantFinal: refused, exhausted: true, attempts: 3},
		{name: "then a permanent error", errs: []error{commitLost, duplicate}, wantFinal: duplicate, attempts: 2},
		{name: "then the caller cancels", errs: []error{commitLost, refused}, cancel: true, wantFinal: refused, attempts: 2},
		{name: "then another unknown outcome, exhausted", errs: []error{commitLost, commitLost, commitLost}, wantFinal: commitLost, exhausted: true, attempts: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			op, calls := failing(tt.errs...)
			cancelling := dbop.Op[string](func(ctx context.Context) (string, error) {
				if *calls == 1 && tt.cancel {
					cancel()
				}
				return op(ctx)
			})
			_, err := cancelling.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.Idempotent())).Run(ctx)
			if got := dbop.VerdictOf(err); got != dbop.Ambiguous {
				t.Errorf("VerdictOf = %v, want ambiguous (err: %v)", got, err)
			}
			if !errors.Is(err, commitLost) || !errors.Is(err, tt.wantFinal) {
				t.Errorf("err = %v: want it to reach both the unknown attempt's error and the last one", err)
			}
			if got := errors.Is(err, dbop.ErrRetriesExhausted); got != tt.exhausted {
				t.Errorf("errors.Is(err, ErrRetriesExhausted) = %v, want %v", got, tt.exhausted)
			}
			var re *dbop.RetryError
			if !errors.As(err, &re) || re.Unknown != commitLost || re.Attempts != tt.attempts {
				t.Fatalf("err = %#v, want a *RetryError with Unknown set after %d attempts", err, tt.attempts)
			}
		})
	}
	t.Run("then success", func(t *testing.T) {
		op, _ := failing(commitLost)
		if _, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.Idempotent())).Run(context.Background()); err != nil {
			t.Fatalf("err = %v: an idempotent op that succeeds on retry has succeeded", err)
		}
	})
}
