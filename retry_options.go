package dbop

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// defaultMaxAttempts is the attempt limit of a WithRetry given no
// MaxAttempts option: one attempt and five retries, as dbop-core's default
// RetryPolicy.
const defaultMaxAttempts = 6

// A RetryOption configures [WithRetry].
type RetryOption func(*retrier)

// WithRetry returns a Decorator that runs the decorated Op until it
// succeeds, waiting between attempts as b says. It runs another attempt
// only after an error it recognises as retryable ([VerdictOf]): one
// carrying the verdict RetryStatement or RetryTransaction, attached by a
// classifier ([ClassifyBy], the adapters' transaction scopes) or by
// [Classify]; a SQLSTATE 40001 or 40P01 that the error reports itself; a
// deadline of a [WithTimeout] listed inside the retry; and, when the retry
// is [Idempotent], an Ambiguous outcome. Every other error ends the retry
// and is returned unchanged (err == the Op's error): an error nobody
// recognised may have done anything, so it is never run again.
//
// It also stops, returning the error of the last attempt unchanged, when:
//
//   - the caller's context is done (a context error from a per-attempt
//     [WithTimeout] inside the retry is retried: only the caller ends it);
//   - running again would run inside a transaction that the error doomed
//     or left unusable: the retry runs with a context marked [WithinTx],
//     or a transaction scope on that transaction ([AroundTx]) is listed
//     inside it, and no savepoint scope certified that the failed
//     statement was undone. The error travels out to the transaction's
//     owner, whose retry runs the whole transaction again. Should the
//     error be a transaction's (RetryTransaction, Ambiguous) that no scope
//     marked and no deadline ([WithTimeout], a HotSpot's bound) raised,
//     the retry records that the transaction is doomed, so that its owner
//     rolls back even if the function swallows the error.
//
// It returns a [*RetryError] with [ErrAlreadyCommitted] instead of running
// again a [Then] or [All] that failed after one of its steps committed a
// transaction (unless it is [Idempotent]). Around an Op of your own that
// runs several transactions one after another, it cannot see that one
// committed: use Then, or put the retry around each transaction.
//
// It gives up with a [*RetryError] when the attempt limit ([MaxAttempts],
// default 6, dbop-core's: raise it for work that meets heavy contention) or the elapsed-time limit ([MaxElapsed]) is
// reached, a shared retry budget ([WithBudget]) refuses, or the caller's
// context ends while it waits. The wait returns as soon as the context
// ends.
//
// The returned Decorator keeps no state between calls and is safe for
// concurrent use. WithRetry panics if b is nil or an option is invalid.
func WithRetry(b Backoff, opts ...RetryOption) Decorator {
	if b == nil {
		panic("dbop: WithRetry: a Backoff is required (use Constant(0) for immediate retries)")
	}
	r := &retrier{backoff: b, maxAttempts: defaultMaxAttempts}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("dbop: WithRetry: option %d of %d is nil", i+1, len(opts)))
		}
		o(r)
	}
	return r
}

// MaxAttempts limits the number of attempts, the first included: n = 1
// means no retries. It panics if n < 1.
func MaxAttempts(n int) RetryOption {
	if n < 1 {
		panic(fmt.Sprintf("dbop: MaxAttempts(%d): at least one attempt is required", n))
	}
	return func(r *retrier) { r.maxAttempts = n }
}

// MaxElapsed limits the time spent retrying: no new attempt starts when the
// wait before it would end later than d after the first attempt began. It
// panics if d <= 0.
func MaxElapsed(d time.Duration) RetryOption {
	if d <= 0 {
		panic(fmt.Sprintf("dbop: MaxElapsed(%v): the limit must be positive", d))
	}
	return func(r *retrier) { r.maxElapsed = d }
}

// Idempotent declares that applying the operation twice has the same effect
// as applying it once, so an [Ambiguous] outcome (a COMMIT whose result is
// unknown) may be retried. Without it an ambiguous outcome is returned to the
// caller, who alone can find out what happened. It also lets the retry run
// again a [Then] or [All] that failed after one of its steps committed
// ([ErrAlreadyCommitted]).
//
// Once an attempt's outcome was unknown, the work may already be applied:
// if a later attempt then fails and the retry ends, the error it returns
// still has the Ambiguous verdict and reaches the unknown attempt's error
// ([RetryError.Unknown]), so the caller never reads "failed" for work that
// may have taken effect.
func Idempotent() RetryOption {
	return func(r *retrier) { r.idempotent = true }
}

// WithRand makes the retry draw the random words its [Backoff] receives from
// src instead of math/rand/v2's global generator, for reproducible schedules
// in tests. src is called from every goroutine running the pipeline, so it
// must be safe for concurrent use if the pipeline is shared (rand.NewPCG is
// not). It panics if src is nil.
func WithRand(src rand.Source) RetryOption {
	if src == nil {
		panic("dbop: WithRand(nil)")
	}
	return func(r *retrier) { r.random = src.Uint64 }
}

// OnRetry calls fn before each wait between attempts with what failed and
// what happens next (an AttemptEvent with Retry set, as an [Observer]
// receives it). fn runs on the goroutine running the operation and must
// not block for long. It panics if fn is nil.
func OnRetry(fn func(ctx context.Context, e AttemptEvent)) RetryOption {
	if fn == nil {
		panic("dbop: OnRetry(nil)")
	}
	return func(r *retrier) { r.onRetry = fn }
}

// Observe reports the operation and each of its attempts to o (see
// [Observer]). Several Observe options report to every observer, in order.
// It panics if o is nil.
func Observe(o Observer) RetryOption {
	if o == nil {
		panic("dbop: Observe(nil)")
	}
	return func(r *retrier) {
		if r.observer == nil {
			r.observer = o
			return
		}
		r.observer = &multiObserver{first: r.observer, second: o}
	}
}

// Named gives the operation a name that observers report, such as the span
// name in OpenTelemetry. It panics if name is empty.
func Named(name string) RetryOption {
	if name == "" {
		panic("dbop: Named(\"\"): the name must not be empty")
	}
	return func(r *retrier) { r.name = name }
}

// retrier is the Decorator built by WithRetry. It is immutable once built.
type retrier struct {
	backoff     Backoff
	maxAttempts int
	maxElapsed  time.Duration
	idempotent  bool
	random      func() uint64
	onRetry     func(context.Context, AttemptEvent)
	observer    Observer
	name        string
	budget      *Budget
}

func (*retrier) decorator() {}
