package pgxdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// Beginner begins a real transaction with options: *pgxpool.Pool,
// *pgxpool.Conn and *pgx.Conn satisfy it.
//
// pgx.Tx does not, on purpose. Its Begin has no options and opens a
// "pseudo nested transaction", a savepoint (docs/backends.md §2.10), whose
// Commit is a RELEASE. A retry of such a nested InTx could not heal what
// retries are for: a serialization failure or a deadlock dooms the
// enclosing transaction, and every later attempt would fail with 25P02
// (§1.1). For a retried step inside a transaction you own, use
// [InSavepoint], which lets transaction-level failures out to the retry
// around your transaction.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs, begun on db: [scopes.InTx] with PostgreSQL's rules wired in,
// so the operation needs no further setup to be retried correctly:
//
//	transfer := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) { … })
//	id, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// Each attempt runs
//
//	BEGIN [ISOLATION LEVEL …] [READ ONLY] [DEFERRABLE]
//	SAVEPOINT cockroach_restart                  (with CockroachRestart)
//	SET LOCAL lock_timeout = …; …                (with LockTimeout, StatementTimeout)
//	fn
//	RELEASE SAVEPOINT cockroach_restart          (with CockroachRestart)
//	COMMIT                                       (ROLLBACK if anything failed)
//
// Errors are classified by [Classifier], with any [ClassifyBy] classifiers
// asked first, so a [dbop.WithRetry] around the operation retries the whole
// transaction, fn's reads included, on serialization failures (40001),
// deadlocks (40P01), lock and statement timeouts and lost connections, and
// gives up at once on errors that would repeat (docs/backends.md §1.5,
// §1.6). A COMMIT error is judged by what it says about the transaction:
// an outcome that is unknown is an [*scopes.AmbiguousCommitError] with the
// verdict [dbop.Ambiguous], retried only when the retry is
// [dbop.Idempotent]; an error that proves nothing was committed is
// classified like any other (see "Errors and verdicts" in the package
// documentation). errors.As reaches the driver's error (a
// *pgconn.PgError, say) on everything InTx returns.
//
// The per-attempt settings are SET LOCAL, which ends with the transaction
// (§1.4), so nothing is left behind on a pooled connection.
//
// fn receives a context marked [dbop.WithinTx]: run the statements and any
// savepoint steps with it. fn must not call tx.Commit or tx.Rollback: InTx
// ends the transaction. It must return the error of a failed statement
// rather than go on: a failed statement aborts a PostgreSQL transaction,
// and a COMMIT after it only rolls back (pgx.ErrTxCommitRollback, which is
// not retried, §1.1, §1.2). To go on after an error, run the statement in
// [InSavepoint].
//
// The operation is safe for concurrent use when db is a pool; a *pgx.Conn
// serves one goroutine at a time. InTx panics if db or fn is nil or an
// option is nil.
func InTx[T any](db Beginner, fn func(ctx context.Context, tx pgx.Tx) (T, error), opts ...TxOption) dbop.Op[T] {
	return inTx("InTx", db, fn, opts)
}

// Do is [InTx] for work with no result: fn returns only an error, and the
// operation's value is struct{}. It panics as InTx does.
func Do(db Beginner, fn func(ctx context.Context, tx pgx.Tx) error, opts ...TxOption) dbop.Op[struct{}] {
	if fn == nil {
		return inTx[struct{}]("Do", db, nil, opts)
	}
	return inTx("Do", db, func(ctx context.Context, tx pgx.Tx) (struct{}, error) { return struct{}{}, fn(ctx, tx) }, opts)
}

func inTx[T any](caller string, db Beginner, fn func(context.Context, pgx.Tx) (T, error), opts []TxOption) dbop.Op[T] {
	if isNil(db) {
		panic("pgxdb: " + caller + ": the Beginner is nil" + nilType(db))
	}
	if fn == nil {
		panic("pgxdb: " + caller + ": the function to run in the transaction is nil")
	}
	c := newTxConfig(caller, opts)
	begin := func(ctx context.Context, o scopes.BeginOptions) (txn, error) {
		tx, err := c.begin(ctx, db, o)
		return txn{tx}, err
	}
	run := func(ctx context.Context, t txn) (T, error) { return fn(ctx, t.Tx) }
	if c.restart != nil {
		run = func(ctx context.Context, t txn) (T, error) { return runRestarts(ctx, c, t.Tx, fn) }
	}
	return scopes.InTx(begin, run,
		scopes.ClassifyBy(c.classifier),
		scopes.CommitOutcome(c.commitVerdict),
		scopes.RollbackTimeout(c.rollbackTimeout),
	)
}

// begin begins one attempt's transaction and, without CockroachRestart,
// runs its per-attempt settings (with it, the restart scope runs them after
// its savepoint). If the settings fail it rolls the transaction back, since
// scopes.InTx rolls back only transactions whose begin succeeded.
func (c *config) begin(ctx context.Context, db Beginner, o scopes.BeginOptions) (pgx.Tx, error) {
	txOpts := c.txOptions
	if o.ReadOnly {
		txOpts.AccessMode = pgx.ReadOnly
	}
	tx, err := db.BeginTx(ctx, txOpts)
	if err != nil {
		return nil, err
	}
	if c.restart == nil {
		if err := c.applySettings(ctx, tx); err != nil {
			return nil, c.abandon(ctx, tx, err)
		}
	}
	return tx, nil
}

// abandon rolls back a transaction whose first statements failed, with a
// context that survives the caller's cancellation, bounded by the rollback
// timeout, and returns err joined with a rollback failure.
func (c *config) abandon(ctx context.Context, tx pgx.Tx, err error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.rollbackTimeout)
	defer cancel()
	if rbErr := tx.Rollback(rctx); rbErr != nil {
		return fmt.Errorf("%w (rollback: %w)", err, rbErr)
	}
	return err
}

// txn is the transaction InTx hands to scopes.InTx: a pgx.Tx whose Commit
// says more than pgx does when COMMIT turned into ROLLBACK.
type txn struct{ pgx.Tx }

// Commit commits, telling a COMMIT that could not be sent from one whose
// answer was lost (see commitOutcome). pgx reports a COMMIT answered by
// ROLLBACK with the bare pgx.ErrTxCommitRollback; the cause is nearly
// always an error fn ignored, and the error says so.
func (t txn) Commit(ctx context.Context) error {
	err := sendCommit(t.Tx, func() error { return t.Tx.Commit(ctx) })
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return fmt.Errorf("pgxdb: the transaction had failed before COMMIT (a statement's error was not returned by fn): %w", err)
	}
	return err
}
