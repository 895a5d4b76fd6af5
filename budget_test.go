package dbop_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dbop-go/dbop"
)

// budgeted returns a counter of attempts and a function that runs, through
// a retry drawing on b, an Op failing failures times before it succeeds.
func budgeted(b *dbop.Budget, opts ...dbop.RetryOption) (attempts *atomic.Int64, run func(failures int) error) {
	attempts = new(atomic.Int64)
	retry := dbop.WithRetry(dbop.Constant(0), append([]dbop.RetryOption{dbop.WithBudget(b)}, opts...)...)
	return attempts, func(failures int) error {
		n := 0
		op := dbop.Op[int](func(context.Context) (int, error) {
			attempts.Add(1)
			if n++; n <= failures {
				return 0, errRetryable
			}
			return 1, nil
		})
		_, err := op.With(retry).Run(context.Background())
		return err
	}
}

const always = math.MaxInt // failures: an outage

// A scripted sequence on one budget of ratio 0.25 and one token at most.
func TestBudgetModel(t *testing.T) {
	b := dbop.NewBudget(0.25, dbop.BudgetMax(1))
	attempts, run := budgeted(b)
	steps := []struct {
		name         string
		failures     int
		wantAttempts int64
		wantRefused  bool // ended by the budget
	}{
		{"a full bucket pays one retry", always, 2, true},
		{"empty: no retry", always, 1, true},
		{"0.5 tokens: no retry", always, 1, true},
		{"0.75 tokens: no retry", always, 1, true},
		{"the fourth deposit makes a token", always, 2, true},
		{"success costs nothing", 0, 1, false},
		{"a second success", 0, 1, false},
		{"a third", 0, 1, false},
		{"1.0 token after this deposit: retried", 1, 2, false},
		{"0.25 tokens: refused", 1, 1, true},
	}
	for _, s := range steps {
		attempts.Store(0)
		err := run(s.failures)
		if got := attempts.Load(); got != s.wantAttempts {
			t.Errorf("%s: %d attempts, want %d", s.name, got, s.wantAttempts)
		}
		if refused := errors.Is(err, dbop.ErrBudgetExhausted); refused != s.wantRefused {
			t.Errorf("%s: err = %v, want refused by the budget: %v", s.name, err, s.wantRefused)
		}
	}
}

func TestBudgetRefusalError(t *testing.T) {
	drv := &driverError{code: "08006"}
	op := dbop.Op[int](func(context.Context) (int, error) { return 0, dbop.Transient(drv) })
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.WithBudget(dbop.NewBudget(0, dbop.BudgetMax(0))))).Run(context.Background())

	var re *dbop.RetryError
	if !errors.As(err, &re) || re.Reason != dbop.ErrBudgetExhausted || re.Attempts != 1 {
		t.Fatalf("err = %#v, want a *RetryError after 1 attempt for ErrBudgetExhausted", err)
	}
	var got *driverError
	if !errors.As(err, &got) || got != drv {
		t.Errorf("errors.As does not reach the driver error in %v", err)
	}
	if errors.Is(err, dbop.ErrRetriesExhausted) {
		t.Errorf("%v matches ErrRetriesExhausted: a refusal is not a limit", err)
	}
	if want := "dbop: retry budget exhausted after 1 attempts: driver: 08006"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}

// A simulated outage: every attempt fails, 1000 operations of up to 4
// attempts. Without a budget that is 3000 retries; with one, at most the
// bucket's 10 tokens plus 0.1 per operation. Then the database recovers:
// first attempts refill the bucket and retries resume.
func TestBudgetOutageAndRecovery(t *testing.T) {
	const (
		ops   = 1000
		ratio = 0.1
		max   = 10
		bound = max + ratio*ops
	)
	b := dbop.NewBudget(ratio, dbop.BudgetMax(max))
	attempts, run := budgeted(b, dbop.MaxAttempts(4))

	refused := 0
	for range ops {
		if err := run(always); errors.Is(err, dbop.ErrBudgetExhausted) {
			refused++
		}
	}
	retries := attempts.Load() - ops
	if retries > bound || retries < bound-5 {
		t.Errorf("%d retries during the outage, want at most and close to %v", retries, bound)
	}
	if refused < ops*8/10 {
		t.Errorf("the budget refused %d of %d operations, want most", refused, ops)
	}

	// Recovery: 100 healthy first attempts deposit 10 tokens, which pay
	// for a retry of each of the next 10 hiccups.
	for range 100 {
		if err := run(0); err != nil {
			t.Fatal(err)
		}
	}
	attempts.Store(0)
	for i := range 10 {
		if err := run(1); err != nil {
			t.Errorf("hiccup %d after recovery: %v, want a retry and success", i, err)
		}
	}
	if n := attempts.Load(); n != 20 {
		t.Errorf("%d attempts for 10 hiccups, want 20", n)
	}
}

