package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// The safety rules of the retry: what it may run again, what it refuses to
// build, and what a fallback may hide.

// sqlStateError stands in for a driver error that reports a SQLSTATE, as
// *pgconn.PgError does: dbop recognises class 40 through the method alone.
type sqlStateError struct{ code string }

func (e *sqlStateError) Error() string    { return "sqlstate " + e.code }
func (e *sqlStateError) SQLState() string { return e.code }

// counted returns an Op that fails with errs in turn, then succeeds with 1,
// and a pointer to its call count.
func counted(errs ...error) (dbop.Op[int], *int) {
	calls := new(int)
	return func(context.Context) (int, error) {
		*calls++
		if *calls <= len(errs) {
			return 0, errs[*calls-1]
		}
		return 1, nil
	}, calls
}

// buildPanic runs build and returns what it panicked with, as a string, or
// "" when it did not panic.
func buildPanic(build func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	build()
	return ""
}

// Invariant 3: an error nothing recognises may have done anything, so no
// retry runs the work again after it, whatever the pipeline around it; the
// caller gets the very value the Op returned.
func TestUnclassifiedErrorIsFinal(t *testing.T) {
	errUnknown := errors.New("busy")
	ignorant := func(error) dbop.Verdict { return dbop.Unclassified }
	tests := []struct {
		name  string
		ctx   func() context.Context
		chain dbop.Decorator
	}{
		{name: "bare retry", chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0)))},
		{name: "retry with an observer", chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.Observe(&recorder{})))},
		{name: "retry with a budget", chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.WithBudget(&dbop.Budget{Ratio: 1})))},
		{name: "idempotent retry", chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.Idempotent()))},
		{name: "retry with a per-attempt timeout", chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(time.Hour))},
		{name: "retry with a classifier that does not know it", chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.ClassifyBy(ignorant))},
		{name: "nested retries", chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.WithRetry(dbop.Constant(0)))},
		{name: "retry inside a transaction", ctx: func() context.Context { return dbop.WithinTx(context.Background()) }, chain: dbop.Chain(dbop.WithRetry(dbop.Constant(0)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			op, calls := counted(errUnknown, errUnknown)
			_, err := op.With(tt.chain).Run(ctx)
			if *calls != 1 {
				t.Errorf("%d attempts, want 1: an unclassified error is final", *calls)
			}
			if err != errUnknown {
				t.Errorf("err = %#v, want the Op's error itself", err)
			}
			var re *dbop.RetryError
			if errors.As(err, &re) {
				t.Errorf("err is a *RetryError after %d attempts: it was wrapped", re.Attempts)
			}
		})
	}
}

// ClassifyBy wraps an error only when its verdict changes what a retry does
// with it; otherwise err == the Op's error holds.
func TestClassifyByWrapsOnlyWhatChangesTheRetry(t *testing.T) {
	plain := errors.New("syntax error")
	deadlock := &sqlStateError{code: "40P01"}
	always := func(v dbop.Verdict) dbop.Classifier { return func(error) dbop.Verdict { return v } }
	tests := []struct {
		name        string
		classifier  dbop.Classifier
		err         error
		wantSame    bool
		wantVerdict dbop.Verdict
		wantCalls   int // under WithRetry(Constant(0), MaxAttempts(3))
	}{
		{"NotRetryable on an unclassified error", always(dbop.NotRetryable), plain, true, dbop.Unclassified, 1},
		{"no opinion", always(dbop.Unclassified), plain, true, dbop.Unclassified, 1},
		{"agreeing with what dbop recognises", always(dbop.RetryTransaction), deadlock, true, dbop.RetryTransaction, 3},
		{"RetryStatement on an unclassified error", always(dbop.RetryStatement), plain, false, dbop.RetryStatement, 3},
		{"NotRetryable overriding a recognised SQLSTATE", always(dbop.NotRetryable), deadlock, false, dbop.NotRetryable, 1},
		{"an error that already carries a verdict", always(dbop.RetryStatement), dbop.Classify(plain, dbop.NotRetryable), true, dbop.NotRetryable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, withRetry := range []bool{false, true} {
				chain := dbop.Chain(dbop.ClassifyBy(tt.classifier))
				wantCalls := 1
				if withRetry {
					chain = dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), chain)
					wantCalls = tt.wantCalls
				}
				op, calls := counted(tt.err, tt.err, tt.err)
				_, err := op.With(chain).Run(context.Background())
				if *calls != wantCalls {
					t.Errorf("retry %v: %d attempts, want %d", withRetry, *calls, wantCalls)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("retry %v: err = %v does not reach the Op's error", withRetry, err)
				}
				if got := dbop.VerdictOf(err); got != tt.wantVerdict {
					t.Errorf("retry %v: VerdictOf = %v, want %v", withRetry, got, tt.wantVerdict)
				}
				if tt.wantSame && wantCalls == 1 && err != tt.err {
					t.Errorf("retry %v: err = %#v, want the Op's error itself", withRetry, err)
				}
				if !tt.wantSame && err == tt.err {
					t.Errorf("retry %v: err is the Op's error, want it classified", withRetry)
				}
			}
		})
	}
}

