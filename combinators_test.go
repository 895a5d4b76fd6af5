package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dbop-go/dbop"
)

func value[T any](v T) dbop.Op[T] {
	return func(context.Context) (T, error) { return v, nil }
}

func failure[T any](err error) dbop.Op[T] {
	return func(context.Context) (T, error) {
		var zero T
		return zero, err
	}
}

type ctxKey struct{}

func TestThen(t *testing.T) {
	errFirst := errors.New("first failed")
	errSecond := errors.New("second failed")
	double := func(ctx context.Context, n int) (string, error) {
		if ctx.Value(ctxKey{}) != "caller" {
			return "", errors.New("the second step did not get the caller's context")
		}
		return strconv.Itoa(2 * n), nil
	}
	tests := []struct {
		name       string
		first      dbop.Op[int]
		second     func(context.Context, int) (string, error)
		want       string
		wantErr    error
		wantSecond bool
	}{
		{name: "the second step gets the first's value and the context", first: value(21), second: double, want: "42", wantSecond: true},
		{name: "a failing first step skips the second", first: failure[int](errFirst), second: double, wantErr: errFirst},
		{name: "the second step's error is returned", first: value(1), second: func(context.Context, int) (string, error) { return "partial", errSecond }, want: "partial", wantErr: errSecond, wantSecond: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			second := func(ctx context.Context, n int) (string, error) {
				called = true
				return tt.second(ctx, n)
			}
			ctx := context.WithValue(context.Background(), ctxKey{}, "caller")
			got, err := dbop.Then(tt.first, second).Run(ctx)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if called != tt.wantSecond {
				t.Errorf("second step called = %v, want %v", called, tt.wantSecond)
			}
		})
	}
}

// A retry around a Then runs the whole sequence again; one around a step
// runs that step alone again.
func TestThenUnderRetry(t *testing.T) {
	var firsts, seconds int
	first := dbop.Op[int](func(context.Context) (int, error) { firsts++; return 1, nil })
	flakySecond := func(context.Context, int) (int, error) {
		if seconds++; seconds == 1 {
			return 0, errRetryable
		}
		return 2, nil
	}
	retry := dbop.WithRetry(dbop.Constant(0))

	if _, err := dbop.Then(first, flakySecond).With(retry).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if firsts != 2 || seconds != 2 {
		t.Errorf("retry around Then: first ran %d times, second %d; want 2 and 2", firsts, seconds)
	}

	firsts, seconds = 0, 0
	retriedSecond := func(ctx context.Context, n int) (int, error) {
		return dbop.Op[int](func(ctx context.Context) (int, error) { return flakySecond(ctx, n) }).With(retry).Run(ctx)
	}
	if _, err := dbop.Then(first, retriedSecond).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if firsts != 1 || seconds != 2 {
		t.Errorf("retry around the second step: first ran %d times, second %d; want 1 and 2", firsts, seconds)
	}
}

// Then with a second step that cannot fail converts a value (what Map did).
func TestThenConverts(t *testing.T) {
	errQuery := errors.New("query failed")
	called := 0
	length := func(_ context.Context, s string) (int, error) { called++; return len(s), nil }

	if got, err := dbop.Then(value("four"), length).Run(context.Background()); got != 4 || err != nil {
		t.Errorf("Then on success = %d, %v; want 4, nil", got, err)
	}
	got, err := dbop.Then(failure[string](errQuery), length).Run(context.Background())
	if got != 0 || err != errQuery {
		t.Errorf("Then on failure = %d, %v; want 0, %v", got, err, errQuery)
	}
	if called != 1 {
		t.Errorf("f called %d times, want 1: never on failure", called)
	}
}

func TestThenAllPanicOnNil(t *testing.T) {
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"Then nil op", func() { dbop.Then(nil, func(context.Context, int) (int, error) { return 0, nil }) }, "dbop: Then: op is nil"},
		{"Then nil f", func() { dbop.Then[int, int](value(1), nil) }, "dbop: Then: f is nil"},
		{"All nil op", func() { dbop.All(0, value(1), nil, value(3)) }, "dbop: All: op 2 of 3 is nil"},
		{"AllKeyed nil op", func() { dbop.AllKeyed(0, map[string]dbop.Op[int]{"a": value(1), "b": nil}) }, "dbop: AllKeyed: op for key b is nil"},
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

