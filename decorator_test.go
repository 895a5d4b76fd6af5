package dbop_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
)

func TestBuildTimePanics(t *testing.T) {
	okOp := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	tests := []struct {
		name  string
		build func()
		want  string // a substring of the panic message
	}{
		{"With on a nil Op", func() { dbop.Op[int](nil).With() }, "nil Op"},
		{"nil decorator in With", func() { okOp.With(dbop.WithRetry(dbop.Constant(0)), nil) }, "decorator 2 of 2 passed to With is nil"},
		{"nil decorator in Chain", func() { dbop.Chain(nil) }, "decorator 1 of 1 passed to Chain is nil"},
		{"Func for another type", func() { okOp.With(dbop.OrDefault("x")) }, "cannot decorate an Op[int]"},
		{"Func returning nil", func() { okOp.With(dbop.Func[int](func(dbop.Op[int]) dbop.Op[int] { return nil })) }, "returned a nil Op"},
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
		{"nil classifier", func() { dbop.ClassifyBy(nil) }, "ClassifyBy(nil)"},
		{"nil Before", func() { dbop.Before(nil) }, "Before(nil)"},
		{"nil After", func() { dbop.After(nil) }, "After(nil)"},
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

func TestRunNilOp(t *testing.T) {
	if _, err := dbop.Op[int](nil).Run(context.Background()); !errors.Is(err, dbop.ErrNilOp) {
		t.Fatalf("err = %v, want ErrNilOp", err)
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
		setupErr := dbop.Transient(errors.New("SET LOCAL failed"))
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
			return dbop.Permanent(errors.New("no such setting"))
		})).Run(context.Background())
		if err == nil || calls != 0 {
			t.Fatalf("err=%v calls=%d; want an error and no call", err, calls)
		}
	})
	t.Run("After outside the retry sees the outcome once", func(t *testing.T) {
		var seen []error
		op, _ := failing(dbop.Transient(errors.New("a")), dbop.Transient(errors.New("b")))
		_, _ = op.With(dbop.After(func(_ context.Context, err error) { seen = append(seen, err) }), dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
		if len(seen) != 1 || seen[0] != nil {
			t.Fatalf("After saw %v, want one nil", seen)
		}
	})
	t.Run("After inside the retry sees every attempt", func(t *testing.T) {
		var seen int
		op, _ := failing(dbop.Transient(errors.New("a")), dbop.Transient(errors.New("b")))
		_, _ = op.With(dbop.WithRetry(dbop.Constant(0)), dbop.After(func(context.Context, error) { seen++ })).Run(context.Background())
		if seen != 3 {
			t.Fatalf("After saw %d attempts, want 3", seen)
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
