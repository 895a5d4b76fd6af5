package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/go-sql-driver/mysql"
)

// TestSavepointEndedRecognisesMissingSavepoint checks which errors of
// ROLLBACK TO and RELEASE the savepointer reports as Ambiguous: a missing
// savepoint on MySQL, MariaDB and SQLite, where it means the transaction
// ended under the step; nothing on PostgreSQL, and no other error.
func TestSavepointEndedRecognisesMissingSavepoint(t *testing.T) {
	gone := &mysql.MySQLError{Number: 1305, SQLState: [5]byte{'4', '2', '0', '0', '0'}, Message: "SAVEPOINT dbop_sp_1 does not exist"}
	tests := []struct {
		family sqldialect.Family
		err    error
		want   bool
	}{
		{sqldialect.MariaDB, gone, true},
		{sqldialect.MySQL, gone, true},
		{sqldialect.MySQL, &mysql.MySQLError{Number: 1305, Message: "SAVEPOINT dbop_sp_1 does not exist"}, true},
		{sqldialect.MariaDB, &mysql.MySQLError{Number: 1062, Message: "Duplicate entry '1' for key 'PRIMARY'"}, false},
		{sqldialect.MariaDB, mysql.ErrInvalidConn, false},
		{sqldialect.Postgres, gone, false},
		{sqldialect.SQLite, errors.New("SQL logic error: no such savepoint: dbop_sp_1 (1)"), true},
		{sqldialect.SQLite, errors.New("no such savepoint: dbop_sp_1"), true},
		{sqldialect.SQLite, errors.New("no such savepoint: dbop_sp_2"), false},
		{sqldialect.SQLite, errors.New("database is locked (5) (SQLITE_BUSY)"), false},
	}
	for _, tt := range tests {
		err := sqldialect.SavepointEnded("sqldb", tt.family, "dbop_sp_1", tt.err)
		if !errors.Is(err, tt.err) {
			t.Errorf("%v, %v: %v does not reach the statement's error", tt.family, tt.err, err)
		}
		if got := dbop.VerdictOf(err) == dbop.Ambiguous; got != tt.want {
			t.Errorf("%v, %v: Ambiguous = %v, want %v (%v)", tt.family, tt.err, got, tt.want, err)
		}
	}
	if err := sqldialect.SavepointEnded("sqldb", sqldialect.MariaDB, "dbop_sp_1", nil); err != nil {
		t.Errorf("nil error: got %v", err)
	}
}

// TestSavepointEndedSQLiteAnswer checks the recognition against what
// modernc.org/sqlite answers RELEASE and ROLLBACK TO of a savepoint that
// does not exist.
func TestSavepointEndedSQLiteAnswer(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "sp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	s := savepoints{tx: tx, family: sqldialect.SQLite}
	for name, stmt := range map[string]func(context.Context, string) error{"RELEASE": s.Release, "ROLLBACK TO": s.RollbackTo} {
		err := stmt(context.Background(), "dbop_sp_1")
		if err == nil || dbop.VerdictOf(err) != dbop.Ambiguous {
			t.Errorf("%s of a missing savepoint: %v (verdict %v), want Ambiguous", name, err, dbop.VerdictOf(err))
		}
	}
}
