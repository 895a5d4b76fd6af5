package gormdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// the caller's own GORM transaction on MariaDB, begun with a
// cancelable context (db.WithContext(ctx).Transaction). The context is
// canceled while a step with a per-attempt WithTimeout runs Go code:
// database/sql rolls the transaction back and pools the connection
// (go-sql-driver is a SessionResetter and a Validator); the step's restore
// fails, and the next checkout keeps the step's max_statement_time.
func TestStepLimitsCanceledCallerLeavesNoStepLimitOnPooledConnGORMMariaDB(t *testing.T) {
	db := liveMySQL(t, nil)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	before := spShow(t.Context(), t, db, spLimitsMariaDB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stepErr error
	_ = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		_, stepErr = dbop.Op[int](func(ctx context.Context) (int, error) {
			if err := tx.WithContext(ctx).Exec("SELECT 1").Error; err != nil {
				return 0, err
			}
			cancel()
			time.Sleep(50 * time.Millisecond)
			return 0, ctx.Err()
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1)), dbop.WithTimeout(3*time.Second), gormdb.InSavepoint(tx, spMariaDB...)).Run(ctx)
		return stepErr
	})
	after := spShow(t.Context(), t, db, spLimitsMariaDB)
	t.Logf("step error %v; max_statement_time before %s, at the next checkout %s", stepErr, before, after)
	if after != before {
		t.Errorf("the pooled connection kept the step's max_statement_time: %s, was %s", after, before)
	}
}

// gormdb on PostgreSQL, the swallowed doom of an inner step under
// an outer step with a deadline of its own (see the pgxdb test).
func TestStepLimitsSwallowedDoomUnderStepLimitsGORMPostgres(t *testing.T) {
	for _, outerTimeout := range []bool{false, true} {
		db := livePostgres(t, nil)
		attempts := 0
		_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
			attempts++
			first := attempts == 1
			outer := []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))}
			if outerTimeout {
				outer = append(outer, dbop.WithTimeout(5*time.Second))
			}
			outer = append(outer, gormdb.InSavepoint(tx))
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				_, _ = dbop.Op[int](func(ctx context.Context) (int, error) {
					if first {
						return 0, tx.WithContext(ctx).Exec("DO $$BEGIN RAISE EXCEPTION 'review' USING ERRCODE = '40001'; END$$").Error
					}
					return 0, nil
				}).With(gormdb.InSavepoint(tx)).Run(ctx)
				return 0, nil
			}).With(outer...).Run(ctx)
			return err
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.WithTimeout(30*time.Second)).Run(t.Context())
		t.Logf("outer step deadline %v: %v after %d attempts (verdict %v)", outerTimeout, err, attempts, dbop.VerdictOf(err))
		if err != nil || attempts != 2 {
			t.Errorf("outer step deadline %v: want success after 2 attempts", outerTimeout)
		}
	}
}
