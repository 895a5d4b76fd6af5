package pgxdb

import (
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/sqlstate"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// commitOutcome judges an error from pgx's COMMIT (and, under
// CockroachRestart, from RELEASE SAVEPOINT cockroach_restart), for
// scopes.CommitOutcome: dbop.Ambiguous when the transaction may have been
// committed, and otherwise the verdict for a transaction that certainly was
// not (docs/backends.md §11). It is classifiers.PostgresCommit, whose table
// gives the driver-free rules, with the rules that need pgx's own types
// applied first or on top:
//
//	error                                             committed?  verdict
//	*closedBeforeError (InTx saw the conn closed)     no          RetryTransaction
//	errRolledBackInFn (fn rolled back, returned nil)  no          NotRetryable
//	*beforeCommitError (ResolveCommit's read failed)  no          Unclassified
//	pgconn.ErrConnClosed                              unknown     Ambiguous
//	classifiers.PostgresCommit's table                …           its verdict, except:
//	  other SafeToRetry errors (but "conn busy")      no          RetryTransaction
//	  *pgconn.PgError of severity FATAL or PANIC
//	    (but 25P03)                                   unknown     Ambiguous
//	  pgx.ErrTxCommitRollback (alone)                 no          Unclassified
//
// Why:
//
//   - pgx v5.12.0 reports a connection lost while it waits for the answer
//     to a statement sent with the simple protocol — and COMMIT is always
//     sent so (§2.5) — as "conn closed" (pgconn.ErrConnClosed), whose
//     SafeToRetry is true although the statement was sent:
//     MultiResultReader.NextResult drops the read error of peekMessage,
//     which has already marked the connection closed, and the next read
//     fails the connection-lock check (§2.4). "SafeToRetry → not sent"
//     does not hold for it; TestPgxReportsLostAnswerAsConnClosed shows the
//     server committing. So ErrConnClosed is asked first.
//   - But a COMMIT that found the connection already closed was never
//     sent. InTx checks the connection (IsClosed, §2.8) before sending
//     COMMIT and marks that error a *closedBeforeError: the statement
//     before it broke the connection and fn went on without returning its
//     error (TestCommitOnConnectionClosedBeforeIsNotAmbiguous).
//   - Every other SafeToRetry error "occurred before sending any data to
//     the server" (§2.2, §2.3): not committed, and whatever broke took the
//     transaction with it, so the whole transaction is retried.
//     PostgresCommit, which cannot tell "conn closed" from the others
//     without pgx's sentinel, calls them all Ambiguous; pgconn's "conn
//     busy" it leaves Unclassified, which [Classifier] calls NotRetryable.
//   - A server error answering COMMIT means the server refused to commit —
//     unless the answer is the session ending. Severity FATAL or PANIC says
//     the session died, not whether the commit record was written first
//     (§1.9; pgx itself closes the connection on FATAL, §2.8); the
//     severity is read from *pgconn.PgError, as pgx's isConnectionFatal
//     reads it (§2.9). 25P03 is FATAL too, but the server raises it only
//     at a session idle in its transaction, before it read the COMMIT: not
//     committed (TestIdleInTransactionTimeoutBeforeCommitIsRetried).
//   - pgx.ErrTxCommitRollback is the server answering COMMIT with ROLLBACK
//     (§1.2, §2.11): not committed; [Classifier] classifies it.
func commitOutcome(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if _, ok := errors.AsType[*closedBeforeError](err); ok {
		return dbop.RetryTransaction
	}
	if _, ok := errors.AsType[*sharedRollbackError](err); ok {
		return dbop.RetryTransaction // a shared transaction rolled back: nothing of it was committed
	}
	if errors.Is(err, errRolledBackInFn) {
		return dbop.NotRetryable // fn rolled back, then returned nil
	}
	if _, ok := errors.AsType[*beforeCommitError](err); ok {
		return dbop.Unclassified // not sent; the classifier decides
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		return dbop.Ambiguous
	}
	v := classifiers.PostgresCommit(err)
	switch {
	case v == dbop.Ambiguous && pgconn.SafeToRetry(err):
		// PostgresCommit asks SafeToRetry before anything but "conn busy",
		// which it leaves Unclassified; ErrConnClosed is out of the way.
		return dbop.RetryTransaction
	case v == dbop.Unclassified && fatalAnswer(err):
		return dbop.Ambiguous
	case v == dbop.Ambiguous && errors.Is(err, pgx.ErrTxCommitRollback) &&
		!hasSQLState(err) && !errors.Is(err, driver.ErrBadConn):
		// PostgresCommit, which cannot see pgx's sentinel, found nothing it
		// knows and fell back to "unknown".
		return dbop.Unclassified
	}
	return v
}

// fatalAnswer reports whether err holds a PostgreSQL error of severity
// FATAL or PANIC, which ends the session, other than 25P03.
func fatalAnswer(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok || pe.Code == "25P03" {
		return false
	}
	severity := pe.SeverityUnlocalized // untranslated; Severity follows lc_messages (§2.1)
	if severity == "" {
		severity = pe.Severity
	}
	return severity == "FATAL" || severity == "PANIC"
}

// hasSQLState reports whether err holds an error with a SQLSTATE.
func hasSQLState(err error) bool { return sqlstate.Of(err) != "" }

// commitVerdict is the judgement InTx passes to scopes.CommitOutcome:
// commitOutcome, and for a server error it leaves
// Unclassified, the classifier's verdict when that is Ambiguous. scopes
// wraps a COMMIT error in an *scopes.AmbiguousCommitError only when the
// outcome says Ambiguous, so a classifier that calls a COMMIT error
// ambiguous (40003, say) must be asked here for errors.Is(err,
// scopes.ErrAmbiguousCommit) to hold.
func (c *config) commitVerdict(err error) dbop.Verdict {
	v := commitOutcome(err)
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

// sendCommit runs send, which sends a statement whose error commitOutcome
// judges, and marks an error as a *closedBeforeError when tx's connection
// was closed before the statement could be sent. See commitOutcome for why
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
