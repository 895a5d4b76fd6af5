package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/jackc/pgx/v5/pgconn"
)

// Integration tests against the PostgreSQL of DBOP_TEST_POSTGRES through the
// pgx stdlib driver. adapters/pgxdb covers PostgreSQL in depth; these check
// the database/sql path.

// pgCode returns the SQLSTATE of the server error in err, or "".
func pgCode(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code
	}
	return ""
}

// A real deadlock (40P01) under InTx + WithRetry: the victim's whole
// transaction is retried and both land exactly once. A retry that follows
// at once can meet the winner again, before the winner has taken the row
// the victim released (PostgreSQL does not queue the woken waiter ahead of
// a newcomer): seen here under load, a second 40P01 for the same victim.
// The backoff leaves the winner time to commit, and the test asks for at
// least one retry, every one a 40P01.
func TestPostgresDeadlockRetried(t *testing.T) {
	// The server looks for deadlocks once a lock wait reaches
	// deadlock_timeout (1s by default); the test sets it lower for its own
	// sessions.
	db := openPostgres(t, "deadlock_timeout=50ms")
	tbl := table(t, db, "sqldb_pg_deadlock", "(id INT PRIMARY KEY, n INT NOT NULL)")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
	both := newBarrier(2)
	var mu sync.Mutex
	var retried []error

	increment := func(first, second int) dbop.Op[int] {
		attempts := 0
		return sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
			attempts++
			if _, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = $1", first); err != nil {
				return 0, err
			}
			if attempts == 1 {
				if err := both.wait(ctx); err != nil { // both hold their first row: a deadlock, forced
					return 0, dbop.Classify(err, dbop.NotRetryable)
				}
			}
			_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = $1", second)
			return attempts, err
		}).With(dbop.WithRetry(dbop.Constant(20*time.Millisecond), dbop.MaxAttempts(10), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
			mu.Lock()
			defer mu.Unlock()
			retried = append(retried, e.Err)
		})))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, rows := range [][2]int{{1, 2}, {2, 1}} {
		wg.Go(func() { _, errs[i] = increment(rows[0], rows[1]).Run(t.Context()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(retried) == 0 {
		t.Fatal("no retry: the forced deadlock did not happen")
	}
	for _, err := range retried {
		if pgCode(err) != "40P01" || dbop.VerdictOf(err) != dbop.RetryTransaction {
			t.Fatalf("retried %v, want only 40P01, retry-transaction", retried)
		}
	}
	for id := 1; id <= 2; id++ {
		if n := scalar[int](t, db, "SELECT n FROM "+tbl+" WHERE id = $1", id); n != 2 {
			t.Errorf("row %d: n = %d, want 2", id, n)
		}
	}
}

// SET LOCAL lock_timeout and statement_timeout fire (55P03, 57014 "statement
// timeout", both retry-statement) and die with the transaction: on a pool of
// one connection, the same backend shows its previous settings afterwards.
func TestPostgresSetLocalTimeoutsDoNotLeak(t *testing.T) {
	db := openPostgres(t)
	db.SetMaxOpenConns(1)
	other := openPostgres(t)
	tbl := table(t, db, "sqldb_pg_timeouts", "(id INT PRIMARY KEY, n INT NOT NULL)")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0)")

	pid := scalar[int](t, db, "SELECT pg_backend_pid()")
	lockBefore := scalar[string](t, db, "SHOW lock_timeout")
	stmtBefore := scalar[string](t, db, "SHOW statement_timeout")
	checkRestored := func(t *testing.T) {
		t.Helper()
		if got := scalar[int](t, db, "SELECT pg_backend_pid()"); got != pid {
			t.Fatalf("backend %d, want %d: the connection was replaced, so this proves nothing", got, pid)
		}
		lock, stmt := scalar[string](t, db, "SHOW lock_timeout"), scalar[string](t, db, "SHOW statement_timeout")
		if lock != lockBefore || stmt != stmtBefore {
			t.Errorf("after the operation lock_timeout=%s statement_timeout=%s, want %s and %s", lock, stmt, lockBefore, stmtBefore)
		}
	}

	t.Run("lock_timeout", func(t *testing.T) {
		blocker := conn(t, other)
		mustExec(t, blocker, "BEGIN")
		mustExec(t, blocker, "UPDATE "+tbl+" SET n = 100 WHERE id = 1")
		defer mustExec(t, blocker, "ROLLBACK")
		var inside string
		_, err := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
			if err := tx.QueryRowContext(ctx, "SHOW lock_timeout").Scan(&inside); err != nil {
				return 0, err
			}
			_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = 1")
			return 0, err
		}, sqldb.LockTimeout(100*time.Millisecond), sqldb.StatementTimeout(5*time.Second)).Run(t.Context())
		if pgCode(err) != "55P03" || dbop.VerdictOf(err) != dbop.RetryStatement {
			t.Fatalf("err = %v (verdict %v), want 55P03, retry-statement", err, dbop.VerdictOf(err))
		}
		if inside != "100ms" {
			t.Errorf("lock_timeout in the transaction = %s, want 100ms", inside)
		}
		checkRestored(t)
	})

	t.Run("statement_timeout", func(t *testing.T) {
		var inside string
		_, err := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
			if err := tx.QueryRowContext(ctx, "SHOW statement_timeout").Scan(&inside); err != nil {
				return 0, err
			}
			_, err := tx.ExecContext(ctx, "SELECT pg_sleep(2)")
			return 0, err
		}, sqldb.StatementTimeout(100*time.Millisecond)).Run(t.Context())
		if pgCode(err) != "57014" || dbop.VerdictOf(err) != dbop.RetryStatement {
			t.Fatalf("err = %v (verdict %v), want 57014 statement timeout, retry-statement", err, dbop.VerdictOf(err))
		}
		if inside != "100ms" {
			t.Errorf("statement_timeout in the transaction = %s, want 100ms", inside)
		}
		checkRestored(t)
	})
}

