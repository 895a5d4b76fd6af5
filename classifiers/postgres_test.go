package classifiers_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// postgresCases are the PostgreSQL rules of docs/backends.md §12 and the
// codes of its §1, with the messages the server sends, and pgx's errors
// that carry a capability, real ones where a test can make them.
func postgresCases(t *testing.T) []verdictCase {
	pg := func(code, message string) error { return dboptest.PgError(code, message) }
	return []verdictCase{
		{"40001 serialization_failure", pg("40001", "could not serialize access due to concurrent update"), dbop.RetryTransaction},
		{"40P01 deadlock_detected", pg("40P01", "deadlock detected"), dbop.RetryTransaction},
		{"40003 statement_completion_unknown", pg("40003", "result is ambiguous"), dbop.Ambiguous},
		{"55P03 lock_timeout", pg("55P03", "canceling statement due to lock timeout"), dbop.RetryStatement},
		{"55P03 NOWAIT", pg("55P03", `could not obtain lock on row in relation "accounts"`), dbop.RetryStatement},
		{"57014 statement timeout", pg("57014", "canceling statement due to statement timeout"), dbop.RetryStatement},
		{"57014 user request", pg("57014", "canceling statement due to user request"), dbop.NotRetryable},
		{"57014 translated message", pg("57014", "Anweisung wird abgebrochen wegen Zeitüberschreitung"), dbop.NotRetryable},
		{"57014 statement timeout via lib/pq", &sqlStateError{"57014", "canceling statement due to statement timeout"}, dbop.RetryStatement},
		{"57014 user request via lib/pq", &sqlStateError{"57014", "canceling statement due to user request"}, dbop.NotRetryable},
		{"08000 connection_exception", pg("08000", "connection exception"), dbop.RetryTransaction},
		{"08006 connection_failure", pg("08006", "connection failure"), dbop.RetryTransaction},
		{"08P01 protocol_violation", pg("08P01", "invalid frontend message type 0"), dbop.RetryTransaction},
		{"08007 transaction_resolution_unknown", pg("08007", "transaction resolution unknown"), dbop.Ambiguous},
		{"57P01 admin_shutdown", pg("57P01", "terminating connection due to administrator command"), dbop.RetryTransaction},
		{"57P02 crash_shutdown", pg("57P02", "terminating connection because of crash of another server process"), dbop.RetryTransaction},
		{"57P03 cannot_connect_now", pg("57P03", "the database system is starting up"), dbop.RetryTransaction},
		{"53300 too_many_connections", pg("53300", "sorry, too many clients already"), dbop.RetryTransaction},
		{"53100 disk_full", pg("53100", "could not extend file: No space left on device"), dbop.RetryTransaction},
		{"53200 out_of_memory", pg("53200", "out of memory"), dbop.RetryTransaction},
		{"53400 configuration_limit_exceeded", pg("53400", "configuration limit exceeded"), dbop.NotRetryable},
		{"0A000 cached plan", pg("0A000", "cached plan must not change result type"), dbop.RetryTransaction},
		{"0A000 feature_not_supported", pg("0A000", "cannot use subquery in check constraint"), dbop.NotRetryable},
		{"25P02 in_failed_sql_transaction", pg("25P02", "current transaction is aborted, commands ignored until end of transaction block"), dbop.NotRetryable},
		{"25P03 idle_in_transaction_session_timeout", pg("25P03", "terminating connection due to idle-in-transaction timeout"), dbop.RetryTransaction},
		{"2D000 invalid_transaction_termination", pg("2D000", "invalid transaction termination"), dbop.NotRetryable},
		{"3B001 invalid_savepoint_specification", pg("3B001", `savepoint "sp_1" does not exist`), dbop.NotRetryable},
		{"23505 unique_violation", pg("23505", `duplicate key value violates unique constraint "users_email_key"`), dbop.NotRetryable},
		{"23P01 exclusion_violation", pg("23P01", `conflicting key value violates exclusion constraint "no_overlap"`), dbop.NotRetryable},
		{"23503 foreign_key_violation", pg("23503", `insert or update on table "orders" violates foreign key constraint "orders_user_id_fkey"`), dbop.NotRetryable},
		{"XX000 internal_error", pg("XX000", "internal error"), dbop.Unclassified},
		{"25P04 transaction_timeout", pg("25P04", "terminating connection due to transaction timeout"), dbop.RetryTransaction},
		{"25006 read_only_sql_transaction", pg("25006", "cannot execute INSERT in a read-only transaction"), dbop.NotRetryable},
		{"22012 division_by_zero", pg("22012", "division by zero"), dbop.NotRetryable},
		{"42P01 undefined_table", pg("42P01", "relation \"nope\" does not exist"), dbop.NotRetryable},
		{"42601 syntax_error", pg("42601", "syntax error at or near \"SELEC\""), dbop.NotRetryable},
		{"SafeToRetry true", &safeToRetryError{safe: true}, dbop.RetryTransaction},
		{"SafeToRetry false", &safeToRetryError{safe: false}, dbop.Unclassified},
		{"pgconn conn closed", pgxConnClosed(t), dbop.RetryTransaction},
		{"pgconn conn busy: a bug, not a fault", pgxConnBusy(t), dbop.NotRetryable},
		{"conn busy look-alike without SafeToRetry", errors.New("conn busy"), dbop.Unclassified},
		{"SafeToRetry saying conn busy, not shaped like pgconn's", busyLookAlike{}, dbop.RetryTransaction},
		{"pgx.ErrTxClosed after 40001", errors.Join(pgx.ErrTxClosed, pg("40001", "could not serialize access")), dbop.RetryTransaction},
		{"pgx.ErrTxCommitRollback after 40001", errors.Join(pg("40001", "could not serialize access"), pgx.ErrTxCommitRollback), dbop.RetryTransaction},
		{"pgx.ErrTxCommitRollback after 23505", errors.Join(pgx.ErrTxCommitRollback, pg("23505", "duplicate key")), dbop.NotRetryable},
	}
}

