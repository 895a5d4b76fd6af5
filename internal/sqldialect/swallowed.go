package sqldialect

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// Swallowed returns the error of a transaction's function that returned
// err, nil or not, on family: when a scope or a retry inside the
// transaction saw the server roll it back (txmark.State), the family is
// MySQL's or MariaDB's, and the function went on instead of returning that
// error — it returned nil, or another error that came later (a lock wait
// timeout of a statement it ran afterwards, say) — an Ambiguous error.
// Those servers end the transaction at the rollback (a deadlock, 1213) and
// run the statements that follow on their own, each committed at once
// (docs/backends.md §3.2): what the function did after swallowing the
// error may have been applied, and running the transaction again could
// apply it twice. A function that returned the rollback's error itself is
// taken at its word. Elsewhere the transaction's owner rolls back what is
// left of the transaction and may run it again (PostgreSQL refuses
// statements in an aborted transaction; SQLite keeps it open).
func Swallowed(ctx context.Context, family Family, caller string, err error) error {
	if family != MySQL && family != MariaDB {
		return err
	}
	s := txmark.StateOf(ctx)
	if s == nil || s.Doomed() == nil {
		return err
	}
	doom := s.Doomed()
	switch {
	case err == nil:
		return dbop.Classify(fmt.Errorf("%s: the function returned nil after the server had rolled the transaction back (%w); "+
			"on %v the statements it ran after that were committed on their own, so what was applied is unknown: return the error instead of going on",
			caller, doom, family), dbop.Ambiguous)
	case errors.Is(err, doom):
		return err
	}
	return dbop.Classify(fmt.Errorf("%s: the function went on after the server had rolled the transaction back (%w), and then failed (%w); "+
		"on %v the statements it ran after the rollback were committed on their own, so what was applied is unknown: return the error instead of going on",
		caller, doom, err, family), dbop.Ambiguous)
}
