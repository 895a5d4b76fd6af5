package sqldb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/internal/testdb"
)

// A retry inside InTx's function, with its context and a classifier,
// refuses the transaction's error (a real 40001 on PostgreSQL under
// REPEATABLE READ; BUSY_SNAPSHOT on SQLite), and the function swallows it
// and goes on. The retry dooms the transaction as it refuses: InTx rolls
// back instead of committing what the function did around the failed step,
// and the retry around InTx runs it all again, each write once. (MariaDB,
// which commits what follows a deadlock on its own, is
// TestLiveComposeMariaDBSwallowedRetriedDeadlock.)
func TestSwallowedRetriedTransactionErrorIsNeverCommitted(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		db := openPostgres(t)
		items := table(t, db, "sqldb_swallowed_items", "(id int PRIMARY KEY, n int NOT NULL)")
		log := table(t, db, "sqldb_swallowed_log", "(id serial PRIMARY KEY, k text NOT NULL)")
		mustExec(t, db, "INSERT INTO "+items+" VALUES (1, 0)")
		attempts := 0
		op := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
			attempts++
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+log+" (k) VALUES ('A')"); err != nil {
				return 0, err
			}
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT n FROM "+items+" WHERE id = 1").Scan(&n); err != nil {
				return 0, err
			}
			if attempts == 1 { // another writer after the snapshot: the UPDATE fails with 40001
				mustExec(t, db, "UPDATE "+items+" SET n = n + 10 WHERE id = 1")
			}
			step := dbop.Op[int](func(ctx context.Context) (int, error) {
				_, err := tx.ExecContext(ctx, "UPDATE "+items+" SET n = n + 1 WHERE id = 1")
				return 0, err
			})
			_, _ = step.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.ClassifyBy(classifiers.Postgres)).Run(ctx) // swallowed
			_, _ = tx.ExecContext(ctx, "INSERT INTO "+log+" (k) VALUES ('C')")                                                      // 25P02 after the 40001, ignored
			return attempts, nil
		}, sqldb.Isolation(sql.LevelRepeatableRead))
		_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
		if err != nil || attempts != 2 {
			t.Errorf("Run: %v after %d attempts; want success after 2", err, attempts)
		}
		if a, c, n := scalar[int](t, db, "SELECT count(*) FROM "+log+" WHERE k = 'A'"), scalar[int](t, db, "SELECT count(*) FROM "+log+" WHERE k = 'C'"), scalar[int](t, db, "SELECT n FROM "+items); a != 1 || c != 1 || n != 11 {
			t.Errorf("A %d times, C %d times, n = %d; want 1, 1, 11", a, c, n)
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		snapshot := dboptest.SQLiteBusySnapshot(t)
		db := openSQLite(t, testdb.SQLiteFile(t))
		mustExec(t, db, "CREATE TABLE sqldb_swallowed_log (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)")
		attempts := 0
		op := sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
			attempts++
			if _, err := tx.ExecContext(ctx, "INSERT INTO sqldb_swallowed_log (k) VALUES ('A')"); err != nil {
				return 0, err
			}
			step := dbop.Op[int](func(ctx context.Context) (int, error) {
				if attempts == 1 {
					return 0, snapshot
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_swallowed_log (k) VALUES ('step')")
				return 0, err
			})
			_, _ = step.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.ClassifyBy(classifiers.SQLite)).Run(ctx) // swallowed
			_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_swallowed_log (k) VALUES ('C')")
			return attempts, err
		})
		_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
		if err != nil || attempts != 2 {
			t.Errorf("Run: %v after %d attempts; want success after 2", err, attempts)
		}
		for k, want := range map[string]int{"A": 1, "step": 1, "C": 1} {
			if got := scalar[int](t, db, "SELECT count(*) FROM sqldb_swallowed_log WHERE k = ?", k); got != want {
				t.Errorf("%s written %d times, want %d", k, got, want)
			}
		}
	})
}
