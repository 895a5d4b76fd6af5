package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/sqldialect"
)

// commitOutcome returns the judgement InTx passes to
// [scopes.CommitOutcome]: rules, the dialect's CommitOutcome, for the errors
// the driver returned from COMMIT, after four cases of its own: a COMMIT
// database/sql never sent is not committed, and classified as usual (see
// commitError); so is one not sent because the statement ResolveCommit
// runs before it failed; a transaction fn ended itself, committing it or
// not, is Ambiguous (errEndedInFn); a COMMIT that found no transaction on
// SQLite, which had ended it while fn went on, leaves what was applied
// unknown (sqldialect.TxEnded). A COMMIT that failed on a *sql.Conn of the caller's
// that InTx then closed (connDiscardedError) is not retried, since no
// retry can begin on that connection, unless its outcome is unknown.
func commitOutcome(rules func(error) dbop.Verdict) func(error) dbop.Verdict {
	var judge func(error) dbop.Verdict
	judge = func(err error) dbop.Verdict {
		if err == nil {
			return dbop.Unclassified
		}
		if e, ok := err.(*connDiscardedError); ok {
			if judge(e.err) == dbop.Ambiguous {
				return dbop.Ambiguous
			}
			return dbop.NotRetryable
		}
		if errors.Is(err, errEndedInFn) {
			// fn committed or rolled back tx itself: its work may have
			// been applied, so no Fallback may call it a failure
			// (docs/backends.md §10.3). Asked before BeforeCommitError:
			// ResolveCommit's statement fails on the ended transaction
			// (txn.Commit).
			return dbop.Ambiguous
		}
		if _, ok := errors.AsType[*notSentError](err); ok {
			return dbop.Unclassified
		}
		if _, ok := errors.AsType[*resolve.BeforeCommitError](err); ok {
			return dbop.Unclassified // ResolveCommit's statement before COMMIT failed: COMMIT was not sent
		}
		if _, ok := errors.AsType[*sqldialect.TxEndedError](err); ok {
			return dbop.Ambiguous // SQLite had ended the transaction (sqldialect.TxEnded)
		}
		return rules(err)
	}
	return judge
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
// has already rolled back) or ctx.Err(), without sending COMMIT
// (docs/backends.md §10.3). ErrTxDone is also what a transaction that fn
// ended itself returns.
func commitError(ctx context.Context, doneBefore, err error) error {
	switch {
	case errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil:
		// The context ended and database/sql rolled the transaction back
		// (docs/backends.md §10.3, §11): report the context's cause.
		return &notSentError{fmt.Errorf("%w (%w)", context.Cause(ctx), err)}
	case errors.Is(err, sql.ErrTxDone):
		return fmt.Errorf("%w: %w", errEndedInFn, err)
	case doneBefore != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The context was done before Commit was called, and txn.Commit
		// then cancelled the transaction's context itself before calling
		// it, so database/sql returned at its first check.
		return &notSentError{err}
	}
	return err
}
