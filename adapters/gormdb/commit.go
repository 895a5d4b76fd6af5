package gormdb

import (
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// commitOutcome judges an error from COMMIT, for scopes.CommitOutcome:
// dbop.Unclassified when the transaction was certainly not committed (the
// classifier then decides as for any error), dbop.Ambiguous when it may
// have been. It follows DB-REFERENCE §6 for the drivers under GORM's
// dialectors: pgx's database/sql driver (postgres) and go-sql-driver/mysql
// (mysql). Error types, not dialector names, decide, since each driver
// returns only its own.
//
// Not committed:
//   - driver.ErrBadConn: nothing was sent. go-sql-driver returns it only
//     when nothing was written (packets.go markBadConn); pgx's database/sql
//     driver maps pgconn.SafeToRetry to it (stdlib/sql.go), for Exec and
//     Query only.
//   - pgconn.SafeToRetry: the error "occurred before sending any data"
//     (DB-REFERENCE §2) — except pgconn.ErrConnClosed, below.
//   - a server error answering the COMMIT (*pgconn.PgError, anything with
//     a SQLSTATE, *mysql.MySQLError): the server answered, so it did not
//     commit (a deferred constraint failing at COMMIT, a serialization
//     failure of a serializable transaction); except, on PostgreSQL, class
//     08, 57P01/57P02/57P03 and any FATAL or PANIC error, which report the
//     session ending rather than the COMMIT failing, and are Ambiguous
//     (DB-REFERENCE summary: "⚠ ambiguous if it answers COMMIT"). 25P03,
//     FATAL too, is "not committed": the server ends an idle session
//     before it reads the next command.
//   - pgx.ErrTxCommitRollback: the server answered COMMIT with ROLLBACK.
//
// pgconn.ErrConnClosed ("conn closed") is Ambiguous although its
// SafeToRetry is true. pgx v5.12.0 returns it when the connection is lost
// while it waits for the answer to a statement sent with the simple
// protocol, as COMMIT always is: MultiResultReader.NextResult drops the
// read error of peekMessage, which has already marked the connection
// closed, and the next read fails the connection-lock check with "conn
// closed". So the COMMIT was sent, and may have been applied;
// TestLiveAmbiguousCommit shows the server committing while pgx reports
// this error. The same error for a COMMIT that found the connection
// already closed was not sent, but through database/sql the two cannot be
// told apart, so both are ambiguous: the safe side.
//
// Everything else is Ambiguous: mysql.ErrInvalidConn (the read failed
// after the write), a context error or a network error after the send
// (pgx closes the connection; the answer is lost), sql.ErrTxDone (the
// transaction was ended by someone else: database/sql after its context
// ended, or fn itself, so whether fn's work was committed is unknown to
// this scope), and any error this function does not know.
func commitOutcome(err error) dbop.Verdict {
	if errors.Is(err, pgconn.ErrConnClosed) {
		// Before SafeToRetry, which is true for it: see above.
		return dbop.Ambiguous
	}
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return dbop.Unclassified
	}
	if se, ok := errors.AsType[interface {
		error
		SQLState() string
	}](err); ok {
		code := se.SQLState()
		switch {
		case code == "25P03":
			// idle_in_transaction_session_timeout: FATAL, but raised while
			// the session waited for its next command, so before COMMIT
			// was read (the pgxdb adapter shows it live).
			return dbop.Unclassified
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03", sessionEnded(err):
			return dbop.Ambiguous
		}
		return dbop.Unclassified
	}
	if _, ok := errors.AsType[*mysql.MySQLError](err); ok {
		return dbop.Unclassified
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}

// sessionEnded reports whether err is a PostgreSQL error of severity FATAL
// or PANIC, which ends the session, as pgx's own isConnectionFatal
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
