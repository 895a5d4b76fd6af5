package classifiers

import (
	"errors"
	"strings"

	"github.com/dbop-go/dbop"
)

// sqlStater is an error carrying a PostgreSQL SQLSTATE: pgx's
// *pgconn.PgError and lib/pq's *pq.Error both implement it
// (docs/backends.md §2.1, §2.15).
type sqlStater interface {
	error
	SQLState() string
}

// safeToRetrier is pgconn's capability for "the error occurred before any
// data was sent to the server" (pgconn.SafeToRetry, docs/backends.md §2.2).
type safeToRetrier interface {
	error
	SafeToRetry() bool
}

// connLocker has the methods of pgconn's unexported *connLockError, the
// error of a connection that could not be locked for a request (pgx
// v5.12.0 pgconn/errors.go): its Error() is the connection's status, and
// it unwraps to pgconn.ErrConnClosed when that status is "conn closed".
// Asking for all of its methods, not SafeToRetry alone, keeps connBusy to
// errors shaped like pgconn's.
type connLocker interface {
	safeToRetrier
	Unwrap() error
}

// connBusy reports whether err holds pgconn's "conn busy": a request on a
// connection that is still busy with another one (pgconn.go lock, "This
// only should be possible in case of an application bug"): the rows of an
// earlier query left open, or one connection used by two goroutines at a
// time. The error is a *connLockError with status "conn busy", which has
// no code and no sentinel (docs/backends.md §2.3), so here, and only here,
// a classifier reads a message: the exact status pgconn sets, on an error
// with connLockError's methods.
func connBusy(err error) bool {
	e, ok := errors.AsType[connLocker](err)
	return ok && e.SafeToRetry() && e.Error() == "conn busy"
}

// Postgres classifies the errors of PostgreSQL and of the drivers that speak
// its protocol, pgx v5 and lib/pq, by capability: it reads the SQLSTATE of
// the first error in the tree that has a SQLState() string method, then
// pgx's SafeToRetry() bool capability, looking through wrapped and joined
// errors. It imports no driver.
//
// The SQLSTATE verdicts (docs/backends.md §1, §12) are:
//
//	40001, 40P01                      RetryTransaction
//	40003                             Ambiguous
//	55P03                             RetryStatement
//	57014 "… statement timeout"       RetryStatement
//	57014, any other message          NotRetryable (a cancel on purpose)
//	class 08 (but 08007)              RetryTransaction
//	08007                             Ambiguous
//	57P01, 57P02, 57P03, 57P05        RetryTransaction
//	53100, 53200, 53300               RetryTransaction
//	53400                             NotRetryable
//	0A000 "cached plan must not …"    RetryTransaction
//	0A000, any other message          NotRetryable
//	25P02                             NotRetryable (classify the first error)
//	25P03, 25P04                      RetryTransaction
//	2D000, 3B001                      NotRetryable
//	class 23 (23505, 23P01, …)        NotRetryable
//	classes 22, 25, 42 (25006, 42P01, …) NotRetryable
//
// The two message rules read the error's text (Error()), which holds the
// server's message for pgx and lib/pq alike. A stale cached plan is retried
// because pgx drops the statements it cached itself after an error, so the
// next attempt prepares afresh; a statement you prepared yourself (a
// database/sql *sql.Stmt, pgx's Conn.Prepare) keeps its plan and fails the
// same way on every attempt until the retry gives up: prepare it inside the
// attempt, or again after a schema change.
//
// An error that reports itself safe to retry (pgconn.SafeToRetry) is
// RetryTransaction, except pgconn's "conn busy": a request on a
// connection still busy with another, which is a bug in the program (rows
// left open, a connection shared between goroutines) that every attempt
// would repeat, so it is NotRetryable. "conn busy" has no code, so Postgres
// matches the exact status text pgconn gives it, on an error shaped like
// pgconn's. SafeToRetry is not always "nothing was sent": pgx reports an
// answer lost after a statement sent with the simple protocol (COMMIT, an
// Exec without arguments) as "conn closed", SafeToRetry, although the
// server received the statement and may have applied it
// (docs/backends.md §2.4, §2.5). Inside a transaction that changes
// nothing: the connection is gone, and the transaction with it. But a
// COMMIT of your own (tx.Commit, pgx.BeginFunc) or a write in autocommit
// under a retry with this classifier may be applied twice: run them in a
// transaction scope, which judges its COMMIT with [PostgresCommit].
//
// # What needs pgx's own types
//
// Some of pgx's errors have no SQLSTATE and no capability, only a
// sentinel or a field of pgx's types; Postgres leaves them Unclassified,
// which no retry acts on:
//
//   - a bare pgconn.ErrConnClosed (pgconn's "conn closed" lock error is
//     recognised, since it is SafeToRetry);
//   - pgx.ErrTxCommitRollback, a COMMIT answered with ROLLBACK (§1.2);
//   - pgx.ErrTxClosed, the use of a transaction already ended (§2.11).
//
// github.com/dbop-go/dbop/adapters/pgxdb's Classifier adds these rules; a
// program on pgx's database/sql driver can pass it to the sqldb adapter
// with sqldb.ClassifyBy(pgxdb.Classifier).
//
// Any other error is Unclassified. Postgres is safe for concurrent use.
func Postgres(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if se, ok := errors.AsType[sqlStater](err); ok {
		if v := postgresCode(se.SQLState(), se.Error()); v != dbop.Unclassified {
			return v
		}
	}
	// "conn busy" is safe to retry by pgconn's reckoning, since nothing was
	// sent, but it is a bug in the program, which the next attempt repeats.
	if connBusy(err) {
		return dbop.NotRetryable
	}
	// pgconn.SafeToRetry: the error "is guaranteed to have occurred before
	// sending any data to the server" (pgconn/errors.go, docs/backends.md
	// §2.2, §2.3) — except "conn closed" after a simple-protocol statement
	// whose answer was lost, which the server may have applied (§2.4): at
	// COMMIT the scopes judge it with PostgresCommit, Ambiguous. The
	// connection may be closed, so the transaction on it is gone: retry it
	// whole.
	if r, ok := errors.AsType[safeToRetrier](err); ok && r.SafeToRetry() {
		return dbop.RetryTransaction
	}
	return dbop.Unclassified
}

