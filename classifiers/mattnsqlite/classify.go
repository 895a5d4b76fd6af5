//go:build cgo

package mattnsqlite

import (
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/mattn/go-sqlite3"
)

// Classify maps a mattn/go-sqlite3 error to a verdict, looking through
// wrapped and joined errors for the first sqlite3.Error, which the driver
// returns by value (a *sqlite3.Error is recognised too). The verdicts, by
// result code (DB-REFERENCE §4):
//
//	ExtendedCode ErrBusySnapshot (517)   RetryTransaction
//	Code ErrBusy (5)                     RetryTransaction
//	Code ErrLocked (6)                   RetryTransaction
//	Code ErrInterrupt (9)                RetryTransaction
//	Code ErrConstraint (19)              NotRetryable
//
// BUSY_SNAPSHOT needs a new transaction: retrying the statement fails again
// ((E) in DB-REFERENCE §4). BUSY and INTERRUPT are not RetryStatement
// because inside a transaction SQLite may already have rolled the whole
// transaction back on its own (c3ref/get_autocommit), which the error does
// not say; retrying the whole transaction is right either way, and LOCKED
// gets the same safe scope. On context cancellation mattn interrupts the
// statement and returns the context's error, which
// github.com/dbop-go/dbop/classifiers.Context classifies.
//
// Any other error is Unclassified. Classify is safe for concurrent use.
func Classify(err error) dbop.Verdict {
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
	if se.ExtendedCode == sqlite3.ErrBusySnapshot { // 517: whole transaction only (DB-REFERENCE §4, (E))
		return dbop.RetryTransaction
	}
	switch se.Code {
	case sqlite3.ErrBusy, // 5: may silently roll the transaction back (c3ref/get_autocommit)
		sqlite3.ErrLocked,    // 6: "⚠ statement / whole tx" in DB-REFERENCE: take the safe scope
		sqlite3.ErrInterrupt: // 9: rolls back "the entire transaction" and its savepoints
		return dbop.RetryTransaction
	case sqlite3.ErrConstraint: // 19 and its extended codes (2067, 1555, 787, …): "never"
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
