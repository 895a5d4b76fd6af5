package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dbop-go/dbop"
)

func TestVerdictOf(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		name string
		err  error
		want dbop.Verdict
	}{
		{"nil", nil, dbop.Unclassified},
		{"plain", base, dbop.Unclassified},
		{"classified NotRetryable", dbop.Classify(base, dbop.NotRetryable), dbop.NotRetryable},
		{"classified RetryTransaction", dbop.Classify(base, dbop.RetryTransaction), dbop.RetryTransaction},
		{"wrapped", fmt.Errorf("a: %w", dbop.Classify(base, dbop.RetryStatement)), dbop.RetryStatement},
		{"outermost wins", dbop.Classify(fmt.Errorf("a: %w", dbop.Classify(base, dbop.NotRetryable)), dbop.Ambiguous), dbop.Ambiguous},
		{"joined: first classified", errors.Join(base, dbop.Classify(base, dbop.RetryTransaction), dbop.Classify(base, dbop.NotRetryable)), dbop.RetryTransaction},
		{"joined: none classified", errors.Join(base, base), dbop.Unclassified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dbop.VerdictOf(tt.err); got != tt.want {
				t.Errorf("VerdictOf = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassifyHelpers(t *testing.T) {
	base := errors.New("x")
	if dbop.Classify(nil, dbop.NotRetryable) != nil || dbop.Classify(nil, dbop.RetryTransaction) != nil {
		t.Error("marking nil must give nil")
	}
	once := dbop.Classify(base, dbop.NotRetryable)
	if dbop.Classify(once, dbop.NotRetryable) != once {
		t.Error("re-marking with the same verdict must not wrap again")
	}
	if got := dbop.Classify(base, dbop.NotRetryable).Error(); got != "x" {
		t.Errorf("message = %q, want the original's", got)
	}
	if got, want := dbop.Verdict(42).String(), "verdict(42)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for v, want := range map[dbop.Verdict]bool{dbop.Unclassified: false, dbop.NotRetryable: false, dbop.RetryStatement: true, dbop.RetryTransaction: true, dbop.Ambiguous: false} {
		if v.Retryable() != want {
			t.Errorf("%v.Retryable() = %v, want %v", v, !want, want)
		}
	}
}

func TestClassifyBy(t *testing.T) {
	errDeadlock := errors.New("deadlock")
	classifier := func(err error) dbop.Verdict {
		if errors.Is(err, errDeadlock) {
			return dbop.RetryTransaction
		}
		return dbop.Unclassified
	}
	run := func(fail error) error {
		op := dbop.Op[int](func(context.Context) (int, error) { return 0, fail })
		_, err := op.With(dbop.ClassifyBy(classifier)).Run(context.Background())
		return err
	}
	if err := run(errDeadlock); dbop.VerdictOf(err) != dbop.RetryTransaction || !errors.Is(err, errDeadlock) {
		t.Errorf("classified error = %v (%v)", err, dbop.VerdictOf(err))
	}
	other := errors.New("other")
	if err := run(other); err != other {
		t.Errorf("an error the classifier has no opinion on must come back unchanged, got %#v", err)
	}
	marked := dbop.Classify(errDeadlock, dbop.NotRetryable)
	if err := run(marked); err != marked {
		t.Errorf("an already classified error must keep its verdict, got %v", dbop.VerdictOf(err))
	}
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	if v, err := op.With(dbop.ClassifyBy(classifier)).Run(context.Background()); v != 1 || err != nil {
		t.Errorf("success altered: %d, %v", v, err)
	}
}

// Classifier.Or asks its receiver first and its argument only where the
// receiver has no opinion.
func TestClassifierOr(t *testing.T) {
	errA, errB, errC := errors.New("a"), errors.New("b"), errors.New("c")
	var asked []string
	knows := func(name string, target error, v dbop.Verdict) dbop.Classifier {
		return func(err error) dbop.Verdict {
			asked = append(asked, name)
			if err == target {
				return v
			}
			return dbop.Unclassified
		}
	}
	c := knows("first", errA, dbop.RetryStatement).Or(knows("second", errA, dbop.NotRetryable)).Or(knows("third", errB, dbop.RetryTransaction))
	tests := []struct {
		err       error
		want      dbop.Verdict
		wantAsked []string
	}{
		{errA, dbop.RetryStatement, []string{"first"}},
		{errB, dbop.RetryTransaction, []string{"first", "second", "third"}},
		{errC, dbop.Unclassified, []string{"first", "second", "third"}},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			asked = nil
			if got := c(tt.err); got != tt.want {
				t.Errorf("verdict = %v, want %v", got, tt.want)
			}
			if diff := cmp.Diff(tt.wantAsked, asked); diff != "" {
				t.Errorf("classifiers asked (-want +got):\n%s", diff)
			}
		})
	}
}