// The ops finish in reverse order: each waits for the next one to finish.
func TestAllKeepsTheOrderOfOps(t *testing.T) {
	const n = 8
	done := make([]chan struct{}, n+1)
	for i := range done {
		done[i] = make(chan struct{})
	}
	close(done[n])
	ops := make([]dbop.Op[int], n)
	for i := range ops {
		ops[i] = func(ctx context.Context) (int, error) {
			defer close(done[i])
			select {
			case <-done[i+1]:
				return i * i, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	got, err := dbop.All(0, ops...).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{0, 1, 4, 9, 16, 25, 36, 49}, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

// Under synctest, a sibling never cancelled is reported as a deadlock
// rather than hanging the test.
func TestAllReturnsTheFirstErrorAndCancelsSiblings(t *testing.T) {
	synctest.Test(t, testAllReturnsTheFirstErrorAndCancelsSiblings)
}

func testAllReturnsTheFirstErrorAndCancelsSiblings(t *testing.T) {
	errBoom := &driverError{code: "40001"}
	const siblings = 5
	var started sync.WaitGroup
	started.Add(siblings)
	var cancelled atomic.Int32
	sibling := dbop.Op[int](func(ctx context.Context) (int, error) {
		started.Done()
		<-ctx.Done()
		cancelled.Add(1)
		return 0, ctx.Err()
	})
	failing := dbop.Op[int](func(context.Context) (int, error) {
		started.Wait() // every sibling is running before this one fails
		return 0, errBoom
	})
	ops := []dbop.Op[int]{sibling, sibling, failing, sibling, sibling, sibling}

	got, err := dbop.All(0, ops...).Run(context.Background())
	if got != nil {
		t.Errorf("results = %v, want nil on failure", got)
	}
	if diff := cmp.Diff(error(errBoom), err, cmpopts.EquateErrors()); diff != "" || errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the failing op's error, not a sibling's context.Canceled", err)
	}
	var drv *driverError
	if !errors.As(err, &drv) {
		t.Errorf("errors.As does not reach the driver error in %v", err)
	}
	if n := cancelled.Load(); n != siblings {
		t.Errorf("%d siblings saw their context cancelled, want %d: All returned before they did", n, siblings)
	}
}

// With a limit of 1 the ops after a failure are never started.
func TestAllStartsNoMoreOpsAfterAFailure(t *testing.T) {
	var later atomic.Int32
	count := dbop.Op[int](func(context.Context) (int, error) { later.Add(1); return 0, nil })
	_, err := dbop.All(1, failure[int](errBusy), count, count, count).Run(context.Background())
	if err != errBusy {
		t.Errorf("err = %v, want %v", err, errBusy)
	}
	if n := later.Load(); n != 0 {
		t.Errorf("%d ops started after the failure, want 0", n)
	}
}

func TestAllWithTheCallersContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err := dbop.All(2, dbop.Op[int](func(context.Context) (int, error) { ran = true; return 1, nil })).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if ran {
		t.Error("an op ran although the caller's context was done before All started")
	}
}

func TestAllWithNoOps(t *testing.T) {
	got, err := dbop.All[int](3).Run(context.Background())
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("All() = %#v, %v; want an empty slice and no error", got, err)
	}
}

// Under synctest every op that has started is asleep at once before time
// moves on, so the peak concurrency is exactly the limit.
func TestAllRespectsTheLimit(t *testing.T) {
	const ops = 12
	tests := []struct {
		limit    int
		wantPeak int32
	}{
		{limit: 1, wantPeak: 1},
		{limit: 3, wantPeak: 3},
		{limit: ops, wantPeak: ops},
		{limit: ops + 5, wantPeak: ops},
		{limit: 0, wantPeak: ops},
		{limit: -1, wantPeak: ops},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("limit %d", tt.limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var running, peak atomic.Int32
				op := dbop.Op[int](func(context.Context) (int, error) {
					n := running.Add(1)
					defer running.Add(-1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(time.Second)
					return int(n), nil
				})
				list := make([]dbop.Op[int], ops)
				for i := range list {
					list[i] = op
				}
				got, err := dbop.All(tt.limit, list...).Run(context.Background())
				if err != nil || len(got) != ops {
					t.Fatalf("All = %v, %v", got, err)
				}
				if p := peak.Load(); p != tt.wantPeak {
					t.Errorf("peak concurrency %d, want %d", p, tt.wantPeak)
				}
			})
		})
	}
}

func TestAllKeyed(t *testing.T) {
	t.Run("results under their keys", func(t *testing.T) {
		ops := map[string]dbop.Op[int]{"ada": value(36), "bob": value(41), "cy": value(7)}
		got, err := dbop.AllKeyed(2, ops).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]int{"ada": 36, "bob": 41, "cy": 7}, got); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
	})
	t.Run("the first error, siblings cancelled", func(t *testing.T) {
		waiting := dbop.Op[int](func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		ops := map[int]dbop.Op[int]{1: waiting, 2: failure[int](errBusy), 3: waiting}
		got, err := dbop.AllKeyed(0, ops).Run(context.Background())
		if got != nil || err != errBusy {
			t.Errorf("got %v, %v; want nil, %v", got, err, errBusy)
		}
	})
	t.Run("copies the map", func(t *testing.T) {
		ops := map[string]dbop.Op[int]{"a": value(1)}
		all := dbop.AllKeyed(0, ops)
		ops["b"] = value(2)
		got, _ := all.Run(context.Background())
		if diff := cmp.Diff(map[string]int{"a": 1}, got); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
	})
	t.Run("empty", func(t *testing.T) {
		got, err := dbop.AllKeyed(0, map[string]dbop.Op[int]{}).Run(context.Background())
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("got %#v, %v; want an empty map", got, err)
		}
	})
}
