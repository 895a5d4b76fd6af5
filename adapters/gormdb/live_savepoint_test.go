package gormdb_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// GORM's postgres dialector hides a failed ROLLBACK TO SAVEPOINT
// (docs/backends.md §9.3, shown here on a live server): tx.RollbackTo returns
// no error, and the transaction is left aborted. Savepoints returns the
// server's error.
func TestLivePostgresSavepointFailures(t *testing.T) {
	db := livePostgres(t, nil)
	ctx := t.Context()

	t.Run("GORM hides it", func(t *testing.T) {
		tx := db.WithContext(ctx).Begin()
		defer tx.Rollback()
		if err := tx.RollbackTo("does_not_exist").Error; err != nil {
			t.Errorf("GORM's tx.RollbackTo(%q).Error = %v; docs/backends.md §9.3 says nil", "does_not_exist", err)
		}
		// The statement did fail: the transaction is aborted.
		err := tx.Exec("SELECT 1").Error
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "25P02" {
			t.Errorf("next statement = %v; want 25P02 in_failed_sql_transaction", err)
		}
		// The same statement run with Exec reports it.
		tx2 := db.WithContext(ctx).Begin()
		defer tx2.Rollback()
		err = tx2.Exec("ROLLBACK TO SAVEPOINT does_not_exist").Error
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "3B001" {
			t.Errorf("tx.Exec(ROLLBACK TO SAVEPOINT …) = %v; want 3B001", err)
		}
	})

	t.Run("Savepoints sees it", func(t *testing.T) {
		tx := db.WithContext(ctx).Begin()
		defer tx.Rollback()
		err := gormdb.Savepoints(tx).RollbackTo(ctx, "does_not_exist")
		pe, ok := errors.AsType[*pgconn.PgError](err)
		if !ok || pe.Code != "3B001" {
			t.Fatalf("Savepoints(tx).RollbackTo = %v; want the *pgconn.PgError 3B001", err)
		}
		if got := gormdb.ClassifierOf(db)(err); got != dbop.NotRetryable {
			t.Errorf("verdict = %v; want not-retryable", got)
		}
	})

	// InSavepoint releases the savepoint after a successful attempt, which
	// GORM's nested Transaction never does: rolling back to it afterwards
	// fails because it no longer exists.
	t.Run("released", func(t *testing.T) {
		tx := db.WithContext(ctx).Begin()
		defer tx.Rollback()
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 0, tx.WithContext(ctx).Exec("SELECT 1").Error
		})
		if _, err := step.With(gormdb.InSavepoint(tx)).Run(dbop.WithinTx(ctx)); err != nil {
			t.Fatal(err)
		}
		err := gormdb.Savepoints(tx).RollbackTo(ctx, "dbop_sp_1")
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "3B001" {
			t.Errorf("ROLLBACK TO the released savepoint = %v; want 3B001, as it no longer exists", err)
		}
	})
}

// The mysql dialector does return savepoint errors (docs/backends.md §9.3);
// Savepoints returns the same *mysql.MySQLError.
func TestLiveMySQLSavepointFailures(t *testing.T) {
	db := liveMySQL(t, nil)
	ctx := t.Context()
	tx := db.WithContext(ctx).Begin()
	defer tx.Rollback()
	if err := tx.RollbackTo("does_not_exist").Error; !isMySQL(err, 1305) {
		t.Errorf("GORM's tx.RollbackTo = %v; want error 1305 (docs/backends.md §9.3: the mysql dialector returns it)", err)
	}
	if err := gormdb.Savepoints(tx, mariadb).RollbackTo(ctx, "does_not_exist"); !isMySQL(err, 1305) {
		t.Errorf("Savepoints(tx).RollbackTo = %v; want the *mysql.MySQLError 1305", err)
	}
}

