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
// [Before], [Around]) need no type arguments. A pipeline built with [Chain]
// is a value that can live in a package variable and decorate operations of
// any result type:
//
//	var resilient = dbop.Chain(
//		dbop.WithRetry(dbop.FullJitter(dbop.Exponential(20*time.Millisecond, time.Second))),
//		dbop.ClassifyBy(classifiers.Default),
//	)
//	n, err := countOrders.With(resilient).Run(ctx)     // an Op[int]
//	rows, err := listOrders.With(resilient).Run(ctx)   // an Op[[]Order]
//
// Decorators that need the result type, such as [OrDefault] and [Fallback],
// infer it from their arguments; a user-written typed decorator is a
// [DecoratorFunc].
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
// github.com/dbop-go/dbop/classifiers has one per backend, and the
// adapters' transaction scopes apply theirs to every error.
//
// A retry acts only on what it recognises. Without any classifier,
// [WithRetry] retries an error marked retryable with [Classify], a SQLSTATE
// 40001 or 40P01 reported through an SQLState() method (as pgx's and
// lib/pq's errors do), and a deadline of a per-attempt [WithTimeout]; it
// retries nothing else. That is dbop's one departure from dbop-core, which
// retries every error by default: an error nobody recognised (a unique
// violation, "no rows", a bug) may have done anything, and running it
// again is how a retry library applies writes twice. To retry every error
// of work that is not a database's, say so: ClassifyBy(func(error)
// Verdict { return RetryTransaction }).
//
// # Invariants
//
// Every composition of the public API keeps these; a user cannot break
// them by the order or nesting of decorators, only by opting out by name.
//
//  1. A doomed transaction is never retried below its owner. After an
//     error that rolled back or aborted a transaction (a deadlock, a
//     serialization failure, a lost connection, MySQL's 1213, PostgreSQL's
//     25P02 …), no retry that runs inside that transaction runs another
//     attempt, and no fallback turns it into a success: the error reaches
//     the transaction's owner, wrapped but reachable with errors.Is and
//     errors.As. The retry around InTx then runs the whole transaction
//     again; a caller who began the transaction gets the error, and a
//     retry around the caller's own begin-and-commit may run it again. A
//     transaction scope that saw its transaction doomed never lets it
//     commit, even if the function swallowed the error.
//  2. A statement is run again inside a transaction only where the backend
//     kept the transaction usable: after a savepoint scope rolled it back
//     to its savepoint (the scope certifies it), and only by a retry that
//     lists that scope inside it in the same pipeline, with no Around,
//     DecoratorFunc or AroundTx of yours between
//     (step.With(WithRetry(…), InSavepoint(tx))), so that the savepoint
//     held all the attempt ran. A retry around more than the
//     scope — a Then whose first step ran, an Op of your own — returns the
//     error to the transaction's owner instead, unless it is [Idempotent];
//     a fallback there passes it through unless it has [AcceptAmbiguous].
//  3. An error no rule recognises is not retried, with or without a
//     classifier.
//  4. A decorator placed where it cannot do what it says is refused when
//     the pipeline is built: a [ClassifyBy] listed before every [WithRetry]
//     it would feed, an [OrDefault] listed after a WithRetry, a transaction
//     scope listed before a WithRetry with no scope inside it.
//  5. Bad input is refused at construction, with a message naming it.
//  6. Nothing turns an [Ambiguous] outcome into success or a default
//     without an opt-in by name ([Idempotent], [AcceptAmbiguous]).
//  7. An error dbop did not act on reaches the caller unchanged: err ==
//     the error the operation returned holds when dbop did not retry it,
//     change its verdict, undo it at a savepoint, carry it to a
//     transaction's owner, or mark it as the failure of a [Then] or [All]
//     after a step took effect (invariant 8). Where dbop adds information it wraps, and
//     errors.Is and errors.As reach the original.
//  8. A retry never runs again work that took effect, unless it is
//     [Idempotent]: a step of a [Then] or [All] whose transaction
//     committed, or, inside a transaction, whose savepoint was released
//     and not rolled back since, is not run again; the retry returns
//     [ErrAlreadyCommitted] instead.
//
// The scopes learn which transaction work runs in from the context they hand
// over ([WithinTx]) and from the transaction a savepoint scope is built on
// ([AroundTx]). One composition gives them neither, and is the exception to
// invariants 1 and 2: a retry or a fallback around work on a transaction,
// run with a context that is not marked as inside the transaction (for
// instance context.Background() inside InTx's function, or a transaction
// begun by hand). Without the mark, a retry cannot tell whether it runs
// inside the transaction or around the code that begins it, and takes it
// for the latter — savepoint steps inside it or not: after a MySQL or
// MariaDB deadlock, which ends the transaction, it runs the work again,
// each statement then committed on its own. Run work inside a
// transaction with the context the scope handed over, or mark your own with
// WithinTx; the dbopvet analyzer reports the rest. Likewise, invariant 8
// holds for the steps of Then and All, which count what their scopes commit
// through the context they hand the steps. The exceptions, which dbopvet
// reports: an Op of your own that runs several transactions one after the
// other under a retry (retry-commits; the retry cannot see the first commit
// at no cost on the success path: build it with Then, or retry each
// transaction), and a step of a Then that runs its work with another context
// than the one Then handed it (then-ctx): a transaction it commits is not
// seen. A savepoint scope run with the transaction's own context instead is
// counted, and undone with a savepoint rolled back around it, but on MySQL
// and MariaDB it reuses the name of the savepoint the step runs in and
// destroys it (the transaction is then doomed): run savepoint scopes with
// the context you were handed. A savepoint on an outer transaction run
// inside the function of an inner one (another connection) counts in the
// inner one: a retry around the inner one runs it again, Then or not; keep
// work on each transaction inside its own scope (dbopvet outside-tx reports
// it). In a transaction begun by hand and not marked with WithinTx, a
// released savepoint counts everywhere: a retry around your begin-and-commit
// refuses where it could run again; mark the context. An Op of your
// own under a retry inside a transaction that runs statements on it and
// then a transaction of its own (another connection): when that one fails,
// the retry runs the statements again (a Then counts them: build it with
// Then).
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
// For work spread over many goroutines and processes: [Then], [All] and
// [AllKeyed] compose operations with their types; a [Flight] collapses
// identical concurrent reads; a [HotSpot] admits the attempts of work that
// contends on the same rows as many at a time as succeed together, oldest
// first, with lock waits bounded (docs/contention.md); a [Bulkhead] caps
// concurrent attempts so retries cannot exhaust a connection pool; and a
// [Budget] shared by many operations ([WithBudget]) stops retries from
// multiplying the load while the database is down. These three hold state
// shared by every pipeline they are part of, which is their point.
package dbop
