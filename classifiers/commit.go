package classifiers

import (
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The commit classifiers judge an error returned by COMMIT: was the
// transaction committed? They return
//
//   - [dbop.Ambiguous] when it may have been: the COMMIT was sent and the
//     answer was lost, or the answer was the session ending;
//   - [dbop.RetryTransaction] when the COMMIT was certainly never sent;
//   - [dbop.Unclassified] when the server (or SQLite's engine) answered the
//     COMMIT with an error, so nothing was committed and the error is to be
//     classified like any other (40001 at the commit of a SERIALIZABLE
//     transaction retries it, a deferred 23505 does not).
//
// They are what the adapters pass to scopes.CommitOutcome, and are exported
// for code that runs its own scopes.InTx. Only the first and last answers
// are safe defaults: an unknown error is Ambiguous (DB-REFERENCE §6,
// pitfall 1).

// PostgresCommit judges a COMMIT error from pgx v5 (native or through its
// database/sql driver) or lib/pq:
//
//	error                                            committed?  verdict
//	pgconn.ErrConnClosed                             unknown     Ambiguous
//	pgconn "conn busy"                               no          Unclassified
//	other pgconn.SafeToRetry errors                  no          RetryTransaction
//	driver.ErrBadConn                                unknown     Ambiguous
//	SQLSTATE 40003, class 08, 57P01, 57P02, 57P03,
//	  severity FATAL or PANIC (but 25P03)            unknown     Ambiguous
//	any other SQLSTATE error                         no          Unclassified
//	pgx.ErrTxCommitRollback                          no          Unclassified
//	anything else                                    unknown     Ambiguous
//
// Why:
//
//   - pgx v5.12.0 reports a connection lost while it waits for the answer
//     to a statement sent with the simple protocol — and COMMIT is always
//     sent so — as "conn closed" (pgconn.ErrConnClosed), whose SafeToRetry
//     is true although the statement was sent: MultiResultReader.NextResult
//     drops the read error of peekMessage, which has already marked the
//     connection closed, and the next read fails the connection-lock check.
//     DB-REFERENCE §2's "SafeToRetry → not sent" does not hold for it
//     (adapters/pgxdb's TestPgxReportsLostAnswerAsConnClosed shows the
//     server committing). github.com/dbop-go/dbop/adapters/pgxdb tells a
//     COMMIT on an already closed connection apart before sending it.
//   - "conn busy" is pgconn refusing to send the COMMIT on a connection
//     still busy with another request, typically the rows of a query the
//     function left open: not committed, but a bug in the program, not a
//     broken connection, so it is classified like any other error, and
//     [Postgres] calls it NotRetryable.
//   - Other SafeToRetry errors "occurred before sending any data to the
//     server" (DB-REFERENCE §2): not committed, and whatever broke took the
//     transaction with it.
//   - lib/pq turns a FATAL answer or io.EOF while reading COMMIT's answer
//     into driver.ErrBadConn (conn.go, handleError), against database/sql's
//     rule, and pgx's database/sql driver never returns it from Commit: so
//     here it proves nothing.
//   - A server error answering COMMIT means the server refused to commit
//     (DB-REFERENCE §6) — unless the answer is the session ending: class 08
//     (08007 transaction_resolution_unknown among them), 57P01
//     admin_shutdown, 57P02 crash_shutdown, 57P03, or any FATAL or PANIC
//     say the session died, not whether the commit record was written
//     first (DB-REFERENCE summary: "⚠ ambiguous if it answers COMMIT").
//     40003 is CockroachDB's "result is ambiguous" (§5).
//   - 25P03 is FATAL too, but the server raises it only at a session idle
//     in its transaction, before it read the COMMIT: not committed
//     (adapters/pgxdb's TestIdleInTransactionTimeoutBeforeCommitIsRetried).
//   - pgx.ErrTxCommitRollback is the server answering COMMIT with ROLLBACK
//     (DB-REFERENCE §1): not committed; [Postgres] classifies it.
//
// PostgresCommit is safe for concurrent use.
func PostgresCommit(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		return dbop.Ambiguous
	}
	if connBusy(err) {
		return dbop.Unclassified
	}
	if r, ok := errors.AsType[safeToRetrier](err); ok && r.SafeToRetry() {
		return dbop.RetryTransaction
	}
	if errors.Is(err, driver.ErrBadConn) {
		return dbop.Ambiguous
	}
	if se, ok := errors.AsType[sqlStater](err); ok {
		code := se.SQLState()
		switch {
		case code == "25P03":
			return dbop.Unclassified
		case code == "40003", code == "57P01", code == "57P02", code == "57P03",
			strings.HasPrefix(code, "08"), sessionEnded(err):
			return dbop.Ambiguous
		}
		return dbop.Unclassified
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}

// sessionEnded reports whether err holds a PostgreSQL error of severity
// FATAL or PANIC, which ends the session, as pgx's own isConnectionFatal
// decides (tx.go).
func sessionEnded(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return false
	}
	severity := pe.SeverityUnlocalized
	if severity == "" {
		severity = pe.Severity
	}
	return severity == "FATAL" || severity == "PANIC"
}

// MySQLCommit judges a COMMIT error from go-sql-driver/mysql, whose
// Tx.Commit is exec("COMMIT") (DB-REFERENCE §3 "Commit", §6):
//
//	error                                   committed?  verdict
//	driver.ErrBadConn                       no          RetryTransaction
//	*mysql.MySQLError 1927, 1053, 1317      unknown     Ambiguous
//	any other *mysql.MySQLError             no          Unclassified
//	mysql.ErrInvalidConn, anything else     unknown     Ambiguous
//
// The driver returns driver.ErrBadConn only when nothing was written
// (errBadConnNoWrite → markBadConn) or the connection was already closed.
// ER_CONNECTION_KILLED (1927, MariaDB), ER_SERVER_SHUTDOWN (1053) and
// ER_QUERY_INTERRUPTED (1317) report the session or statement being
// stopped, not the COMMIT being refused: judged ambiguous, conservatively
// (⚠ not verified live). mysql.ErrInvalidConn means the read failed after
// the write. MySQLCommit is safe for concurrent use.
func MySQLCommit(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if errors.Is(err, driver.ErrBadConn) {
		return dbop.RetryTransaction
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch me.Number {
		case 1927, 1053, 1317:
			return dbop.Ambiguous
		}
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}

// SQLiteCommit judges a COMMIT error from modernc.org/sqlite (DB-REFERENCE
// §4):
//
//	error                                   committed?  verdict
//	driver.ErrBadConn                       no          RetryTransaction
//	an error with a SQLite result code      no          Unclassified
//	a context error, anything else          unknown     Ambiguous
//
// "A failed Commit forces a ROLLBACK if still inside the transaction": the
// engine refused the COMMIT and nothing was committed, so the error is
// classified as usual (BUSY retries the whole transaction). A context error
// means the COMMIT was interrupted: judged ambiguous, the safe side.
// SQLiteCommit is safe for concurrent use.
func SQLiteCommit(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if errors.Is(err, driver.ErrBadConn) {
		return dbop.RetryTransaction
	}
	if _, ok := errors.AsType[sqliteCoder](err); ok {
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}
