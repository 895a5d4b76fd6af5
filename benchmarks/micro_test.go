package benchmarks

// Micro-benchmarks: the same tiny operation run through dbop and through
// the Go peers, each used as its README shows. Every reusable piece
// (pipeline, retrier, policy, executor, option list, backoff) is built once
// outside the timed loop where the library allows it; what a library must
// build per call (cenkalti's retry state, sethvargo's attempt-capped
// backoff) is built per call, as a user would have to.
//
// Every library is configured for the same semantics: at most 6 attempts
// (dbop's DefaultMaxAttempts), zero delay between attempts, no jitter, and
// the last error returned on exhaustion.
//
//	go test -run '^$' -bench . -benchmem -count 6

import (
	"context"
	"errors"
	"testing"
	"time"

	avast "github.com/avast/retry-go/v5"
	"github.com/cenkalti/backoff/v5"
	"github.com/dbop-go/dbop"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	sethvargo "github.com/sethvargo/go-retry"
)

const maxAttempts = 6

var (
	sink int
	// errBusy carries its verdict, as an error a classifier recognised
	// does: dbop retries only errors it recognises, the peers retry every
	// error, so both retry this one.
	errBusy = dbop.Classify(errors.New("busy"), dbop.RetryStatement)

	classifyBusy = func(err error) dbop.Verdict {
		if err == errBusy {
			return dbop.RetryStatement
		}
		return dbop.Unclassified
	}
	noopHook = func(context.Context) error { return nil }
)

// flaky fails with errBusy failures times, then succeeds once, then starts
// over: with failures = 2 every call of a retrying wrapper costs exactly
// three attempts.
type flaky struct{ n, failures int }

func (f *flaky) attempt() (int, error) {
	if f.n < f.failures {
		f.n++
		return 0, errBusy
	}
	f.n = 0
	return 1, nil
}

// scenario is one benchmark family: how many transient failures precede the
// success of each call.
type scenario struct{ failures int }

func (s scenario) run(b *testing.B) {
	b.Run("bare", s.bare)
	b.Run("dbop", s.dbop)
	b.Run("dbop-classify-hook", s.dbopClassifyHook)
	b.Run("cenkalti", s.cenkalti)
	b.Run("avast", s.avast)
	b.Run("sethvargo", s.sethvargo)
	b.Run("failsafe", s.failsafe)
}

func BenchmarkSuccess(b *testing.B)     { scenario{failures: 0}.run(b) }
func BenchmarkTwoFailures(b *testing.B) { scenario{failures: 2}.run(b) }

// bare calls the operation without any retry wrapper, once per loop on the
// success path and until it succeeds otherwise: the floor.
func (s scenario) bare(b *testing.B) {
	f := &flaky{failures: s.failures}
	b.ReportAllocs()
	for b.Loop() {
		for {
			v, err := f.attempt()
			if err == nil {
				sink += v
				break
			}
		}
	}
}

// dbop: the pipeline the issue names, WithRetry(Constant(0)), built once.
func (s scenario) dbop(b *testing.B) {
	f := &flaky{failures: s.failures}
	op := dbop.Op[int](func(context.Context) (int, error) { return f.attempt() }).
		With(dbop.WithRetry(dbop.Constant(0)))
	runOp(b, op)
}

// dbop-classify-hook: the library's own bench pipeline shape, retry +
// classifier + per-attempt hook, built once.
func (s scenario) dbopClassifyHook(b *testing.B) {
	f := &flaky{failures: s.failures}
	op := dbop.Op[int](func(context.Context) (int, error) { return f.attempt() }).
		With(dbop.WithRetry(dbop.Constant(0)), dbop.ClassifyBy(classifyBusy), dbop.Before(noopHook))
	runOp(b, op)
}

func runOp(b *testing.B, op dbop.Op[int]) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := op.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}

// cenkalti/backoff/v5: backoff.Retry(ctx, operation, opts...). The option
// list and the stateless ZeroBackOff are built once; Retry itself builds its
// state (options struct, default ExponentialBackOff, timer) on every call.
func (s scenario) cenkalti(b *testing.B) {
	f := &flaky{failures: s.failures}
	operation := backoff.Operation[int](f.attempt)
	opts := []backoff.RetryOption{
		backoff.WithBackOff(&backoff.ZeroBackOff{}),
		backoff.WithMaxTries(maxAttempts),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := backoff.Retry(ctx, operation, opts...)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}

// avast/retry-go/v5: a reusable RetrierWithData built once (the README's
// "Create retrier once, reuse many times").
func (s scenario) avast(b *testing.B) {
	f := &flaky{failures: s.failures}
	fn := avast.RetryableFuncWithData[int](f.attempt)
	retrier := avast.NewWithData[int](
		avast.Attempts(maxAttempts),
		avast.Delay(0),
		avast.DelayType(avast.FixedDelay),
		avast.LastErrorOnly(true),
	)
	b.ReportAllocs()
	for b.Loop() {
		v, err := retrier.Do(fn)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}

// sethvargo/go-retry: retry.DoValue(ctx, backoff, f), with errors marked
// retryable by retry.RetryableError as the README does. NewConstant rejects
// a zero delay, so the zero backoff is a BackoffFunc (the README's custom
// backoff), built once: it is stateless. WithMaxRetries keeps a counter, so
// it has to be built per call.
func (s scenario) sethvargo(b *testing.B) {
	f := &flaky{failures: s.failures}
	zero := sethvargo.BackoffFunc(func() (time.Duration, bool) { return 0, false })
	fn := func(context.Context) (int, error) {
		v, err := f.attempt()
		if err != nil {
			return 0, sethvargo.RetryableError(err)
		}
		return v, nil
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := sethvargo.DoValue(ctx, sethvargo.WithMaxRetries(maxAttempts-1, zero), fn)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}

// failsafe-go: a RetryPolicy (no delay by default) and its Executor, both
// built once: failsafe.With(policy).Get(fn).
func (s scenario) failsafe(b *testing.B) {
	f := &flaky{failures: s.failures}
	fn := f.attempt
	policy := retrypolicy.NewBuilder[int]().
		WithMaxAttempts(maxAttempts).
		ReturnLastFailure().
		Build()
	executor := failsafe.With(policy)
	b.ReportAllocs()
	for b.Loop() {
		v, err := executor.Get(fn)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}