// postgresCode maps a SQLSTATE, and for the two codes that need it the
// error's text, to a verdict. Codes and names are from PostgreSQL's
// errcodes appendix (docs/backends.md §1).
func postgresCode(code, message string) dbop.Verdict {
	switch code {
	case "40001", // serialization_failure: "retry the complete transaction" (docs/backends.md §1.5, §1.6)
		"40P01": // deadlock_detected: retrying is "advisable" (§1.5); the transaction is aborted
		return dbop.RetryTransaction
	case "40003": // statement_completion_unknown: the outcome is unknown (CockroachDB's "result is ambiguous", §6.3)
		return dbop.Ambiguous
	case "55P03": // lock_not_available: lock_timeout or NOWAIT; a savepoint rollback suffices (§1.7, §1.3)
		return dbop.RetryStatement
	case "57014": // query_canceled: only the message tells the cause (§1.7, §1.8)
		// "canceling statement due to statement timeout": retry the statement
		// with a larger budget. "… due to user request" is a deliberate
		// cancel. Messages follow lc_messages, so a translated statement
		// timeout falls to NotRetryable, the safe side (§1.8).
		if strings.Contains(message, "statement timeout") {
			return dbop.RetryStatement
		}
		return dbop.NotRetryable
	case "08007": // transaction_resolution_unknown: the connection broke with the outcome unknown (§1 table, §11)
		return dbop.Ambiguous
	case "57P01", // admin_shutdown: "terminating connection due to administrator command"
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: retry connect with backoff
		"57P05", // idle_session_timeout (PG 14+): ended while idle outside a transaction, read as the next statement's answer (§1.9)
		"53300": // too_many_connections: "sorry, too many clients already", retry connect with backoff
		return dbop.RetryTransaction // the session is gone: the whole tx on a new connection (§1.9, §8.4)
	case "53100", // disk_full
		"53200": // out_of_memory
		return dbop.RetryTransaction // whole tx with backoff (§12: ⚠ policy, no source)
	case "53400": // configuration_limit_exceeded: the same request hits the same limit
		return dbop.NotRetryable
	case "0A000": // feature_not_supported: never, except a stale cached plan (§1.10)
		// pgx invalidates its statement cache on any error (§2.13), so one
		// retry succeeds; inside a transaction the error aborted it, hence
		// the whole transaction.
		if strings.Contains(message, "cached plan must not change result type") {
			return dbop.RetryTransaction
		}
		return dbop.NotRetryable
	case "25P02": // in_failed_sql_transaction: never itself; classify the first error (§1.1)
		return dbop.NotRetryable
	case "25P03", // idle_in_transaction_session_timeout: FATAL, the session was terminated (§1.9)
		"25P04": // transaction_timeout (PG17+; §1 table: ⚠ secondary sources only): FATAL, likewise
		return dbop.RetryTransaction
	case "2D000", // invalid_transaction_termination: YugabyteDB YSQL lists it as non-retriable (§6.6)
		"3B001": // invalid_savepoint_specification: the same (§6.6, §1.3)
		return dbop.NotRetryable
	}
	switch {
	case strings.HasPrefix(code, "08"): // connection_exception class: the connection, and the tx on it, is gone
		return dbop.RetryTransaction
	case strings.HasPrefix(code, "23"): // integrity_constraint_violation class: 23505, 23P01 (§1.5)
		// 23503 (foreign key), 23502 (not null) and 23514 (check) fail the
		// same way on every attempt, so the whole class is NotRetryable.
		return dbop.NotRetryable
	case strings.HasPrefix(code, "22"), // data_exception: 22012 division_by_zero, 22P02 invalid_text_representation, …
		strings.HasPrefix(code, "25"), // invalid_transaction_state: 25006 read_only_sql_transaction (§1.11), … (25P03 is above)
		strings.HasPrefix(code, "42"): // syntax_error_or_access_rule_violation: 42601, 42P01 undefined_table, …
		// The statement itself is wrong for this data, transaction or
		// schema: it fails the same way on every attempt.
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
