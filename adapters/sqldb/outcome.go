package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
)

// CommitOutcome judges an error returned by COMMIT for dialect d: it returns
// [dbop.Ambiguous] when the transaction may have been committed,
// [dbop.RetryTransaction] when nothing was sent, and [dbop.Unclassified]
// when the server (or, for SQLite, the engine) refused the COMMIT, so that
// the error is classified like any other. [InTx] passes it to
// [scopes.CommitOutcome]; it is exported for code that runs its own
// [scopes.InTx] over *sql.Tx. The rules, per dialect, are tabled in the
// package documentation ("Commit outcomes"), each with its source.
func (d Dialect) CommitOutcome(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if _, ok := errors.AsType[*notSentError](err); ok {
		// database/sql never sent the COMMIT (see commitError).
		return dbop.Unclassified
	}
	if errors.Is(err, errEndedInFn) {
		return dbop.NotRetryable
	}
	switch d {
	case Postgres:
		return classifiers.PostgresCommit(err)
	case MySQL, MariaDB:
		return classifiers.MySQLCommit(err)
	case SQLite:
		return classifiers.SQLiteCommit(err)
	}
	return dbop.Ambiguous
}

// notSentError marks a COMMIT error that database/sql produced without
// sending COMMIT to the driver: the transaction was not committed.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "sqldb: COMMIT not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// errEndedInFn explains sql.ErrTxDone from COMMIT when no context ended the
// transaction: fn committed or rolled back tx itself.
var errEndedInFn = errors.New("sqldb: the transaction was committed or rolled back inside fn; leave that to InTx")

// commitError turns the error of database/sql's Tx.Commit into what InTx
// judges. doneBefore is ctx.Err() as it was just before Commit was called.
//
// database/sql's Tx.Commit (sql.go) checks its context before anything
// else: if it is done, it returns ErrTxDone (when the awaitDone goroutine
// has already rolled back) or ctx.Err(), without sending COMMIT. ErrTxDone
// is also what a transaction that fn ended itself returns.
func commitError(ctx context.Context, doneBefore, err error) error {
	switch {
	case errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil:
		// The context ended and database/sql rolled the transaction back
		// (DB-REFERENCE §6, last row): report the context's cause.
		return &notSentError{fmt.Errorf("%w (%w)", context.Cause(ctx), err)}
	case errors.Is(err, sql.ErrTxDone):
		return fmt.Errorf("%w: %w", errEndedInFn, err)
	case doneBefore != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The context was done before Commit was called, so database/sql
		// returned at its first check.
		return &notSentError{err}
	}
	return err
}
