package classifiers_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/go-sql-driver/mysql"
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
		{"SafeToRetry: nothing sent", &safeToRetryError{safe: true}, dbop.RetryTransaction},
		{"conn busy: not sent, a bug", pgxConnBusy(t), dbop.Unclassified},
		{"conn closed before send: pgx's lost answer too", pgxConnClosed(t), dbop.Ambiguous},
		{"ErrBadConn: lib/pq's lost answer", driver.ErrBadConn, dbop.Ambiguous},
		{"40001 answering COMMIT", dboptest.PgError("40001", "could not serialize access"), dbop.Unclassified},
		{"deferred 23505 answering COMMIT", dboptest.PgError("23505", "duplicate key"), dbop.Unclassified},
		{"40003 statement completion unknown", dboptest.PgError("40003", "result is ambiguous"), dbop.Ambiguous},
		{"08006 connection failure", dboptest.PgError("08006", "connection failure"), dbop.Ambiguous},
		{"57P01 FATAL admin shutdown", fatal, dbop.Ambiguous},
		{"57P02 crash shutdown", dboptest.PgError("57P02", "crash shutdown"), dbop.Ambiguous},
		{"any FATAL", otherFatal, dbop.Ambiguous},
		{"25P03 FATAL idle timeout: before COMMIT was read", idle, dbop.Unclassified},
		{"ErrTxCommitRollback", pgx.ErrTxCommitRollback, dbop.Unclassified},
		{"deadline after the send", context.DeadlineExceeded, dbop.Ambiguous},
		{"network error", dboptest.NetworkError(), dbop.Ambiguous},
		{"unknown", errors.New("?"), dbop.Ambiguous},
	})
}

func TestMySQLCommit(t *testing.T) {
	checkVerdicts(t, "MySQLCommit", classifiers.MySQLCommit, []verdictCase{
		{"ErrBadConn: nothing written", driver.ErrBadConn, dbop.RetryTransaction},
		{"1213 answering COMMIT", dboptest.MySQLError(1213, "Deadlock found"), dbop.Unclassified},
		{"1927 connection killed", dboptest.MySQLError(1927, "Connection was killed"), dbop.Ambiguous},
		{"1053 server shutdown", dboptest.MySQLError(1053, "Server shutdown in progress"), dbop.Ambiguous},
		{"1317 interrupted", dboptest.MySQLError(1317, "Query execution was interrupted"), dbop.Ambiguous},
		{"ErrInvalidConn: read failed after the write", mysql.ErrInvalidConn, dbop.Ambiguous},
		{"context error", context.Canceled, dbop.Ambiguous},
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
	for name, c := range map[string]dbop.Classifier{"PostgresCommit": classifiers.PostgresCommit, "MySQLCommit": classifiers.MySQLCommit, "SQLiteCommit": classifiers.SQLiteCommit} {
		if v := c(nil); v != dbop.Unclassified {
			t.Errorf("%s(nil) = %v", name, v)
		}
	}
}
