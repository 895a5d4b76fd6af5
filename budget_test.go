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
	b := &dbop.Budget{Ratio: 0.25, Max: 1}
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
	op := dbop.Op[int](func(context.Context) (int, error) { return 0, dbop.Classify(drv, dbop.RetryTransaction) })
	empty := &dbop.Budget{Max: 0.5} // never holds the whole token a retry costs
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.WithBudget(empty))).Run(context.Background())

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
	b := &dbop.Budget{Ratio: ratio, Max: max}
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
	b := &dbop.Budget{Ratio: ratio, Max: max}
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
			_, err := failure[int](dbop.Classify(errBusy, dbop.NotRetryable)).With(dbop.WithRetry(dbop.Constant(0), dbop.WithBudget(b))).Run(context.Background())
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
			// One token, refilled by a tenth per operation: had the
			// failures below taken it, the deposits that follow would not
			// pay for the retry at the end.
			b := &dbop.Budget{Max: 1}
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
				// The bucket never holds a whole token: only the floor pays.
				b := &dbop.Budget{Max: 0.5, MinRate: tt.rate}
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

// The floor's burst, on the real clock: a second's worth of retries at
// once, and at least one. Both rates need no waiting.
func TestBudgetMinRateBurst(t *testing.T) {
	tests := []struct {
		name        string
		rate        float64
		wantRetries []int64 // of successive operations failing throughout
	}{
		// A billion a second: a burst far above the 99 retries asked for.
		{"one a nanosecond", 1e9, []int64{99, 99}},
		// One a century: a burst of one, then nothing for a century.
		{"one a century", 3.2e-10, []int64{1, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &dbop.Budget{Max: 0.5, MinRate: tt.rate} // only the floor pays
			attempts, run := budgeted(b, dbop.MaxAttempts(100))
			var got []int64
			for range tt.wantRetries {
				attempts.Store(0)
				_ = run(always)
				got = append(got, attempts.Load()-1)
			}
			if diff := cmp.Diff(tt.wantRetries, got); diff != "" {
				t.Errorf("retries per operation (-want +got):\n%s", diff)
			}
		})
	}
}

// The floor comes on top of the bucket, only once it is empty.
func TestBudgetMinRateAfterTheBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &dbop.Budget{Max: 3, MinRate: 1}
		attempts, run := budgeted(b, dbop.MaxAttempts(100))
		run(always)
		if got := attempts.Load() - 1; got != 4 {
			t.Errorf("%d retries, want 3 from the bucket and 1 from the floor", got)
		}
	})
}

// The zero Budget is ready to use: it behaves exactly as
// Budget{Ratio: 0.1, Max: 100}, full at first, 100 tokens at most, a tenth
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
			if diff := cmp.Diff(play(&dbop.Budget{Ratio: 0.1, Max: 100}), got); diff != "" {
				t.Errorf("the zero Budget differs from Budget{Ratio: 0.1, Max: 100} (-explicit +zero):\n%s", diff)
			}
			tt.check(t, got)
		})
	}
}

