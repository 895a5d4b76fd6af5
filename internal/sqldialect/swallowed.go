package sqldialect

import (
	"context"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// Swallowed returns the error of a transaction's function that returned
// err, nil or not, on family: when the function returned nil although a
// scope or a retry inside the transaction saw the server roll it back
// (txmark.State), and the family is MySQL's or MariaDB's, an Ambiguous
// error. Those servers end the transaction at the rollback (a deadlock,
// 1213) and run the statements that follow on their own, each committed at
// once (docs/backends.md §3.2): what the function did after swallowing the
// error may have been applied, and running the transaction again could
// apply it twice. Elsewhere the transaction's owner rolls back what is
// left of the transaction and may run it again (PostgreSQL refuses
// statements in an aborted transaction; SQLite keeps it open).
func Swallowed(ctx context.Context, family Family, caller string, err error) error {
	if err != nil || (family != MySQL && family != MariaDB) {
		return err
	}
	s := txmark.StateOf(ctx)
	if s == nil || s.Doomed() == nil {
		return nil
	}
	return dbop.Classify(fmt.Errorf("%s: the function returned nil after the server had rolled the transaction back (%w); "+
		"on %v the statements it ran after that were committed on their own, so what was applied is unknown: return the error instead of going on",
		caller, s.Doomed(), family), dbop.Ambiguous)
}
