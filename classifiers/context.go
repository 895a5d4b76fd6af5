package classifiers

import (
	"context"
	"errors"

	"github.com/dbop-go/dbop"
)

// Context classifies context errors that come back from a database call:
//
//   - [context.DeadlineExceeded] is RetryTransaction. With pgx (by default)
//     and go-sql-driver/mysql a deadline closes the connection, and
//     database/sql rolls the transaction back, so the transaction is dead
//     (docs/backends.md §2.6, §2.7, §4.6, §10.3). A deadline of a
//     per-attempt timeout is exactly the case a retry is for.
//   - [context.Canceled] is NotRetryable: someone cancelled on purpose.
//
// The retry loop itself stops when the caller's own context is done, so this
// verdict matters for contexts the caller did not own.
//
// Any other error is Unclassified. Context is safe for concurrent use.
func Context(err error) dbop.Verdict {
	switch {
	case err == nil:
		return dbop.Unclassified
	case errors.Is(err, context.DeadlineExceeded):
		return dbop.RetryTransaction
	case errors.Is(err, context.Canceled):
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
