package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// A per-attempt dbop.WithTimeout between the retry and InSavepoint, while
// a rival transaction holds the step's row for longer than the timeout:
// InSavepoint sets server limits from the attempt's deadline
// (statement_timeout and lock_timeout on PostgreSQL, max_statement_time on
// MariaDB), so the server ends the lock wait, the step is rolled back to
// its savepoint and retried in place once the rival lets go, and the
// transaction runs once. Without them the deadline fired during the lock
// wait, the driver closed the connection, and the whole transaction ran
// again (found by a review).
func TestSavepointStepDeadlineBecomesServerLimits(t *testing.T) {
	for _, c := range []struct {
		name    string
		d       sqldb.Dialect
		open    func(testing.TB) *sql.DB
		setting string // the session's limit after the step
		want    string
		fired   func(error) bool
	}{
		{"postgres", sqldb.Postgres, func(t testing.TB) *sql.DB { return openPostgres(t) },
			"SELECT current_setting('statement_timeout')", "0",
			func(err error) bool { return pgCode(err) == "55P03" || pgCode(err) == "57014" }},
		{"mariadb", mysqldb.MariaDB, openMariaDB,
			"SELECT @@SESSION.max_statement_time", "0",
			func(err error) bool { n := mysqlNumber(err); return n == 1969 || n == 1205 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			tbl := table(t, db, "sqldb_sp_deadline", "(id int PRIMARY KEY, v int NOT NULL)")
			mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
			rival := conn(t, db)
			mustExec(t, rival, "BEGIN")
			mustExec(t, rival, "UPDATE "+tbl+" SET v = v + 100 WHERE id = 2")
			released := make(chan struct{})
			go func() {
				defer close(released)
				time.Sleep(1500 * time.Millisecond)
				_, _ = rival.ExecContext(context.Background(), "ROLLBACK")
			}()

			var owners, steps atomic.Int32
			var retried []error
			var before, after string
			op := sqldb.Do(db, c.d, func(ctx context.Context, tx *sql.Tx) error {
				owners.Add(1)
				if err := tx.QueryRowContext(ctx, c.setting).Scan(&before); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1"); err != nil {
					return err
				}
				n, err := dbop.Op[int64](func(ctx context.Context) (int64, error) {
					steps.Add(1)
					res, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 2")
					if err != nil {
						return 0, err
					}
					return res.RowsAffected()
				}).With(
					dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(20),
						dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) })),
					// 300 ms: the server's limit is the deadline less 10 %,
					// and on a loaded machine MariaDB's max_statement_time
					// can end a statement 15 ms late (seen once under the
					// full race suite), after the client's deadline.
					dbop.WithTimeout(300*time.Millisecond),
					sqldb.InSavepoint(tx, c.d),
				).Run(ctx)
				if err != nil {
					return err
				}
				if n != 1 {
					return fmt.Errorf("the step updated %d rows", n)
				}
				// On the transaction's connection: the step's limit was set back.
				return tx.QueryRowContext(ctx, c.setting).Scan(&after)
			})
			_, err := op.With(dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(3))).Run(t.Context())
			<-released
			if err != nil {
				t.Fatalf("Run: %v (owners %d, steps %d, retried on %v)", err, owners.Load(), steps.Load(), retried)
			}
			if owners.Load() != 1 {
				t.Errorf("the owner ran %d times, want once: the transaction was lost", owners.Load())
			}
			// The fault fired: attempts waited for the rival's lock and the
			// server ended each wait before the deadline.
			if len(retried) == 0 {
				t.Error("no attempt failed: the rival did not hold the row")
			}
			for _, e := range retried {
				if !c.fired(e) {
					t.Errorf("retried on %v; want the server's timeout", e)
				}
			}
			if int(steps.Load()) != len(retried)+1 {
				t.Errorf("the step ran %d times for %d retries", steps.Load(), len(retried))
			}
			if after != c.want || after != before {
				t.Errorf("%s after the step = %q, before it %q, want %q", c.setting, after, before, c.want)
			}
			if v1, v2 := scalar[int](t, db, "SELECT v FROM "+tbl+" WHERE id = 1"), scalar[int](t, db, "SELECT v FROM "+tbl+" WHERE id = 2"); v1 != 1 || v2 != 1 {
				t.Errorf("v1 = %d, v2 = %d; want 1, 1", v1, v2)
			}
		})
	}
}
