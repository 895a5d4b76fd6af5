package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
)

func TestDialectString(t *testing.T) {
	for _, tc := range []struct {
		d    sqldb.Dialect
		want string
	}{
		{sqldb.Postgres, "postgres"},
		{sqldb.SQLite, "sqlite"},
		{mysqldb.MySQL, "mysql"},
		{mysqldb.MariaDB, "mariadb"},
		{sqldb.Dialect{}, "Dialect{Family: Family(0)}"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("%q.String() = %q, want %q", tc.d.Name, got, tc.want)
		}
	}
}

// Each dialect reads its own backend's errors, then transport and context
// errors; it does not misread another backend's.
func TestDialectClassify(t *testing.T) {
	tests := []struct {
		name string
		d    sqldb.Dialect
		err  error
		want dbop.Verdict
	}{
		{"postgres deadlock", sqldb.Postgres, dboptest.PgError("40P01", "deadlock detected"), dbop.RetryTransaction},
		{"postgres lock timeout", sqldb.Postgres, dboptest.PgError("55P03", "canceling statement due to lock timeout"), dbop.RetryStatement},
		{"postgres does not read mysql", sqldb.Postgres, dboptest.MySQLError(1213, "Deadlock"), dbop.Unclassified},
		{"mysql deadlock", mysqldb.MySQL, dboptest.MySQLError(1213, "Deadlock"), dbop.RetryTransaction},
		{"mariadb lock wait timeout", mysqldb.MariaDB, dboptest.MySQLError(1205, "Lock wait timeout"), dbop.RetryStatement},
		{"mariadb statement time", mysqldb.MariaDB, dboptest.MySQLError(1969, "max_statement_time exceeded"), dbop.RetryStatement},
		{"mysql invalid conn", mysqldb.MySQL, dboptest.InvalidConn(), dbop.RetryTransaction},
		{"mysql does not read postgres", mysqldb.MySQL, dboptest.PgError("40001", "serialize"), dbop.Unclassified},
		{"sqlite busy snapshot", sqldb.SQLite, dboptest.SQLiteBusySnapshot(t), dbop.RetryTransaction},
		{"sqlite unique", sqldb.SQLite, dboptest.SQLiteConstraintUnique(t), dbop.NotRetryable},
		{"sqlite does not read postgres", sqldb.SQLite, dboptest.PgError("40001", "serialize"), dbop.Unclassified},
		{"network", sqldb.SQLite, dboptest.NetworkError(), dbop.RetryTransaction},
		{"bad conn", sqldb.Postgres, dboptest.BadConn(), dbop.RetryTransaction},
		{"deadline", mysqldb.MariaDB, context.DeadlineExceeded, dbop.RetryTransaction},
		{"postgres deadline", sqldb.Postgres, context.DeadlineExceeded, dbop.RetryTransaction},
		{"canceled", mysqldb.MariaDB, context.Canceled, dbop.NotRetryable},
		{"sqlite canceled", sqldb.SQLite, context.Canceled, dbop.NotRetryable},
		{"unknown", sqldb.Postgres, errors.New("?"), dbop.Unclassified},
		{"nil", sqldb.Postgres, nil, dbop.Unclassified},
		{"sqlite nil", sqldb.SQLite, nil, dbop.Unclassified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Classify(tt.err); got != tt.want {
				t.Errorf("%v.Classify(%v) = %v, want %v", tt.d, tt.err, got, tt.want)
			}
		})
	}
}

// A zero or incomplete Dialect is refused when the operation or decorator
// is built, with a message naming what is missing; a copy of a declared
// one with a field changed is accepted.
func TestInvalidDialectPanics(t *testing.T) {
	db, _ := openFake(t)
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	fn := func(context.Context, *sql.Tx) (int, error) { return 0, nil }
	noCommitRules := sqldb.Postgres
	noCommitRules.CommitOutcome = nil
	for _, tc := range []struct {
		name, want string
		d          sqldb.Dialect
	}{
		{"zero", "the zero Dialect", sqldb.Dialect{}},
		{"incomplete", "dialect postgres: no CommitOutcome", noCommitRules},
	} {
		for caller, build := range map[string]func(){
			"InTx":        func() { sqldb.InTx(db, tc.d, fn) },
			"Do":          func() { sqldb.Do(db, tc.d, func(context.Context, *sql.Tx) error { return nil }) },
			"InSavepoint": func() { sqldb.InSavepoint(tx, tc.d) },
		} {
			t.Run(tc.name+"/"+caller, func(t *testing.T) {
				got, _ := mustPanic(t, build).(string)
				if !strings.Contains(got, "sqldb: "+caller+": "+tc.want) {
					t.Errorf("panic %q, want it to name %s and %q", got, caller, tc.want)
				}
			})
		}
	}
	custom := sqldb.Postgres
	custom.Name = "postgres+pgx"
	custom.CommitOutcome = func(error) dbop.Verdict { return dbop.Ambiguous }
	sqldb.InTx(db, custom, fn)
}
