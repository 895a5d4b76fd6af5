package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
		{"marked permanent", dbop.Permanent(base), dbop.NotRetryable},
		{"marked transient", dbop.Transient(base), dbop.RetryTransaction},
		{"wrapped", fmt.Errorf("a: %w", dbop.Classify(base, dbop.RetryStatement)), dbop.RetryStatement},
		{"outermost wins", dbop.Classify(fmt.Errorf("a: %w", dbop.Permanent(base)), dbop.Ambiguous), dbop.Ambiguous},
		{"joined: first classified", errors.Join(base, dbop.Transient(base), dbop.Permanent(base)), dbop.RetryTransaction},
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
	if dbop.Classify(nil, dbop.NotRetryable) != nil || dbop.Permanent(nil) != nil || dbop.Transient(nil) != nil {
		t.Error("marking nil must give nil")
	}
	once := dbop.Permanent(base)
	if dbop.Permanent(once) != once {
		t.Error("re-marking with the same verdict must not wrap again")
	}
	if got := dbop.Permanent(base).Error(); got != "x" {
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
	marked := dbop.Permanent(errDeadlock)
	if err := run(marked); err != marked {
		t.Errorf("an already classified error must keep its verdict, got %v", dbop.VerdictOf(err))
	}
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	if v, err := op.With(dbop.ClassifyBy(classifier)).Run(context.Background()); v != 1 || err != nil {
		t.Errorf("success altered: %d, %v", v, err)
	}
}

func TestFirstOf(t *testing.T) {
	never := func(error) dbop.Verdict { return dbop.Unclassified }
	stmt := func(error) dbop.Verdict { return dbop.RetryStatement }
	tx := func(error) dbop.Verdict { return dbop.RetryTransaction }
	if got := dbop.FirstOf(never, nil, stmt, tx)(errors.New("x")); got != dbop.RetryStatement {
		t.Errorf("FirstOf = %v, want the first opinion", got)
	}
	if got := dbop.FirstOf()(errors.New("x")); got != dbop.Unclassified {
		t.Errorf("empty FirstOf = %v", got)
	}
}

func TestWithinTx(t *testing.T) {
	ctx := context.Background()
	if dbop.IsWithinTx(ctx) {
		t.Fatal("background context reported inside a transaction")
	}
	in := dbop.WithinTx(ctx)
	if !dbop.IsWithinTx(in) || dbop.WithinTx(in) != in {
		t.Fatal("WithinTx must mark once and be idempotent")
	}
}
