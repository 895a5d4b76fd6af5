package pgxdb

import (
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/jackc/pgx/v5/pgconn"
)

// A COMMIT that pgx refused to send because the connection was already
// closed is "not committed"; the same "conn closed" from a COMMIT sent on an
// open connection is ambiguous (docs/backends.md §2.4, §11).
func TestCommitOutcomeConnClosed(t *testing.T) {
	closed := fmt.Errorf("commit: %w", pgconn.ErrConnClosed)
	if got := commitOutcome(closed); got != dbop.Ambiguous {
		t.Errorf("commitOutcome(%v) = %v, want ambiguous", closed, got)
	}
	before := &closedBeforeError{closed}
	if got := commitOutcome(before); got != dbop.RetryTransaction {
		t.Errorf("commitOutcome(%v) = %v, want retry-transaction", before, got)
	}
}
