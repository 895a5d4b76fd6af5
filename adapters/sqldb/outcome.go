package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// CommitOutcome judges an error returned by COMMIT for dialect d: it returns
// [dbop.Ambiguous] when the transaction may have been committed,
// [dbop.RetryTransaction] when nothing was sent, and [dbop.Unclassified]
// when the server (or, for SQLite, the engine) refused the COMMIT, so that
// the error is classified like any other. [InTx] passes it to
// [scopes.CommitOutcome]; it is exported for code that runs its own
// [scopes.InTx] over *sql.Tx. The rules, per dialect, are tabled in the
// package documentation ("Commit outcomes"), each with its source.
func (d Dialect) CommitOutcome(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if _, ok := errors.AsType[*notSentError](err); ok {
		// database/sql never sent the COMMIT (see commitError).
		return dbop.Unclassified
	}
	if errors.Is(err, errEndedInFn) {
		return dbop.NotRetryable
	}
	switch d {
	case Postgres:
		return postgresCommitOutcome(err)
	case MySQL, MariaDB:
		return mysqlCommitOutcome(err)
	case SQLite:
		return sqliteCommitOutcome(err)
	}
	return dbop.Ambiguous
}

// mysqlCommitOutcome judges a COMMIT error from go-sql-driver/mysql, whose
// Tx.Commit is exec("COMMIT") (transaction.go; DB-REFERENCE §3 "Commit",
// §6).
func mysqlCommitOutcome(err error) dbop.Verdict {
	if errors.Is(err, driver.ErrBadConn) {
		// Returned only when nothing was written (errBadConnNoWrite →
		// markBadConn) or the connection was already closed: not committed.
		return dbop.RetryTransaction
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch me.Number {
		case 1927, // ER_CONNECTION_KILLED (MariaDB)
			1053, // ER_SERVER_SHUTDOWN
			1317: // ER_QUERY_INTERRUPTED
			// ⚠ Conservative, not verified live: these report the
			// session or statement being stopped, not the COMMIT being
			// refused, and may come after the commit took effect.
			return dbop.Ambiguous
		}
		// The server answered the COMMIT with an error: it did not commit
		// (DB-REFERENCE pitfall 1). Classify it as usual (1213 → whole tx).
		return dbop.Unclassified
	}
	// mysql.ErrInvalidConn: the read failed after the write (readPacket).
	// A context error: the driver does not watch the context during Commit
	// (its watcher ends with BeginTx), so one can come only from
	// database/sql, which never sent the COMMIT; since that cannot be told
	// apart here it is judged Ambiguous, as DB-REFERENCE §3 and §6 say. Any
	// other error: unknown, hence Ambiguous too.
	return dbop.Ambiguous
}

// postgresCommitOutcome judges a COMMIT error from the pgx stdlib driver
// (Commit runs pgx's Tx.Commit with the BeginTx context, stdlib/sql.go) or
// lib/pq (DB-REFERENCE §2, §6). It follows adapters/pgxdb's CommitOutcome,
// whose live tests found the first rule, and differs from it for lib/pq.
func postgresCommitOutcome(err error) dbop.Verdict {
	if errors.Is(err, pgconn.ErrConnClosed) {
		// pgx v5.12.0 reports a connection lost while it waits for the
		// answer to a simple-protocol statement, as COMMIT always is, as
		// "conn closed", whose SafeToRetry is true although COMMIT was sent
		// (adapters/pgxdb, TestPgxReportsLostAnswerAsConnClosed). Checked
		// before SafeToRetry.
		return dbop.Ambiguous
	}
	if r, ok := errors.AsType[safeToRetrier](err); ok && r.SafeToRetry() {
		// pgconn.SafeToRetry: "guaranteed to have occurred before sending
		// any data to the server".
		return dbop.RetryTransaction
	}
	if errors.Is(err, driver.ErrBadConn) {
		// Not "nothing was sent" here: lib/pq turns a FATAL server error
		// and io.EOF while reading COMMIT's answer into driver.ErrBadConn
		// (conn.go, handleError), against the database/sql rule. pgx's
		// stdlib never returns it from Commit.
		return dbop.Ambiguous
	}
	if se, ok := errors.AsType[sqlStater](err); ok {
		code := se.SQLState()
		switch {
		case code == "25P03":
			// idle_in_transaction_session_timeout is FATAL, but the server
			// raises it while waiting for the next command, before it read
			// the COMMIT (adapters/pgxdb shows it live): not committed.
			return dbop.Unclassified
		case strings.HasPrefix(code, "08"), // connection_exception (08007 transaction_resolution_unknown among them)
			code == "57P01", code == "57P02", code == "57P03", // the server is ending the session
			code == "40003", // statement_completion_unknown
			sessionEnded(err):
			// The answer says the session broke, not that the COMMIT was
			// refused: the outcome is unknown (DB-REFERENCE summary "57P01 /
			// 57P02 … ⚠ ambiguous if it answers COMMIT").
			return dbop.Ambiguous
		}
		// Any other server error answers the COMMIT itself (40001 at
		// commit of a serializable transaction, 23xxx of a deferred
		// constraint): nothing was committed. Classify it as usual.
		return dbop.Unclassified
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		// The server answered COMMIT with ROLLBACK: nothing was committed.
		return dbop.Unclassified
	}
	// A network or context error after the COMMIT was sent.
	return dbop.Ambiguous
}

