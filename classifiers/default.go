package classifiers

import (
	"database/sql"
	"errors"

	"github.com/dbop-go/dbop"
)

// Default classifies an error from any backend this package recognises
// without a driver: PostgreSQL and the databases on its wire protocol
// (CockroachDB, YugabyteDB), SQLite through modernc.org/sqlite, and the
// transport and context errors of every driver. It returns the first
// verdict other than Unclassified from, in this order:
//
//  1. [CockroachDB], which includes [Postgres];
//  2. [SQLite];
//  3. [Network];
//  4. [Context];
//  5. its own last-resort rule for database/sql's [sql.ErrTxDone]:
//     NotRetryable.
//
// MySQL and MariaDB errors need go-sql-driver/mysql's error type, which
// this package does not import: use
// github.com/dbop-go/dbop/adapters/mysqldb's Classifier, before Default
// where both are wanted (dbop.ClassifyBy(mysqldb.Classifier,
// classifiers.Default)). Likewise pgx's sentinel errors are recognised by
// github.com/dbop-go/dbop/adapters/pgxdb's Classifier (see [Postgres]).
//
// Server errors come first because they are the most precise: the server
// answered, and its code says what happened to the transaction. The backends
// look for distinct capabilities, so their order among themselves matters
// only for a tree that joins errors of several backends. Transport errors
// come next, because a driver often wraps them together with a context
// error or a capability (pgx's SafeToRetry) that says more. Context errors
// come last of the classifiers since they say the least: a deadline or a
// cancel, not what it did to the server. The last-resort rule comes after
// them all, so that any other error joined to sql.ErrTxDone decides first:
// a deadline of [dbop.WithTimeout] that surfaced as sql.ErrTxDone
// (database/sql rolls back a transaction whose context is done, §10.3 of
// docs/backends.md) is still retried.
//
// sql.ErrTxDone is a statement, COMMIT or ROLLBACK on a database/sql
// transaction already committed or rolled back. The backend classifiers
// leave it Unclassified, which no retry acts on either; Default names it so
// that a classifier asked after Default cannot call it retryable.
//
// Default is a function, not a variable, so that nothing in the package can
// be changed at run time. It is safe for concurrent use.
func Default(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if v := CockroachDB(err); v != dbop.Unclassified {
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
	if errors.Is(err, sql.ErrTxDone) { // "sql: transaction has already been committed or rolled back" (§10.3)
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
