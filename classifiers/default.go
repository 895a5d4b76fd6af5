package classifiers

import (
	"database/sql"
	"errors"

	"github.com/dbop-go/dbop"
)

// Default classifies an error from any backend this package knows. It
// returns the first verdict other than Unclassified from, in this order:
//
//  1. [CockroachDB], which includes [Postgres];
//  2. [MySQL];
//  3. [SQLite];
//  4. [Network];
//  5. [Context];
//  6. the last-resort rules of [Postgres], for pgx.ErrTxCommitRollback and
//     pgx.ErrTxClosed, and its own for database/sql's [sql.ErrTxDone]: all
//     three NotRetryable.
//
// Server errors come first because they are the most precise: the server
// answered, and its code says what happened to the transaction. The backends
// look for distinct error types, so their order among themselves matters
// only for a tree that joins errors of several backends. Transport errors
// come next, because a driver often wraps them together with a context
// error or a capability (pgx's SafeToRetry) that says more. Context errors
// come last of the classifiers since they say the least: a deadline or a
// cancel, not what it did to the server. The last-resort rules come after
// them all, so that any other error joined to these decides first: a
// deadline of [dbop.WithTimeout] that surfaced as sql.ErrTxDone (database/sql
// rolls back a transaction whose context is done) is still retried.
//
// sql.ErrTxDone is a statement, COMMIT or ROLLBACK on a database/sql
// transaction already committed or rolled back. The backend classifiers
// leave it Unclassified, which no retry acts on either; Default names it so
// that a classifier listed after Default in [dbop.FirstOf] cannot call it
// retryable.
//
// Default is a function, not a variable, so that nothing in the package can
// be changed at run time. It is safe for concurrent use.
func Default(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if v := cockroachDB(err); v != dbop.Unclassified {
		return v
	}
	if v := MySQL(err); v != dbop.Unclassified {
		return v
	}
	if v := SQLite(err); v != dbop.Unclassified {
		return v
	}
	if v := Network(err); v != dbop.Unclassified {
		return v
	}
	if v := Context(err); v != dbop.Unclassified {
		return v
	}
	if v := txEnded(err); v != dbop.Unclassified {
		return v
	}
	if errors.Is(err, sql.ErrTxDone) { // "sql: transaction has already been committed or rolled back"
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
