package dbop_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dbop-go/dbop"
)

func TestBuildTimePanics(t *testing.T) {
	okOp := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	never := func(error) dbop.Verdict { return dbop.Unclassified }
	tests := []struct {
		name  string
		build func()
		want  string // a substring of the panic message
	}{
		{"With on a nil Op", func() { dbop.Op[int](nil).With() }, "nil Op"},
		{"nil decorator in With", func() { okOp.With(dbop.WithRetry(dbop.Constant(0)), nil) }, "decorator 2 of 2 passed to With is nil"},
		{"nil decorator in Chain", func() { dbop.Chain(nil) }, "decorator 1 of 1 passed to Chain is nil"},
		{"OrDefault for another type", func() { okOp.With(dbop.OrDefault("x")) }, "cannot decorate an Op[int]"},
		{"DecoratorFunc for another type", func() {
			okOp.With(dbop.DecoratorFunc[string](func(op dbop.Op[string]) dbop.Op[string] { return op }))
		}, "dbop.DecoratorFunc[string] cannot decorate an Op[int]"},
		{"DecoratorFunc for another type in a Chain", func() {
			okOp.With(dbop.Chain(dbop.WithRetry(dbop.Constant(0)), dbop.DecoratorFunc[int64](func(op dbop.Op[int64]) dbop.Op[int64] { return op })))
		}, "dbop.DecoratorFunc[int64] cannot decorate an Op[int]"},
		{"DecoratorFunc returning nil", func() { okOp.With(dbop.DecoratorFunc[int](func(dbop.Op[int]) dbop.Op[int] { return nil })) }, "returned a nil Op"},
		{"WithRetry without backoff", func() { dbop.WithRetry(nil) }, "a Backoff is required"},
		{"nil retry option", func() { dbop.WithRetry(dbop.Constant(0), nil) }, "option 1 of 1 is nil"},
		{"zero attempts", func() { dbop.MaxAttempts(0) }, "MaxAttempts(0)"},
		{"negative attempts", func() { dbop.MaxAttempts(-3) }, "MaxAttempts(-3)"},
		{"zero elapsed limit", func() { dbop.MaxElapsed(0) }, "MaxElapsed(0s)"},
		{"negative elapsed limit", func() { dbop.MaxElapsed(-time.Second) }, "MaxElapsed(-1s)"},
		{"nil random source", func() { dbop.WithRand(nil) }, "WithRand(nil)"},
		{"nil OnRetry", func() { dbop.OnRetry(nil) }, "OnRetry(nil)"},
		{"nil observer", func() { dbop.Observe(nil) }, "Observe(nil)"},
		{"empty name", func() { dbop.Named("") }, "Named"},
		{"zero timeout", func() { dbop.WithTimeout(0) }, "WithTimeout(0s)"},
		{"negative timeout", func() { dbop.WithTimeout(-time.Second) }, "WithTimeout(-1s)"},
		{"nil classifier", func() { dbop.ClassifyBy(nil) }, "ClassifyBy: classifier 1 of 1 is nil"},
		{"nil classifier among others", func() { dbop.ClassifyBy(never, nil) }, "ClassifyBy: classifier 2 of 2 is nil"},
		{"no classifier", func() { dbop.ClassifyBy() }, "ClassifyBy(): a Classifier is required"},
		{"nil classifier to Or", func() { dbop.Classifier(never).Or(nil) }, "Classifier.Or: classifier 2 of 2 is nil"},
		{"Or on a nil classifier", func() { dbop.Classifier(nil).Or(never) }, "Classifier.Or: classifier 1 of 2 is nil"},
		{"budget with a bad ratio", func() { dbop.WithBudget(&dbop.Budget{Ratio: 2}) }, "WithBudget: Budget.Ratio 2 is not between 0 and 1"},
		{"nil Before", func() { dbop.Before(nil) }, "Before(nil)"},
		{"nil Around", func() { dbop.Around(nil) }, "Around(nil)"},
		{"nil Fallback", func() { dbop.Fallback[int](nil) }, "Fallback(nil)"},
		{"nil slog logger", func() { dbop.SlogObserver(nil) }, "SlogObserver(nil)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "dbop: ") {
					t.Errorf("panic = %v, want a dbop message containing %q", r, tt.want)
				}
			}()
			tt.build()
			t.Error("no panic")
		})
	}
}

// Running a nil Op is a programmer error: it panics, naming the Op's type,
// rather than return an error a caller might retry.
func TestRunNilOp(t *testing.T) {
	tests := []struct {
		name string
		run  func()
		want string
	}{
		{"Op[int]", func() { _, _ = dbop.Op[int](nil).Run(context.Background()) }, "dbop: Run called on a nil Op[int]"},
		{"Op[[]string]", func() { _, _ = dbop.Op[[]string](nil).Run(context.Background()) }, "dbop: Run called on a nil Op[[]string]"},
		{"Op[*driverError]", func() { _, _ = dbop.Op[*driverError](nil).Run(context.Background()) }, "dbop: Run called on a nil Op[*dbop_test.driverError]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != tt.want {
					t.Errorf("panic = %v, want %q", r, tt.want)
				}
			}()
			tt.run()
			t.Error("no panic")
		})
	}
}

