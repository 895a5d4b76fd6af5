package pgxdb

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CommitOutcome judges an error from pgx's COMMIT (and, under
// [CockroachRestart], from RELEASE SAVEPOINT cockroach_restart), for
// [scopes.CommitOutcome]. It returns [dbop.Ambiguous] when the transaction
// may have been committed, and otherwise the verdict for a transaction that
// certainly was not (DB-REFERENCE §6, pitfall 1):
//
//	error                                          committed?  verdict
//	pgconn.ErrConnClosed                           unknown     Ambiguous
//	  … InTx saw the conn closed before COMMIT     no          RetryTransaction
//	pgconn.SafeToRetry(err), other                 no          RetryTransaction
//	pgx.ErrTxCommitRollback                        no          NotRetryable
//	*pgconn.PgError 40003                          unknown     Ambiguous
//	*pgconn.PgError class 08, 57P01, 57P02,
//	  or severity FATAL/PANIC (but 25P03)          unknown     Ambiguous
//	*pgconn.PgError 25P03                          no          RetryTransaction
//	any other *pgconn.PgError                      no          Unclassified
//	anything else                                  unknown     Ambiguous
//
// Why:
//
//   - pgx v5.12.0 reports a connection lost while it waits for the answer
//     to a statement sent with the simple protocol — and COMMIT is always
//     sent so — as "conn closed" (pgconn.ErrConnClosed), an error whose
//     SafeToRetry is true although the statement was sent:
//     MultiResultReader.NextResult drops the read error of peekMessage,
//     which has already marked the connection closed, and the next read
//     then fails the connection-lock check. So DB-REFERENCE §2's
//     "SafeToRetry → not sent" does not hold for it
//     (TestPgxReportsLostAnswerAsConnClosed shows it). A COMMIT that found
//     the connection already closed was never sent; [InTx] checks the
//     connection before COMMIT and marks that case, and CommitOutcome
//     calls every other ErrConnClosed ambiguous.
//   - SafeToRetry "checks if the err is guaranteed to have occurred before
//     sending any data to the server" (DB-REFERENCE §2): the COMMIT was not
//     sent, so the server never committed, and whatever broke (often the
//     connection) took the transaction with it: run it all again.
//   - pgx.ErrTxCommitRollback is the server answering COMMIT with ROLLBACK:
//     the transaction had already failed, so "COMMIT of an aborted
//     transaction acts as a ROLLBACK" (DB-REFERENCE §1). Nothing was
//     committed. The error that failed it was swallowed before COMMIT — fn
//     ignored a failed statement and returned nil — and is not in the error,
//     so nothing says a retry would not swallow it again: NotRetryable, as
//     [classifiers.Postgres] has it. Return the statement's error from fn to
//     have it classified instead.
//   - A server error answering COMMIT means the server refused to commit:
//     "no (the server answered)" (DB-REFERENCE §6). Unclassified hands it to
//     the classifier, which knows the codes: 40001 from a SERIALIZABLE
//     commit is RetryTransaction, a deferred 23505 is NotRetryable.
//   - Except when the answer is the connection's end. A FATAL such as
//     57P01 (admin_shutdown) or 57P02 (crash_shutdown), or class 08
//     (connection_exception, with 08007 transaction_resolution_unknown),
//     says the session died, not whether the commit record was written
//     first: ambiguous (DB-REFERENCE summary: "⚠ ambiguous if it answers
//     COMMIT"). So is 40003 statement_completion_unknown, CockroachDB's
//     "result is ambiguous" (DB-REFERENCE §5).
//   - 25P03 is FATAL too, but the server raises it only when a session sat
//     idle in its transaction past idle_in_transaction_session_timeout,
//     that is, while it was waiting for the next command: it ended the
//     session before it read the COMMIT, so nothing was committed; pgx
//     reads the goodbye as COMMIT's answer
//     (TestIdleInTransactionTimeoutBeforeCommitIsRetried).
//   - Anything else — a network error or a context deadline after the
//     COMMIT was sent — leaves the outcome unknown: ambiguous, retried only
//     for [dbop.Idempotent] work.
//
// CommitOutcome is safe for concurrent use.
func CommitOutcome(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		if _, ok := errors.AsType[*closedBeforeError](err); ok {
			return dbop.RetryTransaction
		}
		return dbop.Ambiguous
	}
	if pgconn.SafeToRetry(err) {
		return dbop.RetryTransaction
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return dbop.NotRetryable
	}
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return dbop.Ambiguous
	}
	switch {
	case pgErr.Code == "25P03": // idle_in_transaction_session_timeout: ended before COMMIT was read
		return dbop.RetryTransaction
	case pgErr.Code == "40003", // statement_completion_unknown
		pgErr.Code == "57P01",               // admin_shutdown
		pgErr.Code == "57P02",               // crash_shutdown
		strings.HasPrefix(pgErr.Code, "08"), // connection_exception, 08007 transaction_resolution_unknown
		connectionFatal(pgErr):
		return dbop.Ambiguous
	}
	return dbop.Unclassified
}

// connectionFatal reports whether the server ended the session with pgErr,
// as pgx's own isConnectionFatal decides (tx.go).
func connectionFatal(pgErr *pgconn.PgError) bool {
	severity := pgErr.SeverityUnlocalized
	if severity == "" {
		severity = pgErr.Severity
	}
	return severity == "FATAL" || severity == "PANIC"
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