// What dbop recognises with no classifier: class 40 SQLSTATEs reported
// through an SQLState() string method. Any other code is final.
func TestSQLStateRecognisedWithoutClassifier(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		opts  []dbop.RetryOption
		final bool // not retried: the Op's error is returned as it is
	}{
		{name: "40001 serialization_failure", err: &sqlStateError{code: "40001"}},
		{name: "40P01 deadlock_detected", err: &sqlStateError{code: "40P01"}},
		{name: "40001 wrapped", err: fmt.Errorf("transfer: %w", &sqlStateError{code: "40001"})},
		{name: "23505 unique_violation", err: &sqlStateError{code: "23505"}, final: true},
		{name: "57014 query_canceled", err: &sqlStateError{code: "57014"}, final: true},
		{name: "40003 statement_completion_unknown is ambiguous", err: &sqlStateError{code: "40003"}, final: true},
		{name: "40003 retried when idempotent", err: &sqlStateError{code: "40003"}, opts: []dbop.RetryOption{dbop.Idempotent()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, calls := counted(tt.err)
			v, err := op.With(dbop.WithRetry(dbop.Constant(0), tt.opts...)).Run(context.Background())
			if tt.final {
				if *calls != 1 || err != tt.err {
					t.Errorf("%d attempts, err = %#v; want 1 and the Op's error itself", *calls, err)
				}
				return
			}
			if *calls != 2 || v != 1 || err != nil {
				t.Errorf("%d attempts, got %d, %v; want success after one retry", *calls, v, err)
			}
		})
	}
}

