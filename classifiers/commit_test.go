package classifiers_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

func TestPostgresCommit(t *testing.T) {
	fatal := dboptest.PgError("57P01", "terminating connection due to administrator command")
	fatal.Severity, fatal.SeverityUnlocalized = "FATAL", "FATAL"
	otherFatal := dboptest.PgError("XX000", "unexpected")
	otherFatal.SeverityUnlocalized = "FATAL"
	idle := dboptest.PgError("25P03", "terminating connection due to idle-in-transaction timeout")
	idle.SeverityUnlocalized = "FATAL"
	checkVerdicts(t, "PostgresCommit", classifiers.PostgresCommit, []verdictCase{
		{"conn closed: pgx's lost answer", pgconn.ErrConnClosed, dbop.Ambiguous},
		// pgx calls a lost answer SafeToRetry too (docs/backends.md §2.4):
		// without pgx's types, SafeToRetry at COMMIT proves nothing.
		{"SafeToRetry: sent or not, unknown without pgx", &safeToRetryError{safe: true}, dbop.Ambiguous},
		{"SafeToRetry false", &safeToRetryError{safe: false}, dbop.Ambiguous},
		{"conn busy: not sent, a bug", pgxConnBusy(t), dbop.Unclassified},
		{"conn closed before send: pgx's lost answer too", pgxConnClosed(t), dbop.Ambiguous},
		{"ErrBadConn: lib/pq's lost answer", driver.ErrBadConn, dbop.Ambiguous},
		{"40001 answering COMMIT", dboptest.PgError("40001", "could not serialize access"), dbop.Unclassified},
		{"deferred 23505 answering COMMIT", dboptest.PgError("23505", "duplicate key"), dbop.Unclassified},
		{"40003 statement completion unknown", dboptest.PgError("40003", "result is ambiguous"), dbop.Ambiguous},
		{"08006 connection failure", dboptest.PgError("08006", "connection failure"), dbop.Ambiguous},
		{"57P01 FATAL admin shutdown", fatal, dbop.Ambiguous},
		{"57P02 crash shutdown", dboptest.PgError("57P02", "crash shutdown"), dbop.Ambiguous},
		// The severity is a field of pgx's type: pgxdb judges a FATAL
		// answer ambiguous; without it, a server answer is a refusal.
		{"any FATAL: pgxdb's", otherFatal, dbop.Unclassified},
		{"25P03 FATAL idle timeout: before COMMIT was read", idle, dbop.Unclassified},
		{"lib/pq's 57P01 through SQLState", &sqlStateError{"57P01", "terminating connection"}, dbop.Ambiguous},
		{"lib/pq's 40001 through SQLState", &sqlStateError{"40001", "could not serialize access"}, dbop.Unclassified},
		// Not committed, but only pgx's sentinel says so: pgxdb judges it
		// precisely; without it, the safe side.
		{"ErrTxCommitRollback: pgxdb's", pgx.ErrTxCommitRollback, dbop.Ambiguous},
		{"deadline after the send", context.DeadlineExceeded, dbop.Ambiguous},
		{"network error", dboptest.NetworkError(), dbop.Ambiguous},
		{"unknown", errors.New("?"), dbop.Ambiguous},
	})
}

func TestSQLiteCommit(t *testing.T) {
	checkVerdicts(t, "SQLiteCommit", classifiers.SQLiteCommit, []verdictCase{
		{"ErrBadConn", driver.ErrBadConn, dbop.RetryTransaction},
		{"BUSY: the engine refused and rolled back", dboptest.SQLiteBusy(t), dbop.Unclassified},
		{"interrupted by the context", context.Canceled, dbop.Ambiguous},
		{"unknown", errors.New("?"), dbop.Ambiguous},
	})
}

func TestCommitNil(t *testing.T) {
	for name, c := range map[string]dbop.Classifier{"PostgresCommit": classifiers.PostgresCommit, "SQLiteCommit": classifiers.SQLiteCommit} {
		if v := c(nil); v != dbop.Unclassified {
			t.Errorf("%s(nil) = %v", name, v)
		}
	}
}
