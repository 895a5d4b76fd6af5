// Package scopes runs database operations inside a transaction or a
// savepoint, one scope per attempt, so that a retry never applies a write
// twice and never loses work it should keep.
//
// It knows SQL transaction semantics but no driver: it works over the
// smallest interfaces a driver's transaction can satisfy ([Tx],
// [Savepointer]), which the adapters in github.com/dbop-go/dbop/adapters
// implement for pgx, database/sql and GORM, wiring in their backend's
// classifier and commit judgement. The fakes in
// github.com/dbop-go/dbop/dboptest implement them too, for unit tests.
//
// # Transactions
//
// [InTx] builds an operation: every run begins a transaction, hands it to
// the function, and commits on success or rolls back on error or panic. One
// run is one transaction, so retrying the operation retries the whole
// transaction, reads included:
//
//	transfer := scopes.InTx(begin, func(ctx context.Context, tx X) (int64, error) {
//		// read balances, decide, write: all of it runs again on a retry
//	})
//	id, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx) // whole transaction retried
//
// begin is a [BeginFunc]: an adapter's, bound to a pool or a connection. It
// receives [BeginOptions]; [ReadOnly] sets BeginOptions.ReadOnly, which the adapter
// turns into the driver's own option (BEGIN READ ONLY, sql.TxOptions).
//
// InTx builds, rather than decorates, because the function needs the
// transaction: nothing outside the attempt can hand it one.
//
// # Savepoints
//
// [InSavepoint] decorates an operation that already closes over a
// transaction the caller owns, typically the one InTx handed it. Each
// attempt runs between SAVEPOINT and RELEASE SAVEPOINT; a failed attempt is
// undone with ROLLBACK TO SAVEPOINT, which keeps the transaction and its
// earlier work. Listed after [dbop.WithRetry], it turns the retry into a
// statement-level retry:
//
//	n, err := step.With(dbop.WithRetry(backoff), scopes.InSavepoint(sp)).Run(ctx) // statement retried inside caller's tx
//
// With a statement that fails twice with a lock timeout and then succeeds,
// the transaction runs:
//
//	BEGIN
//	INSERT a                          -- earlier work, kept
//	SAVEPOINT dbop_sp_1
//	UPDATE b                          -- lock timeout
//	ROLLBACK TO SAVEPOINT dbop_sp_1
//	RELEASE SAVEPOINT dbop_sp_1
//	SAVEPOINT dbop_sp_1
//	UPDATE b                          -- lock timeout
//	ROLLBACK TO SAVEPOINT dbop_sp_1
//	RELEASE SAVEPOINT dbop_sp_1
//	SAVEPOINT dbop_sp_1
//	UPDATE b
//	RELEASE SAVEPOINT dbop_sp_1
//	COMMIT
//
// The savepoint is released after a rollback to it as well, so that retries
// do not pile up shadowed savepoints of the same name (PostgreSQL keeps a
// savepoint after ROLLBACK TO). Nested savepoints get distinct names,
// dbop_sp_1, dbop_sp_2, … ([SavepointName]): the nesting depth travels in
// the context, so run an inner step with the context the outer one was
// given.
//
// # Verdicts and the two retries
//
// The scopes act on the [dbop.Verdict] of an error; the [ClassifyBy] option
// attaches one, from the backend's classifier, to the errors of the
// operation, of BEGIN and of the savepoint statements (an error that already
// carries a verdict keeps it). What each verdict does in InSavepoint:
//
//   - [dbop.RetryStatement] (a MySQL lock wait timeout, a PostgreSQL
//     lock_timeout): InSavepoint rolls back to the savepoint and certifies
//     the error as undone; the retry around it runs the statement again.
//   - [dbop.RetryTransaction] (a serialization failure, a deadlock, a lost
//     connection) and [dbop.Ambiguous]: the transaction is dead or doomed.
//     InSavepoint does not roll back to the savepoint (after a MySQL
//     deadlock the server has rolled back the whole transaction and dropped
//     its savepoints: ROLLBACK TO would fail with error 1305, and any
//     statement would run in autocommit) and marks the error as dooming the
//     transaction. No retry inside the transaction runs again after it —
//     not the retry listed around the savepoint, whatever context it runs
//     with, nor one running with the context InTx handed over — and no
//     fallback replaces it. InTx, the owner, rolls back; the retry around
//     InTx starts a new transaction.
//   - [dbop.NotRetryable], and errors no classifier recognised: InSavepoint
//     rolls back to the savepoint and returns the error (marked undone, so
//     a fallback may replace it). The transaction is usable again, so the
//     caller may handle the error (a unique violation, say) and go on.
//
// Retrying a statement where only the whole transaction can be retried is
// the classic mistake (PostgreSQL 40001, MySQL 1213, SQLite BUSY_SNAPSHOT):
// a statement-level retry cannot fix a stale snapshot. The verdicts make the
// two retries divide the work without either knowing of the other.
//
// If the statement undoing a failed attempt (ROLLBACK TO or RELEASE) fails,
// or RELEASE fails after a successful one, or SAVEPOINT itself fails, the
// transaction is in an unknown state: the error dooms it, with the verdict
// RetryTransaction where the statement failed after the attempt ran. In
// particular a RELEASE error after success is never left to a
// statement-level retry, which would run the successful statement twice.
//
// A scope that saw its transaction doomed tells the transaction's owner
// through the context InTx handed over: InTx then rolls back instead of
// committing, even if the function swallowed the error and returned nil,
// and a later InSavepoint in the same transaction refuses to run. A
// transaction you began yourself has no such owner: return the error and
// roll back.
//
// Everything InTx returns after ending its transaction is released: a
// retry may act on it as its verdict says, wherever that retry runs.
//
// # Ambiguous commits
//
// An error from COMMIT may mean the transaction was not applied, or that it
// was and the answer was lost. InTx asks [CommitOutcome] which; without that
// option every COMMIT error is ambiguous, the only safe default. An
// ambiguous COMMIT error is returned as an [*AmbiguousCommitError] carrying
// the verdict [dbop.Ambiguous]: [dbop.WithRetry] retries it only when marked
// [dbop.Idempotent], since running the transaction again could apply it
// twice. It matches [ErrAmbiguousCommit] and unwraps to the driver's error.
//
// Adapters pass a precise CommitOutcome: an error raised before anything was
// sent (pgconn.SafeToRetry, driver.ErrBadConn) or a server error answering
// the COMMIT means "not committed" and is classified as usual; a network or
// context error after the send is ambiguous.
//
// If the caller's context ends while the function runs, InTx rolls back
// instead of sending a COMMIT that could only fail, ambiguously, and returns
// the context's cause: the outcome is then known. Once COMMIT is sent, the
// caller's cancellation no longer reaches it: it runs with the context's
// values only, bounded by [RollbackTimeout], so that a deadline expiring
// while COMMIT is on the wire cannot make the driver close the connection
// and leave the outcome unknown.
//
// # Resolving a lost COMMIT answer
//
// With [ResolveCommit], a COMMIT judged ambiguous is not returned at once:
// InTx asks the transaction, when it is a [CommitResolver], what became of
// it. The adapters' transactions are, with their own ResolveCommit option:
// they ask the server on another connection (PostgreSQL's pg_xact_status,
// a commit marker row on MySQL and MariaDB). Committed, or nothing
// written: InTx returns the function's value and a nil error. Aborted: an
// [*AbortedCommitError] with the verdict [dbop.RetryTransaction], which a
// retry runs again without [dbop.Idempotent], since the work is known not
// to have happened. Still unknown: the *AmbiguousCommitError of old, its
// Resolve field saying why. [OnCommitResolved] reports every resolution,
// those that end in success included, to the functions the context carries
// (the OpenTelemetry adapter adds one that records a span event).
//
// # Panics, cancellation and rollback
//
// A panic in the operation rolls back its scope (ROLLBACK, or ROLLBACK TO
// SAVEPOINT and RELEASE SAVEPOINT) and goes on with its original value and
// stack: the scopes roll back in a deferred call without recovering, so the
// same holds for runtime.Goexit (t.FailNow in a test).
//
// A rollback runs with [context.WithoutCancel] of the caller's context,
// bounded by [RollbackTimeout] (default [DefaultRollbackTimeout]): a
// cancelled caller or an expired per-attempt timeout still rolls back, and a
// dead connection cannot block the caller for long where the driver watches
// the context during ROLLBACK and COMMIT (pgx does; go-sql-driver/mysql does
// not: there only the DSN's readTimeout and writeTimeout bound them,
// docs/ambiguity.md). The timer is stopped
// when the rollback returns. A rollback error never replaces the operation's
// error: it is joined after it, and the verdict stays the operation's.
//
// # Errors
//
// The scopes never lose the driver's error: everything they return wraps it,
// so errors.As(err, &pgErr) and errors.Is work on every error. An error that
// escapes a savepoint with a transaction-level verdict is the very value the
// operation returned (with the verdict attached, if ClassifyBy found it).
// Errors of BEGIN and of the savepoint statements say which statement
// failed ("scopes: savepoint dbop_sp_1: …").
//
// # Writing an adapter
//
// An adapter supplies a [BeginFunc] whose transaction implements [Tx] (and,
// for savepoints, a [Savepointer]), and passes its options along:
//
//	func InTx[T any](pool *pgxpool.Pool, fn func(context.Context, pgx.Tx) (T, error), opts ...scopes.TxOption) dbop.Op[T] {
//		begin := func(ctx context.Context, o scopes.BeginOptions) (pgx.Tx, error) {
//			return pool.BeginTx(ctx, pgx.TxOptions{AccessMode: accessMode(o.ReadOnly)})
//		}
//		return scopes.InTx(begin, fn, append([]scopes.TxOption{
//			scopes.ClassifyBy(classifiers.Postgres),
//			scopes.CommitOutcome(commitOutcome),
//		}, opts...)...)
//	}
//
// Commit must end the transaction whatever its outcome: InTx does not roll
// back after a failed COMMIT.
//
// # Concurrency
//
// The operations and decorators this package builds keep no state between
// runs and are safe for concurrent use, as far as the functions they wrap
// are. A transaction, and so a Savepointer, serves one goroutine at a time.
package scopes
