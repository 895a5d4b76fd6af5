// Package pgxdb runs dbop operations on PostgreSQL (and CockroachDB) through
// pgx v5: a transaction per attempt, savepoint steps inside a transaction,
// per-attempt server-side timeouts, and PostgreSQL's error rules wired in,
// so that the operations need no further setup to be retried safely.
//
// A program that imports pgxdb links pgx and no other database driver.
// Code comments cite the repository's backend reference, docs/backends.md,
// by section.
//
// # Transactions
//
// [InTx] builds an operation that runs a function in a transaction of its
// own each time it runs, begun on a [Beginner] — a *pgxpool.Pool,
// *pgxpool.Conn or *pgx.Conn; [Do] is the same for a function with no
// result. Retrying the operation with [github.com/dbop-go/dbop.WithRetry]
// retries the whole transaction, reads included, which is what
// serialization failures (40001) and deadlocks (40P01) require
// (docs/backends.md §1.5, §1.6):
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
// A [TxOption] configures a transaction: its isolation level
// ([Isolation]), [ReadOnly] and [Deferrable] transactions, the resolution
// of lost COMMIT answers ([ResolveCommit]), and CockroachDB's restart
// protocol ([CockroachRestart]). An [Option] fits
// transactions and savepoints alike: classifiers asked before the built-in
// one ([ClassifyBy]), the bound on rollbacks ([RollbackTimeout]) and the
// per-attempt server limits ([LockTimeout], [StatementTimeout]).
//
// A pgx.Tx is not a Beginner: pgx's nested "transactions" are savepoints
// (§2.10), which a transaction-level retry cannot use. Inside a
// transaction, use a savepoint step.
//
// # Savepoint steps
//
// [InSavepoint] runs each attempt of a step in a savepoint of a transaction
// the caller owns — the one InTx handed to fn, or any pgx.Tx — so that a
// statement-level failure (a lock timeout, 55P03; a statement timeout,
// 57014) is rolled back to the savepoint and tried again without losing the
// transaction's earlier work (§1.3, §1.7). A transaction-level failure is
// not retried there: it travels out, untouched, to the retry around the
// transaction. It takes a [SavepointOption]: every Option, and no
// transaction-only one, which does not compile there.
//
//	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
//		tag, err := tx.Exec(ctx, "UPDATE stock SET reserved = reserved + 1 WHERE item = $1", item)
//		return tag.RowsAffected(), err
//	})
//	n, err := step.With(
//		dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(3)),
//		pgxdb.InSavepoint(tx, pgxdb.LockTimeout(200*time.Millisecond)),
//	).Run(ctx) // the context InTx handed to fn
//
// [Savepoints] is the underlying [scopes.Savepointer], for use with
// [scopes.InSavepoint] directly; it quotes savepoint names as identifiers.
//
// # One-shot inputs
//
// A retry runs the function again, InTx's or a savepoint step's, so what
// the function consumes must be built anew on each run. A
// [pgx.CopyFromSource] (pgx.CopyFromRows, pgx.CopyFromSlice, one of your
// own) and an io.Reader given to PgConn().CopyFrom are used up by the
// first run: built outside the function, they leave a retried CopyFrom
// nothing to copy, and the transaction commits without the rows and
// reports success. A *pgx.Batch keeps what pgx learned of its statements
// when it was first sent, and an error in that attempt can invalidate it:
// sent again, it may name a prepared statement that no longer exists
// (26000). Build them inside the function, from data that stays put, such
// as a slice:
//
//	n, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
//		return tx.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromRows(rows))
//	}).With(dbop.WithRetry(backoff)).Run(ctx)
//
// # Per-attempt timeouts
//
// With pgx a context deadline closes the connection (§2.7): the
// transaction dies, and a deadline during COMMIT leaves its outcome
// unknown. Server-side limits fail one statement and keep the connection
// (§1.7), so they are the per-attempt timeouts to use. [LockTimeout] and
// [StatementTimeout] are SET LOCAL:
//
//   - given to InTx, they are among the first statements of every
//     attempt's transaction (after each in-place restart too);
//   - given to InSavepoint, they are set at the start of every attempt
//     inside its savepoint and set back after it, and a failed attempt's
//     ROLLBACK TO SAVEPOINT undoes them (§1.4).
//
// SET LOCAL lasts until the end of the transaction, committed or not, so
// nothing is left on a pooled connection either way; the tests check that
// with SHOW on the same connection afterwards. InTx sends them with BEGIN,
// in one round trip (TxOptions.BeginQuery).
//
// When the context InTx runs with has a deadline — a per-attempt
// [github.com/dbop-go/dbop.WithTimeout], or the caller's — each attempt
// also lowers statement_timeout and lock_timeout to the time left less a
// margin, the smaller of 10 % and 50 ms, unless LockTimeout or
// StatementTimeout set a smaller one. A derived limit only ever lowers
// what is in force: where LockTimeout or StatementTimeout gave the
// parameter, the attempt gets the smaller of the given and the derived
// value (the given one applies over any default: you chose it); where
// neither did, it gets the smaller of the derived value and the server's
// value in force — a role's or database's default (ALTER ROLE … SET
// statement_timeout), a session's SET — computed by the server with
// set_config in the same round trip, so a lower limit of your own is never
// lifted (0 in force is "no limit": the derived value applies; §1.18). A
// dbop.HotSpot's bound on lock waits after its lock lowers lock_timeout the
// same way. A statement that would outlast the
// deadline is then ended by the server (57014, 55P03, retried like any
// other), and the connection and its pool slot survive; this costs
// nothing, since it travels with BEGIN. The limit is set at BEGIN: a
// statement started late in a long transaction can still be overtaken by
// the deadline. COMMIT runs without the caller's cancellation, bounded by
// [RollbackTimeout], so a deadline never cuts it short (PostgreSQL runs
// COMMIT without statement_timeout, so that bound is the only one).
//
// # Lost COMMIT answers
//
// A COMMIT whose answer is lost leaves the outcome unknown: InTx returns an
// [*scopes.AmbiguousCommitError], retried only by an Idempotent retry. With
// [ResolveCommit], InTx reads the transaction's id before COMMIT and, after
// a lost answer, asks pg_xact_status on a new connection: committed work
// returns fn's value, aborted work is retried without Idempotent, and only
// what the server cannot tell (it is unreachable, or not the server that
// ran the transaction) stays ambiguous. It costs one round trip per
// read-write transaction, so it is not on by default; docs/ambiguity.md
// has the measurements.
//
// # Hot rows
//
// Many goroutines or processes writing the same few rows (hot accounts, a
// counter, the head of a queue) commit one flush after another on
// PostgreSQL, which keeps a transaction's locks until its commit record is
// flushed (docs/backends.md §1.20): sixteen workers get no more done than
// one, whatever admits them. [ShareCommits] on such an operation runs the
// attempts that are ready at the same time in one transaction, each in a
// savepoint, with one COMMIT: 1.26–1.79× a single worker's transfers in
// docs/contention.md's cases, with the rules fn must follow in its doc.
// [dbop.HotSpot] is the answer where fn cannot follow them, and on the other
// backends. Both take the lock tables [CreateHotSpotLocks] makes to order
// processes.
//
// # Errors and verdicts
//
// [Classifier] decides what each error means for a retry: the driver-free
// rules of [classifiers.CockroachDB] (which include [classifiers.Postgres]),
// the transport and context rules, and the rules that need pgx's own error
// values (pgconn.ErrConnClosed, pgx.ErrTxCommitRollback, pgx.ErrTxClosed).
// An error from COMMIT is judged by what it says about the transaction,
// with [classifiers.PostgresCommit] and pgx's own rules (§11): an outcome
// that is unknown becomes an [*scopes.AmbiguousCommitError] (errors.Is(err,
// [scopes.ErrAmbiguousCommit])) with the verdict
// [github.com/dbop-go/dbop.Ambiguous], which a retry retries only for
// [github.com/dbop-go/dbop.Idempotent] work; an error that proves nothing
// was committed is retried like any other. Every error keeps the driver's
// error reachable with errors.As (a *pgconn.PgError, say).
//
// pgx v5.12.0 reports a connection lost while it waits for the answer to
// COMMIT as "conn closed", an error that claims SafeToRetry ("nothing was
// sent"), although the COMMIT reached the server and may have been applied
// (§2.4). InTx does not trust that claim: it tells a COMMIT that found the
// connection already closed, and so was never sent, from one whose answer
// was lost.
//
// # Safety
//
// The scopes keep the invariants of the package documentation of
// github.com/dbop-go/dbop: a doomed transaction is never retried below its
// owner (invariant 1), and a statement runs again inside a transaction only
// where the backend kept the transaction usable, after a scope rolled it
// back to a savepoint and certified that (invariant 2). fn and the
// savepoint steps receive contexts that say which transaction they run in,
// so a retry inside fn never runs again after a 40001, a 40P01 or a lost
// connection: the error goes out to InTx, which rolls back, and to the
// retry around InTx, which begins a new transaction.
//
// [CockroachRestart] is the one sanctioned in-transaction retry of a 40001,
// and it is for CockroachDB only. CockroachDB's client-side protocol
// (§6.2) answers a 40001 with ROLLBACK TO SAVEPOINT cockroach_restart,
// which restores the transaction to its start and keeps it usable, and
// runs the transaction's statements again in place. The restarts are
// driven by one [github.com/dbop-go/dbop.WithRetry] built from the
// option's arguments, with no wait between them (waiting would hold the
// transaction's locks), and each is certified by that rollback, as
// invariant 2 asks. When they are used up, the 40001 goes out to InTx and
// the retry around it. On PostgreSQL a REPEATABLE READ or SERIALIZABLE
// transaction keeps its snapshot across ROLLBACK TO (§1.6), so an in-place
// restart reads the same stale rows and fails again; there the 40001
// escalates to a new transaction after the restarts, and CockroachRestart
// only spends round trips.
//
// # Concurrency
//
// Operations, decorators and options are immutable once built and safe for
// concurrent use. A transaction, and so a savepoint step built on it,
// serves one goroutine at a time, as does a *pgx.Conn.
package pgxdb
