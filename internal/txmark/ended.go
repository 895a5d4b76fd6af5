package txmark

import (
	"context"
	"errors"
	"fmt"
)

// ErrEndedCleanly is the cause with which a transaction scope cancels the
// context it began a *sql.Tx with once that transaction's COMMIT or
// ROLLBACK succeeded (sqldb). A Beginner that chose the connection
// (mysqldb.NodeSet under its Failover option) reads it to give that
// connection back to its pool without asking the server whether a
// transaction is still open on it: any other end — a COMMIT or ROLLBACK
// that failed, which on a Galera node outside the primary component leaves
// the transaction open (docs/backends.md §7.11), whatever the attempt's
// own outcome after a Fallback — makes it ask.
var ErrEndedCleanly = errors.New("the transaction's COMMIT or ROLLBACK succeeded")

// Clean reports whether ctx, the context a transaction was begun with, was
// cancelled with [ErrEndedCleanly].
func Clean(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrEndedCleanly)
}

// ContextErr returns the error of a transaction scope that stopped because
// ctx, the caller's context, ended: ctx's cause ([context.Cause]) when it
// matches ctx's error (a dbop.WithTimeout's *TimeoutError), otherwise ctx's
// error with the cause in its text only. A cause that does not match is
// someone else's error — an errgroup cancels its context with the first
// sibling's — which, wrapped, would lend this transaction its verdict, and
// its driver error to errors.As. nil while ctx is live.
func ContextErr(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, err) {
		return cause
	} else if cause != nil {
		return fmt.Errorf("%w (its cause: %v)", err, cause)
	}
	return err
}
