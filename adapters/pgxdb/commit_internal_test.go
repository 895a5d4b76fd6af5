package pgxdb

import (
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/jackc/pgx/v5/pgconn"
)

// A COMMIT that pgx refused to send because the connection was already
// closed is "not committed"; the same "conn closed" from a COMMIT sent on an
// open connection is ambiguous.
func TestCommitOutcomeConnClosed(t *testing.T) {
	closed := fmt.Errorf("commit: %w", pgconn.ErrConnClosed)
	if got := CommitOutcome(closed); got != dbop.Ambiguous {
		t.Errorf("CommitOutcome(%v) = %v, want ambiguous", closed, got)
	}
	before := &closedBeforeError{closed}
	if got := CommitOutcome(before); got != dbop.RetryTransaction {
		t.Errorf("CommitOutcome(%v) = %v, want retry-transaction", before, got)
	}
}
