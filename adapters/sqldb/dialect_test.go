package sqldb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
)

func TestDialectString(t *testing.T) {
	for d, want := range map[sqldb.Dialect]string{
		sqldb.Postgres: "postgres",
		sqldb.MySQL:    "mysql",
		sqldb.MariaDB:  "mariadb",
		sqldb.SQLite:   "sqlite",
		0:              "Dialect(0)",
		9:              "Dialect(9)",
	} {
		if got := d.String(); got != want {
			t.Errorf("Dialect(%d).String() = %q, want %q", uint8(d), got, want)
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
		{"mysql deadlock", sqldb.MySQL, dboptest.MySQLError(1213, "Deadlock"), dbop.RetryTransaction},
		{"mariadb lock wait timeout", sqldb.MariaDB, dboptest.MySQLError(1205, "Lock wait timeout"), dbop.RetryStatement},
		{"mariadb statement time", sqldb.MariaDB, dboptest.MySQLError(1969, "max_statement_time exceeded"), dbop.RetryStatement},
		{"mysql invalid conn", sqldb.MySQL, dboptest.InvalidConn(), dbop.RetryTransaction},
		{"mysql does not read postgres", sqldb.MySQL, dboptest.PgError("40001", "serialize"), dbop.Unclassified},
		{"sqlite busy snapshot", sqldb.SQLite, dboptest.SQLiteBusySnapshot(t), dbop.RetryTransaction},
		{"sqlite unique", sqldb.SQLite, dboptest.SQLiteConstraintUnique(t), dbop.NotRetryable},
		{"network", sqldb.SQLite, dboptest.NetworkError(), dbop.RetryTransaction},
		{"bad conn", sqldb.Postgres, dboptest.BadConn(), dbop.RetryTransaction},
		{"deadline", sqldb.MariaDB, context.DeadlineExceeded, dbop.RetryTransaction},
		{"canceled", sqldb.MariaDB, context.Canceled, dbop.NotRetryable},
		{"unknown", sqldb.Postgres, errors.New("?"), dbop.Unclassified},
		{"nil", sqldb.Postgres, nil, dbop.Unclassified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Classify(tt.err); got != tt.want {
				t.Errorf("%v.Classify(%v) = %v, want %v", tt.d, tt.err, got, tt.want)
			}
		})
	}
}
