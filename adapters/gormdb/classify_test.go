package gormdb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/dboptest"
	"gorm.io/gorm"
)

func TestClassifier(t *testing.T) {
	pg, _ := fakeGORM(t, "postgres", nil)
	my, _ := fakeGORM(t, "mysql", nil)
	tests := []struct {
		name   string
		err    error
		pg, my dbop.Verdict // the verdict under each dialector
	}{
		{"nil", nil, dbop.Unclassified, dbop.Unclassified},
		{"record not found", gorm.ErrRecordNotFound, dbop.NotRetryable, dbop.NotRetryable},
		{"record not found, wrapped", fmt.Errorf("loading user: %w", gorm.ErrRecordNotFound), dbop.NotRetryable, dbop.NotRetryable},
		{"duplicated key (TranslateError on mysql)", gorm.ErrDuplicatedKey, dbop.NotRetryable, dbop.NotRetryable},
		{"duplicated key (TranslateError on postgres)",
			fmt.Errorf("%w: %w", gorm.ErrDuplicatedKey, dboptest.PgError("23505", "duplicate key")), dbop.NotRetryable, dbop.NotRetryable},
		{"foreign key", gorm.ErrForeignKeyViolated, dbop.NotRetryable, dbop.NotRetryable},
		{"invalid transaction", gorm.ErrInvalidTransaction, dbop.NotRetryable, dbop.NotRetryable},
		{"missing where clause", gorm.ErrMissingWhereClause, dbop.NotRetryable, dbop.NotRetryable},
		{"deadlock (postgres)", dboptest.PgError("40P01", "deadlock detected"), dbop.RetryTransaction, dbop.Unclassified},
		{"lock timeout (postgres)", dboptest.PgError("55P03", "canceling statement due to lock timeout"), dbop.RetryStatement, dbop.Unclassified},
		{"deadlock (mysql)", dboptest.MySQLError(1213, "Deadlock found"), dbop.Unclassified, dbop.RetryTransaction},
		{"lock wait timeout (mysql)", dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.Unclassified, dbop.RetryStatement},
		{"read-only transaction (postgres)", dboptest.PgError("25006", "cannot execute UPDATE in a read-only transaction"), dbop.NotRetryable, dbop.NotRetryable},
		{"read-only transaction (mysql)", dboptest.MySQLError(1792, "Cannot execute statement in a READ ONLY transaction"), dbop.NotRetryable, dbop.NotRetryable},
		{"bad connection", dboptest.BadConn(), dbop.RetryTransaction, dbop.RetryTransaction},
		{"network", dboptest.NetworkError(), dbop.RetryTransaction, dbop.RetryTransaction},
		{"deadline", context.DeadlineExceeded, dbop.RetryTransaction, dbop.RetryTransaction},
		{"canceled", context.Canceled, dbop.NotRetryable, dbop.NotRetryable},
		{"unknown", errors.New("something else"), dbop.Unclassified, dbop.Unclassified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gormdb.Classifier(pg)(tt.err); got != tt.pg {
				t.Errorf("postgres: %v; want %v", got, tt.pg)
			}
			if got := gormdb.Classifier(my)(tt.err); got != tt.my {
				t.Errorf("mysql: %v; want %v", got, tt.my)
			}
		})
	}
}

// With no dialector, or one this package does not know, the classifier is
// classifiers.Default's, after GORM's errors.
func TestClassifierOtherDialectors(t *testing.T) {
	for _, db := range []*gorm.DB{nil, {Config: &gorm.Config{}}} {
		c := gormdb.Classifier(db)
		for _, tt := range []struct {
			err  error
			want dbop.Verdict
		}{
			{gorm.ErrRecordNotFound, dbop.NotRetryable},
			{dboptest.PgError("40001", "could not serialize access"), dbop.RetryTransaction},
			{dboptest.MySQLError(1213, "Deadlock found"), dbop.RetryTransaction},
		} {
			if got := c(tt.err); got != tt.want {
				t.Errorf("Classifier(%v)(%v) = %v; want %v", db, tt.err, got, tt.want)
			}
		}
	}
}