// ClassifyBy with several classifiers asks them in the order given; the
// first with an opinion decides, and the rest are not asked.
func TestClassifyByAsksInOrder(t *testing.T) {
	errLock, errDeadlock, errOther := errors.New("lock timeout"), errors.New("deadlock"), errors.New("other")
	var asked []string
	classifier := func(name string, verdicts map[error]dbop.Verdict) dbop.Classifier {
		return func(err error) dbop.Verdict {
			asked = append(asked, name)
			return verdicts[err] // Unclassified when absent
		}
	}
	app := classifier("app", map[error]dbop.Verdict{errLock: dbop.NotRetryable})
	backend := classifier("backend", map[error]dbop.Verdict{errLock: dbop.RetryStatement, errDeadlock: dbop.RetryTransaction})
	fallback := classifier("fallback", map[error]dbop.Verdict{errDeadlock: dbop.NotRetryable, errOther: dbop.RetryStatement})
	tests := []struct {
		name      string
		err       error
		wantCalls int // under WithRetry(Constant(0), MaxAttempts(3))
		want      dbop.Verdict
		wantAsked []string // for the first attempt
	}{
		{"the first decides", errLock, 1, dbop.Unclassified, []string{"app"}},
		{"the second decides", errDeadlock, 3, dbop.RetryTransaction, []string{"app", "backend"}},
		{"the last decides", errOther, 3, dbop.RetryStatement, []string{"app", "backend", "fallback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked = nil
			op, calls := counted(tt.err, tt.err, tt.err)
			_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.ClassifyBy(app, backend, fallback)).Run(context.Background())
			if *calls != tt.wantCalls {
				t.Errorf("%d attempts, want %d", *calls, tt.wantCalls)
			}
			if got := dbop.VerdictOf(err); got != tt.want {
				t.Errorf("VerdictOf = %v, want %v", got, tt.want)
			}
			if diff := cmp.Diff(tt.wantAsked, asked[:min(len(asked), len(tt.wantAsked))]); diff != "" {
				t.Errorf("classifiers asked (-want +got):\n%s", diff)
			}
			if n := len(asked); n != len(tt.wantAsked)*tt.wantCalls {
				t.Errorf("%d classifiers asked in all, want %d per attempt", n, len(tt.wantAsked))
			}
		})
	}
}

// WithinTx marks a context: a retry running with it does not run again
// after an error no savepoint undid, while one outside a transaction does.
// Marking twice is marking once.
func TestWithinTx(t *testing.T) {
	ctx := context.Background()
	in := dbop.WithinTx(ctx)
	if dbop.WithinTx(in) != in {
		t.Error("WithinTx of a marked context is not that context")
	}
	deadlock := dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction)
	for _, tt := range []struct {
		name      string
		ctx       context.Context
		wantCalls int
	}{
		{"outside a transaction", ctx, 2},
		{"inside", in, 1},
		{"inside, marked twice", dbop.WithinTx(in), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			op, calls := counted(deadlock)
			_, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(tt.ctx)
			if *calls != tt.wantCalls {
				t.Errorf("%d attempts, want %d (err: %v)", *calls, tt.wantCalls, err)
			}
		})
	}
}
