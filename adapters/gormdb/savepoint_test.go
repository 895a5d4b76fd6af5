package gormdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

func TestSavepointsStatements(t *testing.T) {
	tests := []struct {
		dialector, name string
		want            []string
	}{
		{"postgres", "dbop_sp_1", []string{
			`SAVEPOINT "dbop_sp_1"`, `ROLLBACK TO SAVEPOINT "dbop_sp_1"`, `RELEASE SAVEPOINT "dbop_sp_1"`}},
		{"postgres", `odd "name"`, []string{
			`SAVEPOINT "odd ""name"""`, `ROLLBACK TO SAVEPOINT "odd ""name"""`, `RELEASE SAVEPOINT "odd ""name"""`}},
		{"mysql", "dbop_sp_1", []string{
			"SAVEPOINT `dbop_sp_1`", "ROLLBACK TO SAVEPOINT `dbop_sp_1`", "RELEASE SAVEPOINT `dbop_sp_1`"}},
		{"mysql", "odd `name`", []string{
			"SAVEPOINT `odd ``name```", "ROLLBACK TO SAVEPOINT `odd ``name```", "RELEASE SAVEPOINT `odd ``name```"}},
	}
	for _, tt := range tests {
		t.Run(tt.dialector+"/"+tt.name, func(t *testing.T) {
			db, fake := fakeGORM(t, tt.dialector, nil)
			tx := db.Begin()
			var opts []gormdb.SavepointOption
			if tt.dialector == "mysql" {
				opts = append(opts, gormdb.Dialect(mysqldb.MySQL))
			}
			sp := gormdb.Savepoints(tx, opts...)
			ctx := t.Context()
			for _, f := range []func(context.Context, string) error{sp.Savepoint, sp.RollbackTo, sp.Release} {
				if err := f(ctx, tt.name); err != nil {
					t.Fatal(err)
				}
			}
			tx.Rollback()
			checkLog(t, append(append([]string{"BEGIN"}, tt.want...), "ROLLBACK"), fake.Log())
		})
	}
}

// Each statement's own error comes back, as the driver returned it, where
// GORM's postgres dialector returns nil; and tx is left as it was.
func TestSavepointsReturnTheStatementsError(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	noSuch := dboptest.PgError("3B001", `savepoint "x" does not exist`)
	fake.failNext(`ROLLBACK TO SAVEPOINT "x"`, noSuch)
	fake.failNext("ROLLBACK TO SAVEPOINT x", noSuch)
	tx := db.Begin()
	defer tx.Rollback()

	if err := tx.RollbackTo("x").Error; err != nil {
		t.Errorf("GORM's tx.RollbackTo = %v; want nil, the failure hidden (GORM's behaviour changed?)", err)
	}
	err := gormdb.Savepoints(tx).RollbackTo(t.Context(), "x")
	if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "3B001" {
		t.Errorf("Savepoints(tx).RollbackTo = %v; want the *pgconn.PgError 3B001", err)
	}
	if tx.Error != nil {
		t.Errorf("tx.Error = %v after a failed savepoint statement; want tx untouched", tx.Error)
	}
}

func TestSavepointsRefuse(t *testing.T) {
	t.Run("outside a transaction", func(t *testing.T) {
		db, fake := fakeGORM(t, "postgres", nil)
		err := gormdb.Savepoints(db).Savepoint(t.Context(), "dbop_sp_1")
		if !errors.Is(err, gorm.ErrInvalidTransaction) {
			t.Errorf("Savepoint on a pool = %v; want gorm.ErrInvalidTransaction", err)
		}
		if got := dbop.VerdictOf(dbop.Classify(err, gormdb.ClassifierOf(db)(err))); got != dbop.NotRetryable {
			t.Errorf("verdict = %v; want not-retryable", got)
		}
		checkLog(t, nil, fake.Log())
	})
	t.Run("handle with an error", func(t *testing.T) {
		db, fake := fakeGORM(t, "postgres", nil)
		tx := db.Begin()
		defer tx.Rollback()
		_ = tx.AddError(errScripted)
		if err := gormdb.Savepoints(tx).Savepoint(t.Context(), "dbop_sp_1"); !errors.Is(err, errScripted) {
			t.Errorf("Savepoint = %v; want the handle's error", err)
		}
		checkLog(t, []string{"BEGIN"}, fake.Log())
	})
}