// The same outage from many goroutines: the bound holds exactly.
func TestBudgetOutageConcurrent(t *testing.T) {
	const (
		goroutines = 50
		each       = 20
		ratio      = 0.1
		max        = 10
		bound      = max + ratio*goroutines*each
	)
	b := dbop.NewBudget(ratio, dbop.BudgetMax(max))
	attempts, run := budgeted(b, dbop.MaxAttempts(4))
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				run(always)
			}
		})
	}
	wg.Wait()
	retries := attempts.Load() - goroutines*each
	if retries > bound || retries < 1 {
		t.Errorf("%d retries, want between 1 and %v", retries, bound)
	}
}

// Only retries that would happen are paid for: refusals for other reasons
// leave the bucket alone.
func TestBudgetPaysOnlyForRetries(t *testing.T) {
	tests := []struct {
		name  string
		first func(b *dbop.Budget) error
	}{
		{"a permanent error", func(b *dbop.Budget) error {
			_, err := failure[int](dbop.Permanent(errBusy)).With(dbop.WithRetry(dbop.Constant(0), dbop.WithBudget(b))).Run(context.Background())
			return err
		}},
		{"the attempt limit", func(b *dbop.Budget) error {
			_, err := failure[int](errRetryable).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1), dbop.WithBudget(b))).Run(context.Background())
			return err
		}},
		{"the elapsed-time limit", func(b *dbop.Budget) error {
			_, err := failure[int](errRetryable).With(dbop.WithRetry(dbop.Constant(time.Minute), dbop.MaxElapsed(time.Second), dbop.WithBudget(b))).Run(context.Background())
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := dbop.NewBudget(0, dbop.BudgetMax(1))
			for range 3 {
				if err := tt.first(b); err == nil || errors.Is(err, dbop.ErrBudgetExhausted) {
					t.Fatalf("err = %v, want a failure not caused by the budget", err)
				}
			}
			attempts, run := budgeted(b)
			if err := run(1); err != nil || attempts.Load() != 2 {
				t.Errorf("the bucket's one token was spent: %v after %d attempts", err, attempts.Load())
			}
		})
	}
}

// The floor allows perSecond retries a second from an empty bucket, in
// bursts of up to a second's worth; synctest's clock drives it.
func TestBudgetMinRate(t *testing.T) {
	type step struct {
		sleep       time.Duration
		wantRetries int64
	}
	tests := []struct {
		name  string
		rate  float64
		steps []step
	}{
		{"2 per second", 2, []step{
			{0, 2},                       // a full second's burst
			{0, 0},                       // spent
			{500 * time.Millisecond, 1},  // one more every half second
			{0, 0},                       //
			{10 * time.Second, 2},        // a long calm banks one burst only
			{1500 * time.Millisecond, 2}, // 3 earned, 2 kept
		}},
		{"one every two seconds", 0.5, []step{
			{0, 1},
			{time.Second, 0},
			{time.Second, 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := dbop.NewBudget(0, dbop.BudgetMax(0), dbop.BudgetMinRate(tt.rate))
				attempts, run := budgeted(b, dbop.MaxAttempts(100))
				for i, s := range tt.steps {
					time.Sleep(s.sleep)
					attempts.Store(0)
					if err := run(always); !errors.Is(err, dbop.ErrBudgetExhausted) {
						t.Fatalf("step %d: %v, want a refusal", i, err)
					}
					if got := attempts.Load() - 1; got != s.wantRetries {
						t.Errorf("step %d, after %v: %d retries, want %d", i, s.sleep, got, s.wantRetries)
					}
				}
			})
		})
	}
}

// The floor comes on top of the bucket, only once it is empty.
func TestBudgetMinRateAfterTheBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := dbop.NewBudget(0, dbop.BudgetMax(3), dbop.BudgetMinRate(1))
		attempts, run := budgeted(b, dbop.MaxAttempts(100))
		run(always)
		if got := attempts.Load() - 1; got != 4 {
			t.Errorf("%d retries, want 3 from the bucket and 1 from the floor", got)
		}
	})
}

