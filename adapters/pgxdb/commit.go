package pgxdb

import (
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CommitOutcome judges an error from pgx's COMMIT (and, under
// [CockroachRestart], from RELEASE SAVEPOINT cockroach_restart), for
// [scopes.CommitOutcome]: [dbop.Ambiguous] when the transaction may have
// been committed, and otherwise the verdict for a transaction that
// certainly was not (DB-REFERENCE §6, pitfall 1).
//
// It is [classifiers.PostgresCommit], whose table gives the rules and their
// sources, plus one rule only this package can apply. pgx v5.12.0 reports
// an answer lost after COMMIT was sent as "conn closed"
// (pgconn.ErrConnClosed), which PostgresCommit must call ambiguous; but
// [InTx] checks the connection before sending COMMIT, and a COMMIT that
// found it already closed was never sent: RetryTransaction.
//
// CommitOutcome is safe for concurrent use.
func CommitOutcome(err error) dbop.Verdict {
	if _, ok := errors.AsType[*closedBeforeError](err); ok {
		return dbop.RetryTransaction
	}
	return classifiers.PostgresCommit(err)
}

// commitOutcome returns the CommitOutcome InTx passes to scopes: the table
// of [CommitOutcome], and for a server error it leaves Unclassified, the
// classifier's verdict when that is Ambiguous. scopes wraps a COMMIT error
// in an [*scopes.AmbiguousCommitError] only when the CommitOutcome says
// Ambiguous, so a classifier that calls a COMMIT error ambiguous must be
// asked here for errors.Is(err, scopes.ErrAmbiguousCommit) to hold.
func (c *config) commitOutcome(err error) dbop.Verdict {
	v := CommitOutcome(err)
	if v == dbop.Unclassified && c.classifier(err) == dbop.Ambiguous {
		return dbop.Ambiguous
	}
	return v
}

// closedBeforeError is the error of a COMMIT (or RELEASE SAVEPOINT
// cockroach_restart) that pgx did not send because the connection had
// already been closed: the statement before it broke the connection, and fn
// went on without returning that statement's error.
type closedBeforeError struct{ err error }

func (e *closedBeforeError) Error() string {
	return "pgxdb: the connection was closed before the commit was sent (a statement's error was not returned by fn): " + e.err.Error()
}

func (e *closedBeforeError) Unwrap() error { return e.err }

// sendCommit runs send, which sends a statement whose error CommitOutcome
// judges, and marks an error as a *closedBeforeError when tx's connection
// was closed before the statement could be sent. See CommitOutcome for why
// pgx's own "conn closed" cannot tell.
func sendCommit(tx pgx.Tx, send func() error) error {
	conn := tx.Conn()
	closedBefore := conn != nil && conn.IsClosed()
	err := send()
	switch {
	case err == nil:
		return nil
	case closedBefore:
		return &closedBeforeError{err}
	case errors.Is(err, pgconn.ErrConnClosed):
		return fmt.Errorf("pgxdb: connection lost after the statement was sent: %w", err)
	}
	return err
}