// Requirement 3: a lock timeout (55P03, from LockTimeout's SET LOCAL
// lock_timeout) inside a savepoint step is retried at the savepoint; the
// transaction's earlier rows survive, and the transaction runs once.
func TestLivePostgresLockTimeoutRetriedAtSavepoint(t *testing.T) {
	db := livePostgres(t, nil)
	ctx := t.Context()
	table := "gormdb_lock_timeout_pg"
	createTable(t, db, table, "id int PRIMARY KEY, n int NOT NULL")
	exec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")

	// A second connection holds the row lock until the first retry.
	blocker := db.WithContext(ctx).Begin()
	if err := blocker.Exec("UPDATE " + table + " SET n = n WHERE id = 1").Error; err != nil {
		t.Fatal(err)
	}
	var release sync.Once
	unblock := func() { release.Do(func() { blocker.Rollback() }) }
	t.Cleanup(unblock)

	var retried []dbop.AttemptEvent
	txRuns, stepRuns := 0, 0
	op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int64, error) {
		txRuns++
		if err := tx.Exec("INSERT INTO " + table + " VALUES (2, 0)").Error; err != nil { // earlier work
			return 0, err
		}
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			stepRuns++
			r := tx.WithContext(ctx).Exec("UPDATE " + table + " SET n = n + 1 WHERE id = 1")
			return r.RowsAffected, r.Error
		})
		return step.With(
			dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				retried = append(retried, e)
				unblock() // the lock is free once the retry starts: no timer decides
			})),
			gormdb.InSavepoint(tx),
		).Run(ctx)
	}, gormdb.LockTimeout(50*time.Millisecond)).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))

	n, err := op.Run(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Run = %d, %v; want 1, nil", n, err)
	}
	if txRuns != 1 || stepRuns != 2 {
		t.Errorf("transaction ran %d times, step %d times; want 1 and 2", txRuns, stepRuns)
	}
	if len(retried) != 1 {
		t.Fatalf("%d retries; want 1", len(retried))
	}
	pe, ok := errors.AsType[*pgconn.PgError](retried[0].Err)
	if !ok || pe.Code != "55P03" || retried[0].Verdict != dbop.RetryStatement {
		t.Errorf("retried on %v (verdict %v); want 55P03 lock_not_available, retry-statement", retried[0].Err, retried[0].Verdict)
	}
	if diff := cmp.Diff([]string{"1:1", "2:0"}, queryRows(t, db, table)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// On MariaDB too a failed statement inside InSavepoint is rolled back to
// the savepoint (quoted with backquotes) and the transaction goes on: a
// duplicate key is NotRetryable, so final (invariant 7) and returned at
// once, and the caller handles it and commits the rest.
func TestLiveMySQLSavepointKeepsEarlierWork(t *testing.T) {
	db := liveMySQL(t, nil)
	ctx := t.Context()
	table := "gormdb_savepoint_my"
	createTable(t, db, table, "id int PRIMARY KEY, n int NOT NULL")
	exec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")

	stepRuns := 0
	var stepErr error
	_, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		if err := tx.Exec("INSERT INTO " + table + " VALUES (2, 0)").Error; err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			stepRuns++
			if err := tx.WithContext(ctx).Exec("INSERT INTO " + table + " VALUES (3, 0)").Error; err != nil {
				return 0, err
			}
			stepErr = tx.WithContext(ctx).Exec("INSERT INTO " + table + " VALUES (1, 0)").Error // duplicate
			return 0, stepErr
		})
		_, err := step.With(dbop.WithRetry(dbop.Constant(0)), gormdb.InSavepoint(tx, mariadb)).Run(ctx)
		// InSavepoint may wrap the error it undid in a transparent mark
		// (same text, unwrapping to it), so errors.Is, not ==.
		if !isMySQL(err, 1062) || !errors.Is(err, stepErr) || err.Error() != stepErr.Error() || !final(dbop.VerdictOf(err)) {
			t.Errorf("step = %v (verdict %v); want the 1062 the step returned, final", err, dbop.VerdictOf(err))
		}
		return 0, tx.Exec("INSERT INTO " + table + " VALUES (4, 0)").Error
	}, mariadb).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stepRuns != 1 {
		t.Errorf("step ran %d times; want 1", stepRuns)
	}
	// Row 3, inserted inside the savepoint, was rolled back with it.
	if diff := cmp.Diff([]string{"1:0", "2:0", "4:0"}, queryRows(t, db, table)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func isMySQL(err error, number uint16) bool {
	me, ok := errors.AsType[*mysql.MySQLError](err)
	return ok && me.Number == number
}
