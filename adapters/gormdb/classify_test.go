package gormdb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/dboptest"
	"gorm.io/gorm"
)

// Each dialector gets its dialect's classifier, after GORM's errors: the
// postgres one sqldb.Postgres's, the mysql one that of the Dialect given
// (mysqldb.MariaDB here), the sqlite one sqldb.SQLite's, and one gormdb
// does not know classifiers.Default.
func TestClassifier(t *testing.T) {
	pg, _ := fakeGORM(t, "postgres", nil)
	my, _ := fakeGORM(t, "mysql", nil)
	lite, _ := fakeGORM(t, "sqlite", nil)
	other, _ := fakeGORM(t, "sqlserver", nil)
	classify := map[string]dbop.Classifier{
		"postgres":  gormdb.ClassifierOf(pg),
		"mysql":     gormdb.ClassifierOf(my, gormdb.Dialect(mysqldb.MariaDB)),
		"sqlite":    gormdb.ClassifierOf(lite),
		"sqlserver": gormdb.ClassifierOf(other),
	}
	const (
		u  = dbop.Unclassified
		nr = dbop.NotRetryable
		rt = dbop.RetryTransaction
		rs = dbop.RetryStatement
	)
	tests := []struct {
		name                      string
		err                       error
		pg, my, sqlite, sqlserver dbop.Verdict // the verdict under each dialector
	}{
		{"nil", nil, u, u, u, u},
		{"record not found", gorm.ErrRecordNotFound, nr, nr, nr, nr},
		{"record not found, wrapped", fmt.Errorf("loading user: %w", gorm.ErrRecordNotFound), nr, nr, nr, nr},
		{"duplicated key (TranslateError on mysql)", gorm.ErrDuplicatedKey, nr, nr, nr, nr},
		{"duplicated key (TranslateError on postgres)",
			fmt.Errorf("%w: %w", gorm.ErrDuplicatedKey, dboptest.PgError("23505", "duplicate key")), nr, nr, nr, nr},
		{"foreign key", gorm.ErrForeignKeyViolated, nr, nr, nr, nr},
		{"invalid transaction", gorm.ErrInvalidTransaction, nr, nr, nr, nr},
		{"missing where clause", gorm.ErrMissingWhereClause, nr, nr, nr, nr},
		{"transaction done", fmt.Errorf("commit: %w", sql.ErrTxDone), nr, nr, nr, nr},
		{"deadlock (postgres)", dboptest.PgError("40P01", "deadlock detected"), rt, u, u, rt},
		{"lock timeout (postgres)", dboptest.PgError("55P03", "canceling statement due to lock timeout"), rs, u, u, rs},
		{"deadlock (mysql)", dboptest.MySQLError(1213, "Deadlock found"), u, rt, u, u},
		{"lock wait timeout (mysql)", dboptest.MySQLError(1205, "Lock wait timeout exceeded"), u, rs, u, u},
		{"busy snapshot (sqlite)", dboptest.SQLiteBusySnapshot(t), u, u, rt, rt},
		{"read-only transaction (postgres)", dboptest.PgError("25006", "cannot execute UPDATE in a read-only transaction"), nr, u, u, nr},
		{"read-only transaction (mysql)", dboptest.MySQLError(1792, "Cannot execute statement in a READ ONLY transaction"), u, nr, u, u},
		{"bad connection", dboptest.BadConn(), rt, rt, rt, rt},
		{"network", dboptest.NetworkError(), rt, rt, rt, rt},
		{"deadline", context.DeadlineExceeded, rt, rt, rt, rt},
		{"canceled", context.Canceled, nr, nr, nr, nr},
		{"unknown", errors.New("something else"), u, u, u, u},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for dialector, want := range map[string]dbop.Verdict{"postgres": tt.pg, "mysql": tt.my, "sqlite": tt.sqlite, "sqlserver": tt.sqlserver} {
				if got := classify[dialector](tt.err); got != want {
					t.Errorf("%s: %v; want %v", dialector, got, want)
				}
			}
		})
	}
}

// A ClassifyBy classifier is asked first, before GORM's errors and the
// dialect's classifier; several are asked in the order given.
func TestClassifyByOrder(t *testing.T) {
	db, _ := fakeGORM(t, "postgres", nil)
	deadlock := dboptest.PgError("40P01", "deadlock detected")
	says := func(target error, v dbop.Verdict) dbop.Classifier {
		return func(err error) dbop.Verdict {
			if errors.Is(err, target) {
				return v
			}
			return dbop.Unclassified
		}
	}
	c := gormdb.ClassifierOf(db,
		gormdb.ClassifyBy(says(gorm.ErrRecordNotFound, dbop.RetryStatement)),
		gormdb.ClassifyBy(says(gorm.ErrRecordNotFound, dbop.NotRetryable), says(deadlock, dbop.NotRetryable)),
	)
	for _, tt := range []struct {
		err  error
		want dbop.Verdict
	}{
		{gorm.ErrRecordNotFound, dbop.RetryStatement}, // the first ClassifyBy, before GORM's NotRetryable
		{deadlock, dbop.NotRetryable},                 // the second, before the dialect's RetryTransaction
		{dboptest.PgError("55P03", "lock timeout"), dbop.RetryStatement},
	} {
		if got := c(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}