// pgxSentinelCases are pgx's errors that have neither a SQLSTATE nor a
// capability: only pgx's own sentinels name them, so the driver-free
// classifiers leave them Unclassified, which no retry acts on.
// github.com/dbop-go/dbop/adapters/pgxdb's Classifier recognises them.
func pgxSentinelCases() []verdictCase {
	return []verdictCase{
		{"bare pgconn.ErrConnClosed", pgconn.ErrConnClosed, dbop.Unclassified},
		{"pgx.ErrTxClosed", pgx.ErrTxClosed, dbop.Unclassified},
		{"pgx.ErrTxCommitRollback", pgx.ErrTxCommitRollback, dbop.Unclassified},
	}
}

func TestPostgres(t *testing.T) {
	cases := append(append(postgresCases(t), pgxSentinelCases()...),
		verdictCase{"CR000 is CockroachDB's", dboptest.PgError("CR000", "restart transaction"), dbop.Unclassified},
		verdictCase{"MySQL 1213 is not PostgreSQL", dboptest.MySQLError(1213, "Deadlock found"), dbop.Unclassified},
		verdictCase{"network error is Network's", dboptest.NetworkError(), dbop.Unclassified},
		verdictCase{"deadline is Context's", context.DeadlineExceeded, dbop.Unclassified},
		verdictCase{"ErrTxCommitRollback with network error", errors.Join(pgx.ErrTxCommitRollback, dboptest.NetworkError()), dbop.Unclassified},
		verdictCase{"sql.ErrTxDone is Default's", sql.ErrTxDone, dbop.Unclassified},
	)
	checkVerdicts(t, "Postgres", classifiers.Postgres, cases)
}

// busyLookAlike has pgconn's SafeToRetry capability and the message of its
// "conn busy", but not the shape of pgconn's error (it has no Unwrap), as a
// test double may: the "conn busy" rule matches pgconn's error only.
type busyLookAlike struct{}

func (busyLookAlike) Error() string     { return "conn busy" }
func (busyLookAlike) SafeToRetry() bool { return true }