// Invariant 4: a decorator placed where it cannot do what it says is
// refused when the pipeline is built, with a message naming both.
func TestBuildTimeRejections(t *testing.T) {
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	classify := dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.RetryStatement })
	retry := dbop.WithRetry(dbop.Constant(0))
	type savepoint struct{ name string }
	scope := func(name string) dbop.Decorator {
		return dbop.AroundTx(&savepoint{name}, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
	}
	tests := []struct {
		name  string
		build func()
		want  []string // substrings of the panic message; none: no panic
	}{
		{
			name:  "ClassifyBy before WithRetry",
			build: func() { op.With(classify, retry) },
			want:  []string{"ClassifyBy (decorator 1)", "WithRetry (decorator 2)"},
		},
		{
			name:  "ClassifyBy before WithRetry across a Chain",
			build: func() { op.With(dbop.Chain(dbop.WithTimeout(time.Second), classify), dbop.Chain(retry)) },
			want:  []string{"ClassifyBy (decorator 2)", "WithRetry (decorator 3)"},
		},
		{
			name:  "OrDefault after WithRetry",
			build: func() { op.With(retry, dbop.OrDefault(0)) },
			want:  []string{"OrDefault (decorator 2)", "WithRetry (decorator 1)"},
		},
		{
			name:  "OrDefault inside WithRetry, further down",
			build: func() { op.With(retry, dbop.WithTimeout(time.Second), dbop.OrDefault(0, dbop.AcceptAmbiguous())) },
			want:  []string{"OrDefault (decorator 3)", "WithRetry (decorator 1)"},
		},
		{
			name:  "a transaction scope before WithRetry",
			build: func() { op.With(scope("sp"), retry) },
			want:  []string{"transaction scope", "(decorator 1)", "WithRetry (decorator 2)"},
		},
		{
			name:  "a transaction scope before WithRetry with only hooks inside",
			build: func() { op.With(scope("sp"), retry, dbop.Before(noopHook)) },
			want:  []string{"transaction scope", "(decorator 1)", "WithRetry (decorator 2)"},
		},
		{name: "ClassifyBy after WithRetry", build: func() { op.With(retry, classify) }},
		{name: "ClassifyBy with no retry", build: func() { op.With(classify) }},
		{name: "ClassifyBy between two retries", build: func() { op.With(retry, classify, retry) }},
		{name: "OrDefault before WithRetry", build: func() { op.With(dbop.OrDefault(0), retry) }},
		{name: "Fallback after WithRetry, per attempt", build: func() {
			op.With(retry, dbop.Fallback(func(_ context.Context, err error) (int, error) { return 0, err }))
		}},
		{name: "WithRetry before a transaction scope", build: func() { op.With(retry, scope("sp")) }},
		{name: "a transaction scope around a retry of an inner scope", build: func() { op.With(scope("outer"), retry, scope("inner")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := buildPanic(tt.build)
			if len(tt.want) == 0 {
				if msg != "" {
					t.Fatalf("panicked: %s", msg)
				}
				return
			}
			if !strings.HasPrefix(msg, "dbop: ") {
				t.Fatalf("panic = %q, want a dbop build-time panic", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("panic %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// Invariant 6: a fallback never reports "failed, here is the default" for
// work that may have taken effect, unless told it may; nor does it hide an
// error that doomed a transaction.
func TestFallbacksPassAmbiguousThrough(t *testing.T) {
	commitLost := dbop.Classify(errors.New("connection lost during COMMIT"), dbop.Ambiguous)
	unknown := &sqlStateError{code: "40003"}
	down := errors.New("connection refused")
	doomed := &txmark.Mark{Kind: txmark.Doomed, Key: new(int), Err: dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction)}
	fallbacks := []struct {
		name string
		dec  func(opts ...dbop.FallbackOption) dbop.Decorator
	}{
		{"OrDefault", func(opts ...dbop.FallbackOption) dbop.Decorator { return dbop.OrDefault(-1, opts...) }},
		{"Fallback", func(opts ...dbop.FallbackOption) dbop.Decorator {
			return dbop.Fallback(func(context.Context, error) (int, error) { return -1, nil }, opts...)
		}},
	}
	tests := []struct {
		name     string
		errs     []error
		retry    []dbop.RetryOption // a WithRetry inside the fallback, when not nil
		accept   bool
		replaced bool
	}{
		{name: "an ambiguous outcome passes through", errs: []error{commitLost}},
		{name: "an ambiguous outcome is replaced with AcceptAmbiguous", errs: []error{commitLost}, accept: true, replaced: true},
		{name: "SQLSTATE 40003 passes through", errs: []error{unknown}},
		{name: "SQLSTATE 40003 is replaced with AcceptAmbiguous", errs: []error{unknown}, accept: true, replaced: true},
		{name: "an unknown outcome then exhaustion passes through", errs: []error{commitLost, errRetryable, errRetryable}, retry: []dbop.RetryOption{dbop.Idempotent(), dbop.MaxAttempts(3)}},
		{name: "an ambiguous outcome the retry returned passes through", errs: []error{commitLost}, retry: []dbop.RetryOption{}},
		{name: "an error that doomed a transaction passes through", errs: []error{doomed}},
		{name: "an error that doomed a transaction passes through AcceptAmbiguous", errs: []error{doomed}, accept: true},
		{name: "an unclassified error is replaced", errs: []error{down}, replaced: true},
		{name: "an exhausted retry is replaced", errs: []error{errRetryable, errRetryable}, retry: []dbop.RetryOption{dbop.MaxAttempts(2)}, replaced: true},
	}
	for _, fb := range fallbacks {
		for _, tt := range tests {
			t.Run(fb.name+"/"+tt.name, func(t *testing.T) {
				var opts []dbop.FallbackOption
				if tt.accept {
					opts = append(opts, dbop.AcceptAmbiguous())
				}
				chain := dbop.Chain(fb.dec(opts...))
				if tt.retry != nil {
					chain = dbop.Chain(chain, dbop.WithRetry(dbop.Constant(0), tt.retry...))
				}
				op, _ := counted(tt.errs...)
				v, err := op.With(chain).Run(context.Background())
				if tt.replaced {
					if v != -1 || err != nil {
						t.Errorf("got %d, %v; want the fallback's -1, nil", v, err)
					}
					return
				}
				if v == -1 || err == nil {
					t.Fatalf("got %d, %v; want the error through", v, err)
				}
				if !errors.Is(err, tt.errs[0]) {
					t.Errorf("err = %v, want it to reach %v", err, tt.errs[0])
				}
				if tt.retry == nil && err != tt.errs[0] {
					t.Errorf("err = %#v, want the Op's error itself", err)
				}
			})
		}
	}
}

// A deadline set by a WithTimeout inside the retry ends one attempt, not
// the operation: the retry recognises its *TimeoutError and runs again. A
// deadline from anywhere else is not the retry's to retry.
func TestPerAttemptTimeoutIsRetried(t *testing.T) {
	drv := &driverError{code: "57014"}
	tests := []struct {
		name        string
		first       func(ctx context.Context) error // the first attempt; later ones succeed
		outer       bool                            // WithTimeout listed before the retry
		wantCalls   int
		wantElapsed time.Duration
		wantErr     []error // errors.Is targets; none: success
		wantTimeout bool    // err carries a *dbop.TimeoutError
	}{
		{
			name:        "the attempt returns its context's error",
			first:       func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			wantCalls:   2,
			wantElapsed: time.Second,
		},
		{
			name:        "the attempt returns the driver's error",
			first:       func(ctx context.Context) error { <-ctx.Done(); return drv },
			wantCalls:   2,
			wantElapsed: time.Second,
		},
		{
			name:        "an overall deadline outside the retry ends it",
			first:       func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			outer:       true,
			wantCalls:   1,
			wantElapsed: time.Second,
			wantErr:     []error{context.DeadlineExceeded},
			wantTimeout: true,
		},
		{
			name: "a deadline the op set itself is unclassified",
			first: func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
				defer cancel()
				<-ctx.Done()
				return ctx.Err()
			},
			wantCalls:   1,
			wantElapsed: time.Millisecond,
			wantErr:     []error{context.DeadlineExceeded},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				op := dbop.Op[int](func(ctx context.Context) (int, error) {
					if calls++; calls == 1 {
						return 0, tt.first(ctx)
					}
					return calls, nil
				})
				chain := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(time.Second))
				if tt.outer {
					chain = dbop.Chain(dbop.WithTimeout(time.Second), dbop.WithRetry(dbop.Constant(0)))
				}
				start := time.Now()
				_, err := op.With(chain).Run(context.Background())
				if calls != tt.wantCalls || time.Since(start) != tt.wantElapsed {
					t.Errorf("%d attempts in %v, want %d in %v", calls, time.Since(start), tt.wantCalls, tt.wantElapsed)
				}
				if len(tt.wantErr) == 0 && err != nil {
					t.Errorf("err = %v, want success", err)
				}
				for _, target := range tt.wantErr {
					if diff := cmp.Diff(target, err, cmpopts.EquateErrors()); diff != "" {
						t.Errorf("err = %v, want it to match %v", err, target)
					}
				}
				if isTimeout(err) != tt.wantTimeout {
					t.Errorf("err = %v, carries a *dbop.TimeoutError: %v, want %v", err, isTimeout(err), tt.wantTimeout)
				}
			})
		})
	}
}
