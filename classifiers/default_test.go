package classifiers_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
)

// TestSummaryTable has one case per rule of docs/backends.md §12 that
// Default can decide without a driver, named after the rule.
func TestSummaryTable(t *testing.T) {
	pg := func(code, message string) error { return dboptest.PgError(code, message) }
	cases := []verdictCase{
		{"40001 PG", pg("40001", "could not serialize access due to concurrent update"), dbop.RetryTransaction},
		{"40001 CRDB", pg("40001", "restart transaction: TransactionRetryWithProtoRefreshError"), dbop.RetryTransaction},
		{"40P01", pg("40P01", "deadlock detected"), dbop.RetryTransaction},
		{"55P03 lock_timeout", pg("55P03", "canceling statement due to lock timeout"), dbop.RetryStatement},
		{"55P03 NOWAIT", pg("55P03", `could not obtain lock on row in relation "t"`), dbop.RetryStatement},
		{"57014 statement timeout", pg("57014", "canceling statement due to statement timeout"), dbop.RetryStatement},
		{"57014 user request", pg("57014", "canceling statement due to user request"), dbop.NotRetryable},
		{"25P02", pg("25P02", "current transaction is aborted, commands ignored until end of transaction block"), dbop.NotRetryable},
		{"network error before send", &safeToRetryError{safe: true}, dbop.RetryTransaction},
		{"network error after send", dboptest.NetworkError(), dbop.RetryTransaction},
		{"ctx deadline after send", context.DeadlineExceeded, dbop.RetryTransaction},
		{"pgconn conn closed", pgxConnClosed(t), dbop.RetryTransaction},
		{"57P01", pg("57P01", "terminating connection due to administrator command"), dbop.RetryTransaction},
		{"57P02", pg("57P02", "terminating connection because of crash of another server process"), dbop.RetryTransaction},
		{"57P03", pg("57P03", "the database system is starting up"), dbop.RetryTransaction},
		{"53300", pg("53300", "sorry, too many clients already"), dbop.RetryTransaction},
		{"53100", pg("53100", "could not extend file"), dbop.RetryTransaction},
		{"53200", pg("53200", "out of memory"), dbop.RetryTransaction},
		{"53400", pg("53400", "configuration limit exceeded"), dbop.NotRetryable},
		{"0A000", pg("0A000", "feature not supported"), dbop.NotRetryable},
		{"0A000 cached plan", pg("0A000", "cached plan must not change result type"), dbop.RetryTransaction},
		{"23505", pg("23505", "duplicate key value violates unique constraint"), dbop.NotRetryable},
		{"23P01", pg("23P01", "conflicting key value violates exclusion constraint"), dbop.NotRetryable},
		{"pgx.ErrTxCommitRollback after root cause", errors.Join(pg("40001", "could not serialize"), pgx.ErrTxCommitRollback), dbop.RetryTransaction},
		{"40003 CRDB", pg("40003", "result is ambiguous"), dbop.Ambiguous},
		{"driver.ErrBadConn", dboptest.BadConn(), dbop.RetryTransaction},
		{"SQLITE_BUSY 5", dboptest.SQLiteBusy(t), dbop.RetryTransaction},
		{"SQLITE_BUSY_SNAPSHOT 517", dboptest.SQLiteBusySnapshot(t), dbop.RetryTransaction},
		{"SQLITE_LOCKED 6", dboptest.SQLiteLocked(t), dbop.RetryTransaction},
		{"INTERRUPT / ctx deadline", context.DeadlineExceeded, dbop.RetryTransaction},
		{"INTERRUPT / ctx cancel", context.Canceled, dbop.NotRetryable},
		{"2067", dboptest.SQLiteConstraintUnique(t), dbop.NotRetryable},
		{"1555", dboptest.SQLiteConstraintPrimaryKey(t), dbop.NotRetryable},
	}
	checkVerdicts(t, "Default", classifiers.Default, cases)
}

