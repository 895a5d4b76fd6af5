package classifiers

import (
	"errors"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sqlStater is an error carrying a PostgreSQL SQLSTATE: pgx's
// *pgconn.PgError and lib/pq's *pq.Error both implement it (DB-REFERENCE §2).
type sqlStater interface {
	error
	SQLState() string
}

// safeToRetrier is pgconn's capability for "the error occurred before any
// data was sent to the server" (pgconn.SafeToRetry, DB-REFERENCE §2).
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
// no code and no sentinel (pgconn.ErrConnClosed is only for "conn
// closed"), so here, and only here, a classifier reads a message: the
// exact status pgconn sets, on an error with connLockError's methods.
func connBusy(err error) bool {
	e, ok := errors.AsType[connLocker](err)
	return ok && e.SafeToRetry() && e.Error() == "conn busy"
}

// Postgres classifies the errors of PostgreSQL and of the drivers that speak
// its protocol, pgx v5 and lib/pq. It reads the SQLSTATE of the first error
// in the tree that has a SQLState method, then pgx's SafeToRetry capability,
// then pgconn.ErrConnClosed and pgx.ErrTxCommitRollback, looking through
// wrapped and joined errors.
//
// The SQLSTATE verdicts are:
//
//	40001, 40P01                      RetryTransaction
//	40003                             Ambiguous
//	55P03                             RetryStatement
//	57014 "… statement timeout"       RetryStatement
//	57014, any other message          NotRetryable (a cancel on purpose)
//	class 08 (but 08007)              RetryTransaction
//	08007                             Ambiguous
//	57P01, 57P02, 57P03               RetryTransaction
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
// An error that pgconn reports as safe to retry (nothing was sent) and
// pgconn.ErrConnClosed are RetryTransaction, except pgconn's "conn busy":
// a request on a connection still busy with another, which is a bug in the
// program (rows left open, a connection shared between goroutines) that
// every attempt would repeat, so it is NotRetryable. "conn busy" has no
// code, so Postgres matches the exact status text pgconn gives it.
//
// pgx.ErrTxCommitRollback means that COMMIT found the transaction already
// failed and rolled it back: nothing was committed, but the error that failed
// it is not in ErrTxCommitRollback, so whether trying again can help is
// unknown. Postgres returns NotRetryable for it unless another error in the
// same tree has a verdict of its own, which then wins: a scope that joins the
// first error to ErrTxCommitRollback gets that error's verdict. The same
// holds for pgx.ErrTxClosed, the use of a transaction already committed or
// rolled back: NotRetryable unless another error in the tree decides.
//
// Any other error is Unclassified. Postgres is safe for concurrent use.
func Postgres(err error) dbop.Verdict {
	if v := postgres(err); v != dbop.Unclassified {
		return v
	}
	return txEnded(err)
}

// postgres is Postgres without the last-resort rules of txEnded, which
// [Default] applies only after every other classifier.
func postgres(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if se, ok := errors.AsType[sqlStater](err); ok {
		if v := postgresCode(se.SQLState(), pgMessage(se)); v != dbop.Unclassified {
			return v
		}
	}
	// "conn busy" is safe to retry by pgconn's reckoning, since nothing was
	// sent, but it is a bug in the program, which the next attempt repeats.
	if connBusy(err) {
		return dbop.NotRetryable
	}
	// pgconn.SafeToRetry: the error "is guaranteed to have occurred before
	// sending any data to the server" (pgconn/errors.go): the work was not
	// applied, even at COMMIT. The connection may be closed ("conn closed"
	// is safe to retry), so the transaction on it is gone: retry it whole.
	if r, ok := errors.AsType[safeToRetrier](err); ok && r.SafeToRetry() {
		return dbop.RetryTransaction
	}
	// pgconn.ErrConnClosed: the driver had already closed the connection, so
	// the transaction on it is gone (DB-REFERENCE §2, summary table).
	if errors.Is(err, pgconn.ErrConnClosed) {
		return dbop.RetryTransaction
	}
	return dbop.Unclassified
}

// txEnded holds the last-resort rules for pgx.ErrTxCommitRollback and
// pgx.ErrTxClosed; see [Postgres].
func txEnded(err error) dbop.Verdict {
	// DB-REFERENCE §2 and summary table: "whole tx, after the root cause";
	// the root cause is not in the error, so do not retry blindly.
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return dbop.NotRetryable
	}
	// pgx.ErrTxClosed ("tx is closed", tx.go): a statement, COMMIT or
	// ROLLBACK on a pgx.Tx already committed or rolled back, such as a
	// COMMIT of the function's own before the scope's. Unclassified would be
	// final as well; the explicit verdict stops a classifier listed after
	// this one in dbop.FirstOf from calling it retryable. It comes last, as
	// ErrTxCommitRollback does, so that an error joined to it, a deadline
	// among them, decides first.
	if errors.Is(err, pgx.ErrTxClosed) {
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}

// pgMessage returns the primary message of a server error. pgx keeps it in
// PgError.Message; for other drivers (lib/pq's Error() is "pq: " + Message)
// the error text stands in, which still contains the message.
func pgMessage(se sqlStater) string {
	if pe, ok := se.(*pgconn.PgError); ok {
		return pe.Message
	}
	return se.Error()
}

// postgresCode maps a SQLSTATE, and for the two codes that need it the
// server's message, to a verdict. Codes and names are from PostgreSQL's
// errcodes.txt (DB-REFERENCE §1).
func postgresCode(code, message string) dbop.Verdict {
	switch code {
	case "40001", // serialization_failure: "retry the complete transaction" (PG docs, mvcc-serialization-failure-handling)
		"40P01": // deadlock_detected: retrying is "advisable" (same page); the transaction is aborted
		return dbop.RetryTransaction
	case "40003": // statement_completion_unknown: the outcome is unknown (CockroachDB's "result is ambiguous", DB-REFERENCE §5)
		return dbop.Ambiguous
	case "55P03": // lock_not_available: lock_timeout or NOWAIT; a savepoint rollback suffices (DB-REFERENCE summary)
		return dbop.RetryStatement
	case "57014": // query_canceled: only the message tells the cause (postgres.c ProcessInterrupts, DB-REFERENCE §1)
		// "canceling statement due to statement timeout": retry the statement
		// with a larger budget (DB-REFERENCE summary, ⚠ there). "… due to
		// user request" is a deliberate cancel. Messages follow lc_messages,
		// so a translated statement timeout falls to NotRetryable, the safe side.
		if strings.Contains(message, "statement timeout") {
			return dbop.RetryStatement
		}
		return dbop.NotRetryable
	case "08007": // transaction_resolution_unknown: the connection broke with the outcome unknown
		return dbop.Ambiguous
	case "57P01", // admin_shutdown: "terminating connection due to administrator command"
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: retry connect with backoff
		"53300": // too_many_connections: "sorry, too many clients already", retry connect with backoff
		return dbop.RetryTransaction // the session is gone: the whole tx on a new connection (DB-REFERENCE summary)
	case "53100", // disk_full
		"53200": // out_of_memory
		return dbop.RetryTransaction // whole tx with backoff (DB-REFERENCE summary, ⚠ there)
	case "53400": // configuration_limit_exceeded: the same request hits the same limit
		return dbop.NotRetryable
	case "0A000": // feature_not_supported: never, except a stale cached plan (plancache.c, DB-REFERENCE §1)
		// pgx invalidates its statement cache on any error, so one retry
		// succeeds; inside a transaction the error aborted it, hence the
		// whole transaction.
		if strings.Contains(message, "cached plan must not change result type") {
			return dbop.RetryTransaction
		}
		return dbop.NotRetryable
	case "25P02": // in_failed_sql_transaction: never itself; classify the first error (DB-REFERENCE summary)
		return dbop.NotRetryable
	case "25P03", // idle_in_transaction_session_timeout: FATAL, the session was terminated
		"25P04": // transaction_timeout (PG17+; DB-REFERENCE §1: secondary sources only): FATAL, likewise
		return dbop.RetryTransaction
	case "2D000", // invalid_transaction_termination: YugabyteDB YSQL lists it as non-retriable (DB-REFERENCE §5)
		"3B001": // invalid_savepoint_specification: the same
		return dbop.NotRetryable
	}
	switch {
	case strings.HasPrefix(code, "08"): // connection_exception class: the connection, and the tx on it, is gone
		return dbop.RetryTransaction
	case strings.HasPrefix(code, "23"): // integrity_constraint_violation class: 23505, 23P01 "never by default" (DB-REFERENCE summary)
		// 23503 (foreign key), 23502 (not null) and 23514 (check) fail the
		// same way on every attempt, so the whole class is NotRetryable.
		return dbop.NotRetryable
	case strings.HasPrefix(code, "22"), // data_exception: 22012 division_by_zero, 22P02 invalid_text_representation, …
		strings.HasPrefix(code, "25"), // invalid_transaction_state: 25006 read_only_sql_transaction, … (25P03 is above)
		strings.HasPrefix(code, "42"): // syntax_error_or_access_rule_violation: 42601, 42P01 undefined_table, …
		// The statement itself is wrong for this data, transaction or
		// schema: it fails the same way on every attempt (errcodes.txt).
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
