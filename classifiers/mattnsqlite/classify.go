//go:build cgo

package mattnsqlite

import (
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/mattn/go-sqlite3"
)

// Classifier maps a mattn/go-sqlite3 error to a verdict, looking through
// wrapped and joined errors for the first sqlite3.Error, which the driver
// returns by value (a *sqlite3.Error is recognised too; docs/backends.md
// §5.11). The verdicts, by result code:
//
//	ExtendedCode ErrBusySnapshot (517)   RetryTransaction
//	Code ErrBusy (5)                     RetryTransaction
//	Code ErrLocked (6)                   RetryTransaction
//	Code ErrInterrupt (9)                RetryTransaction
//	Code ErrConstraint (19)              NotRetryable
//
// BUSY_SNAPSHOT needs a new transaction: running the statement again fails
// with 517 again (§5.1, §5.3). BUSY and INTERRUPT are not RetryStatement
// because inside a transaction SQLite may already have rolled the whole
// transaction back on its own, which the error does not say (§5.5, §5.6);
// retrying the whole transaction is right either way, and LOCKED, whose
// scope is unverified (§12), gets the same safe one. On context
// cancellation mattn interrupts the statement and returns the context's
// error (§5.14), which github.com/dbop-go/dbop/classifiers.Context
// classifies.
//
// Any other error is Unclassified. Classify is safe for concurrent use.
func Classifier(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	se, ok := errors.AsType[sqlite3.Error](err)
	if !ok {
		p, ok := errors.AsType[*sqlite3.Error](err)
		if !ok || p == nil {
			return dbop.Unclassified
		}
		se = *p
	}
	if se.ExtendedCode == sqlite3.ErrBusySnapshot { // 517: a statement retry fails again, ROLLBACK works (§5.1, §5.3)
		return dbop.RetryTransaction
	}
	switch se.Code {
	case sqlite3.ErrBusy, // 5: may silently roll the transaction back (§5.2, §5.4, §5.5)
		sqlite3.ErrLocked,    // 6: scope unverified (§12 ⚠): take the safe one
		sqlite3.ErrInterrupt: // 9: rolls back "the entire transaction" and its savepoints (§5.6)
		return dbop.RetryTransaction
	case sqlite3.ErrConstraint: // 19 and its extended codes (2067, 1555, 787, …): fail on every attempt (§5 table)
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