// Default agrees with each backend's classifier on that backend's errors.
func TestDefaultAgreesWithBackends(t *testing.T) {
	for _, backend := range []struct {
		name  string
		cases []verdictCase
	}{
		{"postgres", postgresCases(t)},
		{"pgx sentinels", pgxSentinelCases()},
		{"sqlite", sqliteCases(t)},
		{"network", networkCases(t)},
	} {
		t.Run(backend.name, func(t *testing.T) {
			checkVerdicts(t, "Default", classifiers.Default, backend.cases)
		})
	}
}

// The order of Default: server errors, then transport, then context errors,
// then the sql.ErrTxDone rule.
func TestDefaultOrder(t *testing.T) {
	cases := []verdictCase{
		{"server error before deadline", errors.Join(context.DeadlineExceeded, dboptest.PgError("23505", "duplicate key")), dbop.NotRetryable},
		{"server error before cancel", errors.Join(context.Canceled, dboptest.PgError("55P03", "canceling statement due to lock timeout")), dbop.RetryStatement},
		{"network before cancel", errors.Join(context.Canceled, dboptest.NetworkError()), dbop.RetryTransaction},
		{"ErrTxCommitRollback after network", errors.Join(pgx.ErrTxCommitRollback, dboptest.NetworkError()), dbop.RetryTransaction},
		{"ErrTxCommitRollback after cancel", errors.Join(pgx.ErrTxCommitRollback, context.Canceled), dbop.NotRetryable},
		{"PostgreSQL before SQLite", errors.Join(dboptest.SQLiteBusy(t), dboptest.PgError("23505", "duplicate key")), dbop.NotRetryable},
		{"SQLite before network", errors.Join(dboptest.NetworkError(), dboptest.SQLiteConstraintUnique(t)), dbop.NotRetryable},
		{"a MySQL error needs mysqldb", dboptest.MySQLError(1213, "Deadlock found"), dbop.Unclassified},
		{"mysql.ErrInvalidConn needs mysqldb", dboptest.InvalidConn(), dbop.Unclassified},
		{"unknown error", errors.New("boom"), dbop.Unclassified},
		{"io.EOF", io.EOF, dbop.Unclassified},
		{"sql.ErrNoRows", sql.ErrNoRows, dbop.Unclassified},
		{"sql.ErrTxDone", sql.ErrTxDone, dbop.NotRetryable},
		{"sql.ErrTxDone after network", errors.Join(sql.ErrTxDone, dboptest.NetworkError()), dbop.RetryTransaction},
		{"sql.ErrTxDone after a WithTimeout deadline", &dbop.TimeoutError{Timeout: time.Second, Err: sql.ErrTxDone}, dbop.RetryTransaction},
		{"pgx.ErrTxClosed after network", errors.Join(pgx.ErrTxClosed, dboptest.NetworkError()), dbop.RetryTransaction},
		{"pgx.ErrTxClosed after a WithTimeout deadline", &dbop.TimeoutError{Timeout: time.Second, Err: pgx.ErrTxClosed}, dbop.RetryTransaction},
		{"conn busy before network", errors.Join(dboptest.NetworkError(), pgxConnBusy(t)), dbop.NotRetryable},
	}
	checkVerdicts(t, "Default", classifiers.Default, cases)
}

// Every exported classifier fits dbop.Classifier and composes with Or.
func TestClassifierType(t *testing.T) {
	c := dbop.Classifier(classifiers.SQLite).Or(classifiers.Postgres)
	if got := c(dboptest.PgError("40P01", "deadlock detected")); got != dbop.RetryTransaction {
		t.Errorf("SQLite.Or(Postgres)(40P01) = %v, want retry-transaction", got)
	}
}

// Classifying allocates nothing, so a retry loop can classify every error.
func TestDefaultDoesNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"wrapped PgError", fmt.Errorf("transfer: %w", dboptest.PgError("40001", "could not serialize"))},
		{"another driver's error", dboptest.MySQLError(1205, "Lock wait timeout exceeded")},
		{"SafeToRetry", pgxConnClosed(t)},
		{"network error", dboptest.NetworkError()},
		{"context error", context.Canceled},
		{"unknown error", errors.New("boom")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { classifiers.Default(tc.err) }); n != 0 {
				t.Errorf("Default allocates %v times per call, want 0", n)
			}
		})
	}
}