// sessionEnded reports whether err is a PostgreSQL error of severity FATAL
// or PANIC, which ends the session, as pgx's own isConnectionFatal decides
// (tx.go).
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

// sqliteCommitOutcome judges a COMMIT error from modernc.org/sqlite (tx.go;
// DB-REFERENCE §4).
func sqliteCommitOutcome(err error) dbop.Verdict {
	if errors.Is(err, driver.ErrBadConn) {
		return dbop.RetryTransaction
	}
	if _, ok := errors.AsType[*sqlite.Error](err); ok {
		// "a failed Commit forces a ROLLBACK if still inside the
		// transaction": the engine refused the COMMIT, nothing was
		// committed. Classify it as usual (BUSY → whole tx).
		return dbop.Unclassified
	}
	// A context error: the driver's Commit watches the BeginTx context and
	// returns ctx.Err() when the COMMIT was interrupted. Judged Ambiguous,
	// the safe side, as for the network drivers. Any other error: unknown.
	return dbop.Ambiguous
}

// sqlStater is a server error with a SQLSTATE: pgx's *pgconn.PgError and
// lib/pq's *pq.Error (DB-REFERENCE §2).
type sqlStater interface {
	error
	SQLState() string
}

// safeToRetrier is pgconn's "nothing was sent" capability (DB-REFERENCE §2).
type safeToRetrier interface {
	error
	SafeToRetry() bool
}

// notSentError marks a COMMIT error that database/sql produced without
// sending COMMIT to the driver: the transaction was not committed.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "sqldb: COMMIT not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// errEndedInFn explains sql.ErrTxDone from COMMIT when no context ended the
// transaction: fn committed or rolled back tx itself.
var errEndedInFn = errors.New("sqldb: the transaction was committed or rolled back inside fn; leave that to InTx")

// commitError turns the error of database/sql's Tx.Commit into what InTx
// judges. doneBefore is ctx.Err() as it was just before Commit was called.
//
// database/sql's Tx.Commit (sql.go) checks its context before anything
// else: if it is done, it returns ErrTxDone (when the awaitDone goroutine
// has already rolled back) or ctx.Err(), without sending COMMIT. ErrTxDone
// is also what a transaction that fn ended itself returns.
func commitError(ctx context.Context, doneBefore, err error) error {
	switch {
	case errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil:
		// The context ended and database/sql rolled the transaction back
		// (DB-REFERENCE §6, last row): report the context's cause.
		return &notSentError{fmt.Errorf("%w (%w)", context.Cause(ctx), err)}
	case errors.Is(err, sql.ErrTxDone):
		return fmt.Errorf("%w: %w", errEndedInFn, err)
	case doneBefore != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The context was done before Commit was called, so database/sql
		// returned at its first check.
		return &notSentError{err}
	}
	return err
}