// Each zero field of a Budget is its default, whatever the others: a
// Budget with some fields set behaves as one with the rest spelled out.
func TestBudgetZeroFieldsAreDefaults(t *testing.T) {
	tests := []struct {
		name           string
		zero, explicit *dbop.Budget
	}{
		{"zero Max and MinRate", &dbop.Budget{Ratio: 0.5}, &dbop.Budget{Ratio: 0.5, Max: 100}},
		{"zero Ratio and MinRate", &dbop.Budget{Max: 2}, &dbop.Budget{Ratio: 0.1, Max: 2}},
		{"zero Ratio and Max", &dbop.Budget{MinRate: 1}, &dbop.Budget{Ratio: 0.1, Max: 100, MinRate: 1}},
	}
	type outcome struct{ Attempts, Refused int64 }
	// An outage of 300 operations a second apart, then 30 healthy ones,
	// then 10 that fail once.
	play := func(b *dbop.Budget) []outcome {
		attempts, run := budgeted(b, dbop.MaxAttempts(4))
		var out []outcome
		for _, s := range []struct{ ops, failures int }{{300, always}, {30, 0}, {10, 1}} {
			attempts.Store(0)
			var refused int64
			for range s.ops {
				if errors.Is(run(s.failures), dbop.ErrBudgetExhausted) {
					refused++
				}
				time.Sleep(time.Second)
			}
			out = append(out, outcome{attempts.Load(), refused})
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got, want []outcome
			synctest.Test(t, func(*testing.T) { got = play(tt.zero) })
			synctest.Test(t, func(*testing.T) { want = play(tt.explicit) })
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%+v differs from %+v (-explicit +zero):\n%s", tt.zero, tt.explicit, diff)
			}
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

// WithBudget refuses a Budget whose fields are out of range, naming the
// field; zero fields are the defaults.
func TestBudgetPanics(t *testing.T) {
	tests := []struct {
		name   string
		budget *dbop.Budget
		want   string // the panic message; "": no panic
	}{
		{"zero", &dbop.Budget{}, ""},
		{"whole ratio", &dbop.Budget{Ratio: 1}, ""},
		{"fractional max", &dbop.Budget{Max: 0.5}, ""},
		{"slowest floor", &dbop.Budget{MinRate: 3.2e-10}, ""},
		{"fastest floor", &dbop.Budget{MinRate: 1e9}, ""},
		{"negative ratio", &dbop.Budget{Ratio: -0.1}, "dbop: WithBudget: Budget.Ratio -0.1 is not between 0 and 1"},
		{"ratio above 1", &dbop.Budget{Ratio: 1.5}, "dbop: WithBudget: Budget.Ratio 1.5 is not between 0 and 1"},
		{"NaN ratio", &dbop.Budget{Ratio: math.NaN()}, "dbop: WithBudget: Budget.Ratio NaN is not between 0 and 1"},
		{"negative max", &dbop.Budget{Max: -1}, "dbop: WithBudget: Budget.Max -1 is not a non-negative number of tokens"},
		{"infinite max", &dbop.Budget{Max: math.Inf(1)}, "dbop: WithBudget: Budget.Max +Inf is not a non-negative number of tokens"},
		{"NaN max", &dbop.Budget{Max: math.NaN()}, "dbop: WithBudget: Budget.Max NaN is not a non-negative number of tokens"},
		{"negative rate", &dbop.Budget{MinRate: -1}, rateMsg("-1")},
		{"NaN rate", &dbop.Budget{MinRate: math.NaN()}, rateMsg("NaN")},
		{"infinite rate", &dbop.Budget{MinRate: math.Inf(1)}, rateMsg("+Inf")},
		// Below one a century the interval between floor retries would
		// overflow int64 nanoseconds and wrap to "unlimited".
		{"rate too low to represent", &dbop.Budget{MinRate: 1e-10}, rateMsg("1e-10")},
		{"rate above one a nanosecond", &dbop.Budget{MinRate: 1e10}, rateMsg("1e+10")},
		{"nil budget", nil, "dbop: WithBudget(nil)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				got := recover()
				if tt.want == "" && got != nil || tt.want != "" && got != tt.want {
					t.Errorf("panic = %v, want %q", got, tt.want)
				}
			}()
			dbop.WithBudget(tt.budget)
		})
	}
}

// BenchmarkRetryWithBudget is the success path of retry + classify + hook
// drawing on a shared budget: 0 B/op, like BenchmarkSuccess.
func BenchmarkRetryWithBudget(b *testing.B) {
	budget := &dbop.Budget{Ratio: 0.1}
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
	budget := &dbop.Budget{Ratio: 0.1}
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
	return "dbop: WithBudget: Budget.MinRate " + rate + " is not between one retry a century (3.17e-10/s) and one a nanosecond (1e9/s)"
}
