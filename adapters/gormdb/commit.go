package gormdb

import (
	"database/sql"
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/sqldialect"
)

// commitOutcome returns the judgement of a COMMIT error that InTx passes to
// scopes.CommitOutcome: the dialect's rules (Dialect.CommitOutcome), after
// one of database/sql's own: sql.ErrTxDone is ambiguous. The transaction
// was ended by someone else — database/sql, after the context given to
// BEGIN ended (docs/backends.md §10.3), or fn itself — so whether fn's work
// was committed is unknown to this scope; so it is when ResolveCommit's
// statement before COMMIT found it ended by fn (errEndedInFn), which
// proves nothing, though COMMIT was not sent. So is a COMMIT that found no
// transaction on SQLite, which had ended it while fn went on (sqldialect.TxEnded).
//
// The dialect, not the error type, decides the rest, because
// driver.ErrBadConn means "nothing was sent" from go-sql-driver (§4.3) but
// proves nothing from a PostgreSQL driver (§2.15, §10.2). A dialector this
// package does not know gets the safe default: every COMMIT error is
// ambiguous (§11).
func commitOutcome(rules func(error) dbop.Verdict) func(error) dbop.Verdict {
	return func(err error) dbop.Verdict {
		if errors.Is(err, errEndedInFn) {
			// fn committed or rolled back tx itself: its work may have
			// been applied, so no Fallback may call it a failure
			// (docs/backends.md §10.3). Asked before BeforeCommitError:
			// ResolveCommit's statement fails on the ended transaction
			// (txn.Commit).
			return dbop.Ambiguous
		}
		if _, ok := errors.AsType[*resolve.BeforeCommitError](err); ok {
			return dbop.Unclassified // ResolveCommit's statement before COMMIT failed: COMMIT was not sent
		}
		if errors.Is(err, sql.ErrTxDone) {
			return dbop.Ambiguous
		}
		if _, ok := errors.AsType[*sqldialect.TxEndedError](err); ok {
			return dbop.Ambiguous // SQLite had ended the transaction (sqldialect.TxEnded)
		}
		if errors.Is(err, errConnDiscarded) {
			// The caller's *sql.Conn was closed (txn.Commit): no retry
			// can begin on it.
			if rules(err) == dbop.Ambiguous {
				return dbop.Ambiguous
			}
			return dbop.NotRetryable
		}
		return rules(err)
	}
}