// A lock timeout at a savepoint is retried there; the transaction's earlier
// row survives. Savepoint names are quoted for PostgreSQL.
func TestPostgresLockTimeoutRetriedAtSavepoint(t *testing.T) {
	db := openPostgres(t)
	items := table(t, db, "sqldb_pg_savepoint_items", "(id INT PRIMARY KEY, n INT NOT NULL)")
	log := table(t, db, "sqldb_pg_savepoint_log", "(k TEXT PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO "+items+" VALUES (1, 0)")
	blocker := conn(t, db)
	mustExec(t, blocker, "BEGIN")
	mustExec(t, blocker, "UPDATE "+items+" SET n = 100 WHERE id = 1")

	var outerRuns, stepRuns int
	var retried []error
	op := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int64, error) {
		outerRuns++
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+log+" VALUES ('earlier')"); err != nil {
			return 0, err
		}
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			stepRuns++
			res, err := tx.ExecContext(ctx, "UPDATE "+items+" SET n = n + 1 WHERE id = 1")
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		})
		return step.With(
			dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				retried = append(retried, e.Err)
				mustExec(t, blocker, "ROLLBACK") // the lock holder gives up before the retry
			})),
			sqldb.InSavepoint(tx, sqldb.Postgres),
		).Run(ctx)
	}, sqldb.LockTimeout(100*time.Millisecond))
	n, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))).Run(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Run = %d, %v; want 1, nil", n, err)
	}
	if len(retried) != 1 || pgCode(retried[0]) != "55P03" || dbop.VerdictOf(retried[0]) != dbop.RetryStatement {
		t.Fatalf("retried %v, want one 55P03, retry-statement", retried)
	}
	if outerRuns != 1 || stepRuns != 2 {
		t.Errorf("transaction ran %d times, step %d times; want 1 and 2", outerRuns, stepRuns)
	}
	if got := scalar[int](t, db, "SELECT COUNT(*) FROM "+log); got != 1 {
		t.Errorf("%d earlier rows, want 1", got)
	}
	if got := scalar[int](t, db, "SELECT n FROM "+items+" WHERE id = 1"); got != 1 {
		t.Errorf("n = %d, want 1", got)
	}
}