// The zero Budget is ready to use: it behaves exactly as
// NewBudget(DefaultBudgetRatio), full at first, 100 tokens at most, a tenth
// of a token per operation, no floor.
func TestBudgetZeroValue(t *testing.T) {
	type step struct {
		ops, failures int
	}
	type outcome struct {
		Attempts, Refused int64
	}
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, got []outcome)
	}{
		{
			name:  "full at first: a failing operation is retried",
			steps: []step{{1, 3}},
			check: func(t *testing.T, got []outcome) {
				if got[0] != (outcome{4, 0}) {
					t.Errorf("got %+v, want 4 attempts and no refusal", got[0])
				}
			},
		},
		{
			name:  "an outage spends the 100 tokens, then a tenth per operation",
			steps: []step{{1000, always}},
			check: func(t *testing.T, got []outcome) {
				// 100 tokens and 1000 deposits of 0.1, each retry costing 1.
				if retries := got[0].Attempts - 1000; retries > 200 || retries < 195 {
					t.Errorf("%d retries during the outage, want at most and close to 200", retries)
				}
			},
		},
		{
			name:  "healthy operations refill it after an outage",
			steps: []step{{1000, always}, {100, 0}, {10, 1}},
			check: func(t *testing.T, got []outcome) {
				if got[2] != (outcome{20, 0}) {
					t.Errorf("after 100 healthy operations: %+v, want 10 hiccups retried once each", got[2])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			play := func(b *dbop.Budget) []outcome {
				attempts, run := budgeted(b, dbop.MaxAttempts(4))
				var out []outcome
				for _, s := range tt.steps {
					attempts.Store(0)
					var refused int64
					for range s.ops {
						if errors.Is(run(s.failures), dbop.ErrBudgetExhausted) {
							refused++
						}
					}
					out = append(out, outcome{attempts.Load(), refused})
				}
				return out
			}
			var zero dbop.Budget
			got := play(&zero)
			if diff := cmp.Diff(play(dbop.NewBudget(dbop.DefaultBudgetRatio)), got); diff != "" {
				t.Errorf("the zero Budget differs from NewBudget(DefaultBudgetRatio) (-NewBudget +zero):\n%s", diff)
			}
			tt.check(t, got)
		})
	}
}

// BenchmarkRetryWithZeroBudget is BenchmarkRetryWithBudget drawing on a
// zero Budget: reading the defaults costs no allocation either.
func BenchmarkRetryWithZeroBudget(b *testing.B) {
	var budget dbop.Budget
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	runBench(b, op.With(dbop.WithRetry(dbop.Exponential(time.Millisecond, time.Second), dbop.WithBudget(&budget))))
}

func TestBudgetPanics(t *testing.T) {
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"negative ratio", func() { dbop.NewBudget(-0.1) }, "dbop: NewBudget(-0.1): the ratio must be between 0 and 1"},
		{"ratio above 1", func() { dbop.NewBudget(1.5) }, "dbop: NewBudget(1.5): the ratio must be between 0 and 1"},
		{"NaN ratio", func() { dbop.NewBudget(math.NaN()) }, "dbop: NewBudget(NaN): the ratio must be between 0 and 1"},
		{"nil option", func() { dbop.NewBudget(0.1, nil) }, "dbop: NewBudget: option 1 of 1 is nil"},
		{"negative max", func() { dbop.BudgetMax(-1) }, "dbop: BudgetMax(-1): the maximum must be a non-negative number of tokens"},
		{"infinite max", func() { dbop.BudgetMax(math.Inf(1)) }, "dbop: BudgetMax(+Inf): the maximum must be a non-negative number of tokens"},
		{"NaN max", func() { dbop.BudgetMax(math.NaN()) }, "dbop: BudgetMax(NaN): the maximum must be a non-negative number of tokens"},
		{"zero rate", func() { dbop.BudgetMinRate(0) }, rateMsg("0")},
		{"negative rate", func() { dbop.BudgetMinRate(-1) }, rateMsg("-1")},
		{"NaN rate", func() { dbop.BudgetMinRate(math.NaN()) }, rateMsg("NaN")},
		{"infinite rate", func() { dbop.BudgetMinRate(math.Inf(1)) }, rateMsg("+Inf")},
		// Below one a century the interval between floor retries would
		// overflow int64 nanoseconds and wrap to "unlimited".
		{"rate too low to represent", func() { dbop.BudgetMinRate(1e-10) }, rateMsg("1e-10")},
		{"rate above one a nanosecond", func() { dbop.BudgetMinRate(1e10) }, rateMsg("1e+10")},
		{"nil budget", func() { dbop.WithBudget(nil) }, "dbop: WithBudget(nil)"},
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

// BenchmarkRetryWithBudget is the success path of retry + classify + hook
// drawing on a shared budget: 0 B/op, like BenchmarkSuccess.
func BenchmarkRetryWithBudget(b *testing.B) {
	budget := dbop.NewBudget(0.1)
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	runBench(b, op.With(
		dbop.WithRetry(dbop.Exponential(time.Millisecond, time.Second), dbop.WithBudget(budget)),
		dbop.ClassifyBy(classifyFn),
		dbop.Before(noopHook),
	))
}

// BenchmarkRetryWithBudgetParallel is the same from every P at once: a full
// bucket is only read, so healthy traffic does not contend on it.
func BenchmarkRetryWithBudgetParallel(b *testing.B) {
	budget := dbop.NewBudget(0.1)
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(
		dbop.WithRetry(dbop.Exponential(time.Millisecond, time.Second), dbop.WithBudget(budget)),
	)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := op.Run(ctx); err != nil {
				b.Error(err)
			}
		}
	})
}

func rateMsg(rate string) string {
	return "dbop: BudgetMinRate(" + rate + "): the rate must be between one retry a century (3.17e-10/s) and one a nanosecond (1e9/s)"
}
