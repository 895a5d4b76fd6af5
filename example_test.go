package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/dbop-go/dbop"
)

// trace returns a Decorator that prints when the Op enters and leaves it.
func trace(name string) dbop.Decorator {
	return dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
		fmt.Println("enter", name)
		defer fmt.Println("leave", name)
		return next(ctx)
	})
}

// The first decorator listed is the outermost, in Chain as in With.
func ExampleChain() {
	pipeline := dbop.Chain(trace("A"), trace("B"))
	op := dbop.Op[int](func(context.Context) (int, error) {
		fmt.Println("op")
		return 42, nil
	})
	v, err := op.With(pipeline, trace("C")).Run(context.Background())
	fmt.Println(v, err)
	// Output:
	// enter A
	// enter B
	// enter C
	// op
	// leave C
	// leave B
	// leave A
	// 42 <nil>
}

// One Chain, built once, serves operations of any result type.
func ExampleChain_reuse() {
	resilient := dbop.Chain(
		dbop.WithTimeout(10*time.Second), // outside the retry: the overall budget
		dbop.WithRetry(dbop.Constant(0)),
		dbop.WithTimeout(2*time.Second), // inside the retry: per attempt
	)
	count := dbop.Op[int](func(context.Context) (int, error) { return 3, nil })
	names := dbop.Op[[]string](func(context.Context) ([]string, error) { return []string{"ada", "bob"}, nil })

	n, _ := count.With(resilient).Run(context.Background())
	s, _ := names.With(resilient).Run(context.Background())
	fmt.Println(n, s)
	// Output: 3 [ada bob]
}

func ExampleWithRetry() {
	calls := 0
	op := dbop.Op[string](func(context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction)
		}
		return "committed", nil
	})
	v, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
	fmt.Println(v, err, "after", calls, "attempts")
	// Output: committed <nil> after 3 attempts
}

// The retry gives up at the attempt limit; the error it returns still
// reaches the last attempt's.
func ExampleWithRetry_exhausted() {
	errLocked := errors.New("database is locked")
	op := dbop.Op[int](func(context.Context) (int, error) { return 0, dbop.Classify(errLocked, dbop.RetryTransaction) })
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(context.Background())
	var re *dbop.RetryError
	if errors.As(err, &re) {
		fmt.Println(errors.Is(err, dbop.ErrRetriesExhausted), errors.Is(err, errLocked), re.Attempts)
	}
	fmt.Println(err)
	// Output:
	// true true 3
	// dbop: retries exhausted after 3 attempts: database is locked
}

func ExampleWithRetry_onRetry() {
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) {
		if calls++; calls < 3 {
			return 0, dbop.Classify(errors.New("lock timeout"), dbop.RetryStatement)
		}
		return 7, nil
	})
	logRetry := dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		fmt.Printf("attempt %d failed (%v, %s); next in %v\n", e.Attempt, e.Err, e.Verdict, e.Delay)
	})
	v, _ := op.With(dbop.WithRetry(dbop.Exponential(10*time.Millisecond, time.Second), logRetry)).Run(context.Background())
	fmt.Println(v)
	// Output:
	// attempt 1 failed (lock timeout, retry-statement); next in 10ms
	// attempt 2 failed (lock timeout, retry-statement); next in 20ms
	// 7
}

// WithRetry retries only the errors it recognises as retryable: given a
// verdict by hand with Classify or by a classifier with ClassifyBy, or a SQLSTATE it
// knows, such as 40001. Any other error may have done anything, so it is
// returned at once, as the Op returned it.
func ExampleWithRetry_unclassified() {
	errUnknown := errors.New("something went wrong")
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) { calls++; return 0, errUnknown })
	_, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
	fmt.Println(calls, err == errUnknown, dbop.VerdictOf(err))
	// Output: 1 true unclassified
}

// Classify says by hand what an error means to a retry: RetryTransaction
// runs the work again, NotRetryable stops the retry at once. The error
// keeps its message, and errors.Is still reaches it.
func ExampleClassify() {
	errDuplicate := errors.New("duplicate key")
	for _, err := range []error{
		dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction),
		dbop.Classify(errDuplicate, dbop.NotRetryable),
	} {
		calls := 0
		op := dbop.Op[int](func(context.Context) (int, error) { calls++; return 0, err })
		_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(context.Background())
		fmt.Println(calls, dbop.VerdictOf(err), errors.Is(err, errDuplicate))
	}
	// Output:
	// 3 retry-transaction false
	// 1 not-retryable true
}

