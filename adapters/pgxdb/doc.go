// Package pgxdb runs dbop operations on PostgreSQL (and CockroachDB) through
// pgx v5: a transaction per attempt, savepoint steps inside a transaction,
// per-attempt server-side timeouts, and PostgreSQL's error rules wired in,
// so that the operations need no further setup to be retried safely.
//
// # Transactions
//
// [InTx] builds an operation that runs a function in a transaction of its
// own each time it runs, begun on a [Beginner] — a *pgxpool.Pool,
// *pgxpool.Conn or *pgx.Conn. Retrying the operation with
// [github.com/dbop-go/dbop.WithRetry] retries the whole transaction, reads
// included, which is what serialization failures (40001) and deadlocks
// (40P01) require (DB-REFERENCE §1, pitfall 3):
//
//	transfer := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
//		var balance int64
//		if err := tx.QueryRow(ctx, "SELECT balance FROM accounts WHERE id = $1", from).Scan(&balance); err != nil {
//			return 0, err
//		}
//		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = $1 WHERE id = $2", balance-amount, from)
//		return balance - amount, err
//	}, pgxdb.Isolation(pgx.Serializable), pgxdb.LockTimeout(2*time.Second))
//
//	left, err := transfer.With(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(10*time.Millisecond, time.Second)))).Run(ctx)
//
// The options choose the isolation level ([Isolation]), [ReadOnly] and
// [Deferrable] transactions, per-attempt server limits ([LockTimeout],
// [StatementTimeout]), a classifier asked before the built-in one
// ([WithClassifier]), the bound on rollbacks ([RollbackTimeout]) and
// CockroachDB's restart protocol ([CockroachRestart]).
//
// A pgx.Tx is not a Beginner: pgx's nested "transactions" are savepoints,
// which a transaction-level retry cannot use. Inside a transaction, use a
// savepoint step.
//
// # Savepoint steps
//
// [InSavepoint] runs each attempt of a step in a savepoint of a transaction
// the caller owns — the one InTx handed to fn, or any pgx.Tx — so that a
// statement-level failure (a lock timeout, 55P03; a statement timeout,
// 57014) is rolled back to the savepoint and tried again without losing the
// transaction's earlier work. A transaction-level failure is not retried
// there: it travels out, untouched, to the retry around the transaction.
//
//	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
//		tag, err := tx.Exec(ctx, "UPDATE stock SET reserved = reserved + 1 WHERE item = $1", item)
//		return tag.RowsAffected(), err
//	})
//	n, err := step.With(
//		dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(3)),
//		pgxdb.InSavepoint(tx),
//		pgxdb.Timeouts(tx, pgxdb.LockTimeout(200*time.Millisecond)),
//	).Run(ctx) // the context InTx handed to fn
//
// [Savepoints] is the underlying [scopes.Savepointer], for use with
// [scopes.InSavepoint] directly; it quotes savepoint names as identifiers.
//
// # Per-attempt timeouts
//
// With pgx a context deadline closes the connection (DB-REFERENCE §2): the
// transaction dies, and a deadline during COMMIT leaves its outcome
// unknown. Server-side limits fail one statement and keep the connection,
// so they are the per-attempt timeouts to use (pitfall 5). A [Setting]
// ([LockTimeout], [StatementTimeout]) is SET LOCAL:
//
//   - given to InTx, it is among the first statements of every attempt's
//     transaction (after each in-place restart too);
//   - given to [Timeouts] around a savepoint step, it is set at the start of
//     every attempt and set back after it, and a failed attempt's ROLLBACK
//     TO SAVEPOINT undoes it (DB-REFERENCE §1).
//
// SET LOCAL "lasts until the end of the transaction", so nothing is left on
// a pooled connection either way; the tests check that with SHOW on the
// same connection afterwards.
//
// # Errors and verdicts
//
// [Classify] decides what each error means for a retry: it is
// [classifiers.Default] (PostgreSQL and CockroachDB codes, then transport
// and context errors) plus NotRetryable for the SQLSTATE classes 22, 25
// and 42, which fail the same way every time. An error from COMMIT is
// judged by [CommitOutcome]: an outcome that is unknown becomes an
// [*scopes.AmbiguousCommitError] (errors.Is(err,
// [scopes.ErrAmbiguousCommit])) with the verdict
// [github.com/dbop-go/dbop.Ambiguous], which a retry retries only for
// [github.com/dbop-go/dbop.Idempotent] work; an error that proves nothing
// was committed is retried like any other. Every error keeps the driver's
// error reachable with errors.As (a *pgconn.PgError, say).
//
// pgx v5.12.0 reports a connection lost while it waits for the answer to
// COMMIT as "conn closed", an error that claims SafeToRetry ("nothing was
// sent"), although the COMMIT reached the server and may have been
// applied. InTx does not trust that claim: see [CommitOutcome].
//
// # CockroachDB
//
// [CockroachRestart] follows CockroachDB's client-side retry protocol
// (SAVEPOINT cockroach_restart; ROLLBACK TO SAVEPOINT cockroach_restart on
// 40001; RELEASE SAVEPOINT cockroach_restart to commit) with a bounded
// number of in-place restarts, after which the retry around InTx begins a
// new transaction. It runs on PostgreSQL too, where in-place restarts
// cannot heal a 40001 under REPEATABLE READ or SERIALIZABLE: the
// transaction keeps its snapshot across the rollback.
//
// # Concurrency
//
// Operations, decorators and options are immutable once built and safe for
// concurrent use. A transaction, and so a savepoint step or a Timeouts
// decorator built on it, serves one goroutine at a time, as does a
// *pgx.Conn.
package pgxdb
