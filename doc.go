// Package dbop makes one logical database step survive deadlocks,
// serialization failures, lock timeouts and dropped connections without ever
// applying a write twice.
//
// # Operations and decorators
//
// An operation is a value of type [Op], a function of a context that returns
// a typed result. Resilience is added by decorators, composed with [Op.With]:
//
//	getUser := dbop.Op[User](func(ctx context.Context) (User, error) {
//		return queryUser(ctx, id)
//	})
//	user, err := getUser.With(
//		dbop.WithTimeout(10*time.Second),                                // the overall budget
//		dbop.WithRetry(dbop.Exponential(20*time.Millisecond, time.Second)),
//		dbop.WithTimeout(2*time.Second),                                 // each attempt
//		dbop.ClassifyBy(classifiers.Default),                            // feeds the retry
//	).Run(ctx)
//
// The built-in decorators ([WithRetry], [WithTimeout], [ClassifyBy],
// [Before], [After], [Around]) need no type arguments. A [Pipeline] built
// with [Chain] is a value that can live in a package variable and decorate
// operations of any result type:
//
//	var resilient = dbop.Chain(
//		dbop.WithRetry(dbop.FullJitter(dbop.Exponential(20*time.Millisecond, time.Second))),
//		dbop.ClassifyBy(classifiers.Default),
//	)
//	n, err := countOrders.With(resilient).Run(ctx)     // an Op[int]
//	rows, err := listOrders.With(resilient).Run(ctx)   // an Op[[]Order]
//
// Decorators that need the result type, such as [OrDefault] and [Fallback],
// are of type [Func] and infer it from their arguments.
//
// # Order is meaning
//
// The first decorator listed is the outermost: op.With(A, B) behaves as
// A(B(op)), and so does op.With(Chain(A, B)). Placement decides behaviour:
//
//   - [WithTimeout] before [WithRetry] bounds the whole operation, waits
//     included; after it, it bounds each attempt, and the retry goes on when
//     only that deadline fired.
//   - [ClassifyBy] after WithRetry classifies each attempt's error, which is
//     what the retry decides on; before it, it only labels the final error.
//   - [Before] after WithRetry runs before every attempt (dbop-core's
//     pre_attempt); before it, once.
//   - [OrDefault] and [Fallback] before WithRetry apply once retries are
//     over.
//
// # Verdicts
//
// Whether an error may be retried, and at what scope, is a [Verdict]:
// NotRetryable, RetryStatement (a savepoint rollback suffices),
// RetryTransaction (the whole transaction must run again) or Ambiguous (a
// COMMIT whose outcome is unknown). A [Classifier] maps errors to verdicts;
// github.com/dbop-go/dbop/classifiers has one per backend. Without a
// classifier every error is retried except the caller's own context errors,
// errors marked [Permanent], and ambiguous outcomes — the latter are retried
// only when the retry is marked [Idempotent].
//
// Transaction scopes (github.com/dbop-go/dbop/scopes) mark the context they
// hand to an operation with [WithinTx]. A retry running inside a transaction
// retries only statement-level failures; a transaction-level one travels out
// untouched to the retry around the transaction, which restarts all of it.
//
// # Errors
//
// Nothing dbop returns hides the driver's error: errors.As(err, &pgErr)
// works on every error. When [WithRetry] gives up it returns a [*RetryError]
// that matches [ErrRetriesExhausted] (or the caller's context error, if the
// caller gave up first) and unwraps to the last attempt's error. A deadline
// set by [WithTimeout] is reported as a [*TimeoutError].
//
// # Cost
//
// A pipeline does its assembly once, in With. On the success path a pipeline
// of retry, classification and hooks allocates nothing per call;
// [WithTimeout] costs what [context.WithTimeoutCause] allocates. With no
// [Observer] attached, nothing is reported and nothing is spent. See the
// benchmarks in bench_test.go.
//
// # Concurrency
//
// Ops, decorators and pipelines are immutable once built and safe for
// concurrent use. A [Backoff] is a pure function of the attempt number, so a
// shared pipeline keeps no state between calls.
//
// For work spread over many goroutines and processes: [Then], [Map], [All]
// and [AllKeyed] compose operations with their types; a [Flight] collapses
// identical concurrent reads; a [Bulkhead] caps concurrent attempts so
// retries cannot exhaust a connection pool; and a [Budget] shared by many
// operations ([WithBudget]) stops retries from multiplying the load while
// the database is down.
package dbop