// A classifier inside the retry feeds it; the original error stays reachable.
// The serialization failure is retried until the attempt limit, and comes
// back inside the error the retry gives up with. The syntax error, which
// the classifier calls NotRetryable, comes back as the Op returned it: no
// verdict is attached where no retry would act on it.
func ExampleClassifyBy() {
	errSerialization := errors.New("could not serialize access")
	errSyntax := errors.New("syntax error")
	classify := func(err error) dbop.Verdict {
		switch {
		case errors.Is(err, errSerialization):
			return dbop.RetryTransaction
		case errors.Is(err, errSyntax):
			return dbop.NotRetryable
		}
		return dbop.Unclassified
	}
	for _, fail := range []error{errSerialization, errSyntax} {
		calls := 0
		op := dbop.Op[int](func(context.Context) (int, error) { calls++; return 0, fail })
		_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(4)), dbop.ClassifyBy(classify)).Run(context.Background())
		fmt.Println(calls, dbop.VerdictOf(err), errors.Is(err, fail), err == fail)
	}
	// Output:
	// 4 retry-transaction true false
	// 1 unclassified true true
}

// Inside the retry, a timeout bounds each attempt and the retry goes on;
// outside it bounds the whole operation.
func ExampleWithTimeout() {
	calls := 0
	slowOnce := dbop.Op[string](func(ctx context.Context) (string, error) {
		if calls++; calls == 1 {
			<-ctx.Done() // the first attempt hangs until its deadline
			return "", ctx.Err()
		}
		return "fast", nil
	})
	var timeouts int
	v, err := slowOnce.With(
		dbop.WithRetry(dbop.Constant(0), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
			var te *dbop.TimeoutError // this WithTimeout's deadline, not the caller's
			if errors.As(e.Err, &te) {
				timeouts++
			}
		})),
		dbop.WithTimeout(10*time.Millisecond),
	).Run(context.Background())
	fmt.Println(v, err, "attempt timeouts:", timeouts)
	// Output: fast <nil> attempt timeouts: 1
}

// Before runs before every attempt when listed after WithRetry: the place
// for per-attempt settings (dbop-core's pre_attempt).
func ExampleBefore() {
	attempt := 0
	op := dbop.Op[int](func(context.Context) (int, error) {
		if attempt < 2 {
			return 0, dbop.Classify(errors.New("busy"), dbop.RetryTransaction)
		}
		return attempt, nil
	})
	v, _ := op.With(
		dbop.WithRetry(dbop.Constant(0)),
		dbop.Before(func(context.Context) error {
			attempt++
			fmt.Println("SET LOCAL lock_timeout = '2s' -- attempt", attempt)
			return nil
		}),
	).Run(context.Background())
	fmt.Println(v)
	// Output:
	// SET LOCAL lock_timeout = '2s' -- attempt 1
	// SET LOCAL lock_timeout = '2s' -- attempt 2
	// 2
}

// An Around that only looks at what next returned is an after-hook. Listed
// before WithRetry, it sees the outcome of the whole operation once.
func ExampleAround_outcome() {
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) {
		calls++
		return 0, dbop.Classify(errors.New("no route to host"), dbop.RetryTransaction)
	})
	finished := dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
		err := next(ctx)
		fmt.Println("finished:", err)
		return err
	})
	_, _ = op.With(finished, dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))).Run(context.Background())
	fmt.Println(calls, "attempts")
	// Output:
	// finished: dbop: retries exhausted after 2 attempts: no route to host
	// 2 attempts
}

// OrDefault is dbop-core's raises=False, default=... Listed before the
// retry, it applies once retries are over.
func ExampleOrDefault() {
	op := dbop.Op[int](func(context.Context) (int, error) {
		return 0, dbop.Classify(errors.New("connection refused"), dbop.RetryTransaction)
	})
	v, err := op.With(dbop.OrDefault(-1), dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))).Run(context.Background())
	fmt.Println(v, err)
	// Output: -1 <nil>
}