func TestWithLeavesOriginalUntouched(t *testing.T) {
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) { calls++; return 0, errors.New("busy") })
	_ = op.With(dbop.WithRetry(dbop.Constant(0)))
	_, _ = op.Run(context.Background())
	if calls != 1 {
		t.Fatalf("the undecorated op ran %d times, want 1", calls)
	}
}

func TestHooks(t *testing.T) {
	t.Run("Before error fails the attempt and is retried", func(t *testing.T) {
		setupErr := dbop.Classify(errors.New("SET LOCAL failed"), dbop.RetryTransaction)
		befores, calls := 0, 0
		op := dbop.Op[int](func(context.Context) (int, error) { calls++; return calls, nil })
		v, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.Before(func(context.Context) error {
			if befores++; befores == 1 {
				return setupErr
			}
			return nil
		})).Run(context.Background())
		if err != nil || v != 1 || befores != 2 || calls != 1 {
			t.Fatalf("v=%d err=%v befores=%d calls=%d; want 1, nil, 2, 1", v, err, befores, calls)
		}
	})
	t.Run("Before permanent error stops", func(t *testing.T) {
		calls := 0
		op := dbop.Op[int](func(context.Context) (int, error) { calls++; return 0, nil })
		_, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.Before(func(context.Context) error {
			return dbop.Classify(errors.New("no such setting"), dbop.NotRetryable)
		})).Run(context.Background())
		if err == nil || calls != 0 {
			t.Fatalf("err=%v calls=%d; want an error and no call", err, calls)
		}
	})
	// observe is an Around that records the outcome of what it decorates,
	// as an after-hook does.
	observe := func(seen *[]error) dbop.Decorator {
		return dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
			err := next(ctx)
			*seen = append(*seen, err)
			return err
		})
	}
	errA, errB := dbop.Classify(errors.New("a"), dbop.RetryTransaction), dbop.Classify(errors.New("b"), dbop.RetryTransaction)
	t.Run("Around outside the retry sees the outcome once", func(t *testing.T) {
		var seen []error
		op, _ := failing(errA, errB)
		_, _ = op.With(observe(&seen), dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
		if len(seen) != 1 || seen[0] != nil {
			t.Fatalf("Around saw %v, want one nil", seen)
		}
	})
	t.Run("Around inside the retry sees every attempt", func(t *testing.T) {
		var seen []error
		op, _ := failing(errA, errB)
		_, _ = op.With(dbop.WithRetry(dbop.Constant(0)), observe(&seen)).Run(context.Background())
		if diff := cmp.Diff([]error{errA, errB, nil}, seen, cmpopts.EquateErrors()); diff != "" {
			t.Fatalf("Around saw (-want +got):\n%s", diff)
		}
	})
}

func TestFallbacks(t *testing.T) {
	fail := dbop.Op[int](func(context.Context) (int, error) { return 5, errors.New("down") })
	succeed := dbop.Op[int](func(context.Context) (int, error) { return 5, nil })
	tests := []struct {
		name    string
		op      dbop.Op[int]
		dec     dbop.Decorator
		want    int
		wantErr bool
	}{
		{"OrDefault on failure", fail, dbop.OrDefault(-1), -1, false},
		{"OrDefault on success", succeed, dbop.OrDefault(-1), 5, false},
		{"Fallback translates", fail, dbop.Fallback(func(_ context.Context, err error) (int, error) { return 0, errors.New("translated: " + err.Error()) }), 0, true},
		{"Fallback recovers", fail, dbop.Fallback(func(context.Context, error) (int, error) { return 9, nil }), 9, false},
		{"Fallback untouched on success", succeed, dbop.Fallback(func(context.Context, error) (int, error) { return 9, nil }), 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.op.With(tt.dec).Run(context.Background())
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("got %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// resilient is a Chain kept in a package variable, as an application keeps
// its retry policy: one Decorator serving Ops of every result type.
var resilient = dbop.Chain(
	dbop.WithTimeout(time.Hour),
	dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)),
	dbop.ClassifyBy(classifyFn),
)

func TestChainInAPackageVariable(t *testing.T) {
	var _ dbop.Decorator = resilient // Chain returns a Decorator
	t.Run("Op[int]", func(t *testing.T) {
		op, calls := counted(errBusy, errBusy)
		v, err := op.With(resilient).Run(context.Background())
		if v != 1 || err != nil || *calls != 3 {
			t.Errorf("got %d, %v after %d calls; want 1, nil after 3", v, err, *calls)
		}
	})
	t.Run("Op[[]string]", func(t *testing.T) {
		calls := 0
		op := dbop.Op[[]string](func(context.Context) ([]string, error) {
			if calls++; calls < 3 {
				return nil, errBusy
			}
			return []string{"ada", "bob"}, nil
		})
		v, err := op.With(resilient).Run(context.Background())
		if diff := cmp.Diff([]string{"ada", "bob"}, v); diff != "" || err != nil || calls != 3 {
			t.Errorf("err = %v after %d calls, want nil after 3; value (-want +got):\n%s", err, calls, diff)
		}
	})
	t.Run("exhausted", func(t *testing.T) {
		op, calls := counted(errBusy, errBusy, errBusy)
		_, err := op.With(resilient).Run(context.Background())
		if !errors.Is(err, dbop.ErrRetriesExhausted) || !errors.Is(err, errBusy) || *calls != 3 {
			t.Errorf("err = %v after %d calls, want the policy's 3 attempts exhausted", err, *calls)
		}
	})
}
