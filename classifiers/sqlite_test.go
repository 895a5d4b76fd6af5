package classifiers_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

// sqliteCases are the SQLite rules of docs/backends.md §12, with real
// modernc.org/sqlite errors provoked against temporary databases.
func sqliteCases(tb testing.TB) []verdictCase {
	return []verdictCase{
		{"5 BUSY", dboptest.SQLiteBusy(tb), dbop.RetryTransaction},
		{"517 BUSY_SNAPSHOT", dboptest.SQLiteBusySnapshot(tb), dbop.RetryTransaction},
		{"6 LOCKED", dboptest.SQLiteLocked(tb), dbop.RetryTransaction},
		{"2067 CONSTRAINT_UNIQUE", dboptest.SQLiteConstraintUnique(tb), dbop.NotRetryable},
		{"1555 CONSTRAINT_PRIMARYKEY", dboptest.SQLiteConstraintPrimaryKey(tb), dbop.NotRetryable},
	}
}

func TestSQLite(t *testing.T) {
	cases := append(sqliteCases(t),
		verdictCase{"context error is Context's", context.DeadlineExceeded, dbop.Unclassified},
		verdictCase{"MySQL 1213 is not SQLite", dboptest.MySQLError(1213, "Deadlock found"), dbop.Unclassified},
		verdictCase{"PostgreSQL 40001 is not SQLite", dboptest.PgError("40001", "could not serialize"), dbop.Unclassified},
	)
	checkVerdicts(t, "SQLite", classifiers.SQLite, cases)
}

// modernc.org/sqlite ends a busy wait when the context is done and returns
// the context's error, not an *sqlite.Error (docs/backends.md §5.9), so a
// per-attempt deadline reaches Default as context.DeadlineExceeded.
func TestSQLiteBusyWaitDeadline(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "wait.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	holder, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer holder.ExecContext(ctx, "ROLLBACK")
	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	attempt, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = other.ExecContext(attempt, "INSERT INTO t VALUES (1)")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("busy wait past the deadline: got %v, want context.DeadlineExceeded", err)
	}
	if got := classifiers.Default(err); got != dbop.RetryTransaction {
		t.Errorf("Default(%v) = %v, want retry-transaction", err, got)
	}
}