// A COMMIT whose answer was lost may have been applied: OrDefault and
// Fallback pass such an outcome through, so that the caller never reads
// "failed, here is the default" for work that may have taken effect, unless
// AcceptAmbiguous says the default is right either way.
func ExampleAcceptAmbiguous() {
	lost := dbop.Classify(errors.New("connection lost during COMMIT"), dbop.Ambiguous)
	op := dbop.Op[int](func(context.Context) (int, error) { return 0, lost })
	for _, opts := range [][]dbop.FallbackOption{nil, {dbop.AcceptAmbiguous()}} {
		v, err := op.With(dbop.OrDefault(-1, opts...)).Run(context.Background())
		fmt.Println(v, err)
	}
	// Output:
	// 0 connection lost during COMMIT
	// -1 <nil>
}

func ExampleFallback() {
	primary := dbop.Op[string](func(context.Context) (string, error) { return "", errors.New("primary down") })
	v, err := primary.With(dbop.Fallback(func(_ context.Context, err error) (string, error) {
		return "from cache (" + err.Error() + ")", nil
	})).Run(context.Background())
	fmt.Println(v, err)
	// Output: from cache (primary down) <nil>
}

func ExampleSlogObserver() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) {
		if calls++; calls < 2 {
			return 0, dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction)
		}
		return 1, nil
	})
	_, _ = op.With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(dbop.SlogObserver(logger)), dbop.Named("transfer"))).Run(context.Background())
	// Output:
	// level=WARN msg="dbop: attempt failed, retrying" op=transfer attempt=1 verdict=retry-transaction delay=0s error="deadlock detected"
	// level=INFO msg="dbop: operation succeeded after retries" op=transfer attempts=2
}

// Typed decorators are ordinary functions from Op[T] to Op[T].
func ExampleDecoratorFunc() {
	double := dbop.DecoratorFunc[int](func(op dbop.Op[int]) dbop.Op[int] {
		return func(ctx context.Context) (int, error) {
			v, err := op(ctx)
			return v * 2, err
		}
	})
	op := dbop.Op[int](func(context.Context) (int, error) { return 21, nil })
	v, _ := op.With(double).Run(context.Background())
	fmt.Println(v)
	// Output: 42
}

// Around writes a decorator that works for every result type: here, one
// that counts attempts.
func ExampleAround() {
	attempts := 0
	counting := dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
		attempts++
		return next(ctx)
	})
	op := dbop.Op[string](func(context.Context) (string, error) {
		if attempts < 3 {
			return "", dbop.Classify(errors.New("busy"), dbop.RetryTransaction)
		}
		return "done", nil
	})
	v, err := op.With(dbop.WithRetry(dbop.Constant(0)), counting).Run(context.Background())
	fmt.Println(v, err, attempts)
	// Output: done <nil> 3
}

// A COMMIT whose outcome is unknown is retried only for idempotent work.
func ExampleIdempotent() {
	for _, opts := range [][]dbop.RetryOption{nil, {dbop.Idempotent()}} {
		calls := 0
		op := dbop.Op[int](func(context.Context) (int, error) {
			if calls++; calls == 1 {
				return 0, dbop.Classify(errors.New("connection lost during COMMIT"), dbop.Ambiguous)
			}
			return calls, nil
		})
		_, err := op.With(dbop.WithRetry(dbop.Constant(0), opts...)).Run(context.Background())
		fmt.Printf("idempotent=%v: %d call(s), err=%v\n", len(opts) > 0, calls, err)
	}
	// Output:
	// idempotent=false: 1 call(s), err=connection lost during COMMIT
	// idempotent=true: 2 call(s), err=<nil>
}

// Transfers between a few hot accounts go through one HotSpot after the
// retry; each runs with the accounts it writes as its keys, so that while
// the HotSpot limits, transfers that share an account never run at once in
// the process and transfers of disjoint accounts may.
func ExampleHotSpotKeys() {
	hot := dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)), dbop.MaxAttempts(50)), dbop.HotSpot())
	transfer := func(ctx context.Context, from, to int64) error {
		ctx = dbop.HotSpotKeys(ctx, from, to)
		_, err := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
			// In an application: pgxdb.InTx(pool, …) moving money from → to.
			return struct{}{}, nil
		}).With(hot).Run(ctx)
		return err
	}
	fmt.Println(transfer(context.Background(), 1, 2), transfer(context.Background(), 3, 4))
	// Output: <nil> <nil>
}