// With PrepareStmt, savepoint statements bypass the statement cache, as
// GORM's own SavePoint does, while fn's statements are prepared.
func TestSavepointsPreparedStatements(t *testing.T) {
	db, fake := fakeGORM(t, "mysql", &gorm.Config{PrepareStmt: true})
	tx := db.Begin()
	if _, ok := tx.Statement.ConnPool.(*gorm.PreparedStmtTX); !ok {
		t.Fatalf("tx.Statement.ConnPool is %T; want *gorm.PreparedStmtTX", tx.Statement.ConnPool)
	}
	step := dbop.Op[int](func(ctx context.Context) (int, error) {
		return 0, tx.WithContext(ctx).Exec("UPDATE t SET n = ?", 1).Error
	})
	if _, err := step.With(gormdb.InSavepoint(tx, gormdb.Dialect(mysqldb.MariaDB))).Run(dbop.WithinTx(t.Context())); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	var got []string
	prepared := 0
	for _, s := range fake.Log() {
		if strings.HasPrefix(s, "PREPARE UPDATE") { // database/sql may prepare it twice (once more for the Tx)
			prepared++
			continue
		}
		got = append(got, s)
	}
	if prepared == 0 {
		t.Error("the UPDATE was not prepared: PrepareStmt is not in effect")
	}
	checkLog(t, []string{
		"BEGIN",
		"SAVEPOINT `dbop_sp_1`",
		"UPDATE t SET n = ? [1]", // prepared: see above
		"RELEASE SAVEPOINT `dbop_sp_1`",
		"COMMIT",
	}, got)
	if _, ok := tx.Statement.ConnPool.(*gorm.PreparedStmtTX); !ok {
		t.Errorf("tx.Statement.ConnPool became %T; want it untouched", tx.Statement.ConnPool)
	}
}

// InSavepoint retries a statement-level error at the savepoint, and lets a
// transaction-level one out to the retry around InTx.
func TestInSavepointRetries(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	fake.failNext("UPDATE b", dboptest.PgError("55P03", "canceling statement due to lock timeout"))
	fake.failNext("UPDATE b", dboptest.PgError("40P01", "deadlock detected"))
	op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		if err := tx.Exec("INSERT a").Error; err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.WithContext(ctx).Exec("UPDATE b").Error
		})
		return step.With(retry, gormdb.InSavepoint(tx)).Run(ctx)
	}).With(retry)
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{
		"BEGIN", "INSERT a",
		`SAVEPOINT "dbop_sp_1"`, "UPDATE b", `ROLLBACK TO SAVEPOINT "dbop_sp_1"`, `RELEASE SAVEPOINT "dbop_sp_1"`, // lock timeout: the statement again
		`SAVEPOINT "dbop_sp_1"`, "UPDATE b", "ROLLBACK", // deadlock: the whole transaction again
		"BEGIN", "INSERT a",
		`SAVEPOINT "dbop_sp_1"`, "UPDATE b", `RELEASE SAVEPOINT "dbop_sp_1"`,
		"COMMIT",
	}, fake.Log())
}

// A classifier given with ClassifyBy is asked before GORM's rules.
func TestInSavepointClassifierOrder(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	tx := db.Begin()
	defer tx.Rollback()
	mine := func(err error) dbop.Verdict {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return dbop.RetryStatement // say, a row another writer is about to insert
		}
		return dbop.Unclassified
	}
	calls := 0
	step := dbop.Op[int](func(ctx context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, gorm.ErrRecordNotFound
		}
		return 1, nil
	})
	if _, err := step.With(retry, gormdb.InSavepoint(tx, gormdb.ClassifyBy(mine))).Run(dbop.WithinTx(t.Context())); err != nil || calls != 2 {
		t.Errorf("Run = %v after %d calls; want nil after 2", err, calls)
	}
	_ = fake.Log()
}

// The savepoint statements run with the context scopes gives them, so
// RollbackTimeout bounds a ROLLBACK TO SAVEPOINT the server never answers;
// the transaction's state is then unknown, and the error dooms it
// (RetryTransaction), the step's error first (fake time: synctest).
func TestInSavepointRollbackTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, fake := fakeGORM(t, "postgres", nil)
		tx := db.Begin()
		defer tx.Rollback()
		lockTimeout := dboptest.PgError("55P03", "canceling statement due to lock timeout")
		fake.failNext("UPDATE b", lockTimeout)
		release := fake.blockNext(`ROLLBACK TO SAVEPOINT "dbop_sp_1"`)
		defer release()
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.WithContext(ctx).Exec("UPDATE b").Error
		})
		start := time.Now()
		_, err := step.With(retry, gormdb.InSavepoint(tx, gormdb.RollbackTimeout(time.Second))).Run(dbop.WithinTx(t.Context()))
		if elapsed := time.Since(start); elapsed != time.Second {
			t.Errorf("Run returned after %v; want 1s, the rollback timeout", elapsed)
		}
		if !errors.Is(err, lockTimeout) || !errors.Is(err, context.DeadlineExceeded) || dbop.VerdictOf(err) != dbop.RetryTransaction {
			t.Errorf("Run = %v (verdict %v); want the lock timeout and the deadline, retry-transaction", err, dbop.VerdictOf(err))
		}
		checkLog(t, []string{"BEGIN", `SAVEPOINT "dbop_sp_1"`, "UPDATE b", `ROLLBACK TO SAVEPOINT "dbop_sp_1"`}, fake.Log())
	})
}
