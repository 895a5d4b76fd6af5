package classifiers

import (
	"errors"

	"github.com/dbop-go/dbop"
)

// SQLite result codes (https://www.sqlite.org/rescode.html).
const (
	sqliteBusy         = 5
	sqliteLocked       = 6
	sqliteInterrupt    = 9
	sqliteConstraint   = 19
	sqliteBusySnapshot = 517 // SQLITE_BUSY | 2<<8
)

// sqliteCoder is the capability through which modernc.org/sqlite's
// *sqlite.Error reports its result code. Classifying by capability keeps
// this package from linking the driver (and registering its "sqlite"
// database/sql driver name) into every program that imports it.
type sqliteCoder interface {
	error
	Code() int
}

// SQLite classifies the errors of modernc.org/sqlite, the pure-Go SQLite
// driver, by the result code of the first error in the tree with a
// Code() int method, as *sqlite.Error has; it does not import the driver.
// The driver enables extended result codes, so Code() may be an extended
// code such as 517; its low byte is the primary code (docs/backends.md
// §5.7). For mattn/go-sqlite3 use
// github.com/dbop-go/dbop/classifiers/mattnsqlite.
//
//	517 BUSY_SNAPSHOT                   RetryTransaction (only a new transaction
//	                                    sees the other connection's write)
//	5 BUSY (261 BUSY_RECOVERY,          RetryTransaction
//	  773 BUSY_TIMEOUT)
//	6 LOCKED (262 LOCKED_SHAREDCACHE)   RetryTransaction
//	9 INTERRUPT                         RetryTransaction
//	19 CONSTRAINT (2067 UNIQUE,         NotRetryable
//	  1555 PRIMARYKEY, 787 FOREIGNKEY, …)
//
// BUSY is not RetryStatement although outside a transaction a statement
// retry would do: inside one, SQLite may already have rolled the whole
// transaction back on its own ("SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM,
// SQLITE_BUSY, and SQLITE_INTERRUPT" may, §5.5), and a
// classifier cannot see whether it did. Retrying the whole transaction is
// right in both cases. INTERRUPT rolls back "the entire transaction" and
// its savepoints (§5.6); LOCKED gets the same safe scope (§12: ⚠
// unverified).
//
// On context cancellation the driver returns the context's error, not an
// *sqlite.Error; [Context] classifies it.
//
// Code() int is not unique to SQLite drivers. [Default] asks SQLite after
// the PostgreSQL classifiers, whose drivers' errors have no such method.
//
// Any other error is Unclassified. SQLite is safe for concurrent use.
func SQLite(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	se, ok := errors.AsType[sqliteCoder](err)
	if !ok {
		return dbop.Unclassified
	}
	code := se.Code()
	if code == sqliteBusySnapshot { // 517: a statement retry fails again, ROLLBACK works (§5.1, §5.3)
		return dbop.RetryTransaction
	}
	switch code & 0xff {
	case sqliteBusy, // 5: may silently roll the transaction back (§5.2, §5.4, §5.5)
		sqliteLocked,    // 6: scope unverified (§12 ⚠): take the safe one
		sqliteInterrupt: // 9: rolls back "the entire transaction" (§5.6)
		return dbop.RetryTransaction
	case sqliteConstraint: // 19 and its extended codes: fail on every attempt (§5 table, §12)
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
