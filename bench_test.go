package dbop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
)

var (
	benchSink int
	errBusy   = errors.New("busy")
	// errRetryable is errBusy marked retryable, for tests that retry it
	// without a classifier: WithRetry retries only errors it recognises.
	errRetryable = dbop.Classify(errBusy, dbop.RetryTransaction)
	classifyFn   = func(err error) dbop.Verdict {
		if err == errBusy {
			return dbop.RetryStatement
		}
		return dbop.Unclassified
	}
	noopHook = func(context.Context) error { return nil }
)

// The pipeline the issue names: retry + classification + a hook, built once.
func benchPipeline() dbop.Decorator {
	return dbop.Chain(
		dbop.WithRetry(dbop.Exponential(time.Millisecond, time.Second)),
		dbop.ClassifyBy(classifyFn),
		dbop.Before(noopHook),
	)
}

func runBench(b *testing.B, op dbop.Op[int]) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := op.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		benchSink += v
	}
}

// BenchmarkBare is the op alone: the floor every pipeline is measured from.
func BenchmarkBare(b *testing.B) {
	runBench(b, func(context.Context) (int, error) { return 1, nil })
}

// BenchmarkSuccess is the success path of retry + classify + hook: 0 B/op.
func BenchmarkSuccess(b *testing.B) {
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	runBench(b, op.With(benchPipeline()))
}

// BenchmarkSuccessWithTimeout adds a per-attempt timeout: it costs what
// context.WithTimeoutCause allocates and nothing more.
func BenchmarkSuccessWithTimeout(b *testing.B) {
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	runBench(b, op.With(benchPipeline(), dbop.WithTimeout(time.Second)))
}

// BenchmarkContextWithTimeout is what context.WithTimeoutCause costs on its
// own, for comparison with BenchmarkSuccessWithTimeout.
func BenchmarkContextWithTimeout(b *testing.B) {
	ctx := context.Background()
	cause := errors.New("cause")
	b.ReportAllocs()
	for b.Loop() {
		c, cancel := context.WithTimeoutCause(ctx, time.Second, cause)
		if c.Err() != nil {
			b.Fatal(c.Err())
		}
		cancel()
	}
}

// BenchmarkTwoFailures fails twice with a transient error, then succeeds,
// with zero delay: at most 3 allocations per call.
func BenchmarkTwoFailures(b *testing.B) {
	var n int
	op := dbop.Op[int](func(context.Context) (int, error) {
		if n++; n%3 != 0 {
			return 0, errBusy
		}
		return 1, nil
	})
	runBench(b, op.With(
		dbop.WithRetry(dbop.Constant(0)),
		dbop.ClassifyBy(classifyFn),
		dbop.Before(noopHook),
	))
}

// BenchmarkUncontended is the success path of the pipeline of
// BenchmarkSuccess without and with a HotSpot after the retry, which has
// seen no conflict: `benchstat -col /hotspot` gives what a HotSpot costs
// where nothing contends.
func BenchmarkUncontended(b *testing.B) {
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	b.Run("hotspot=off", func(b *testing.B) {
		runBench(b, op.With(benchPipeline()))
	})
	b.Run("hotspot=on", func(b *testing.B) {
		runBench(b, op.With(benchPipeline(), dbop.HotSpot()))
	})
}
