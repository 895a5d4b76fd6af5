package txmark

import (
	"context"
	"errors"
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
