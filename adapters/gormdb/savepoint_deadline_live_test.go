package gormdb_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
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
		open    func(*testing.T) *gorm.DB
		opts    []gormdb.SavepointOption
		txOpts  []gormdb.TxOption
		setting string // the session's limit after the step
		want    string
		fired   func(error) bool
	}{
		{"postgres", func(t *testing.T) *gorm.DB { return livePostgres(t, nil) }, nil, nil,
			"SELECT current_setting('statement_timeout')", "0",
			func(err error) bool { return pgCode(err) == "55P03" || pgCode(err) == "57014" }},
		{"mariadb", func(t *testing.T) *gorm.DB { return liveMySQL(t, nil) },
			[]gormdb.SavepointOption{gormdb.Dialect(mysqldb.MariaDB)}, []gormdb.TxOption{gormdb.Dialect(mysqldb.MariaDB)},
			"SELECT CAST(@@SESSION.max_statement_time AS CHAR)", "0.000000",
			func(err error) bool {
				me, ok := errors.AsType[*mysql.MySQLError](err)
				return ok && (me.Number == 1969 || me.Number == 1205)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			tbl := "gormdb_sp_deadline"
			createTable(t, db, tbl, "id int PRIMARY KEY, n int NOT NULL")
			exec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
			rival := db.Begin()
			if err := rival.Exec("UPDATE " + tbl + " SET n = n + 100 WHERE id = 2").Error; err != nil {
				t.Fatal(err)
			}
			released := make(chan struct{})
			go func() {
				defer close(released)
				time.Sleep(900 * time.Millisecond)
				rival.Rollback()
			}()

			var owners, steps atomic.Int32
			var retried []error
			var before, after string
			op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				owners.Add(1)
				if err := tx.Raw(c.setting).Row().Scan(&before); err != nil {
					return err
				}
				if err := tx.Exec("UPDATE " + tbl + " SET n = n + 1 WHERE id = 1").Error; err != nil {
					return err
				}
				n, err := dbop.Op[int64](func(ctx context.Context) (int64, error) {
					steps.Add(1)
					r := tx.WithContext(ctx).Exec("UPDATE " + tbl + " SET n = n + 1 WHERE id = 2")
					return r.RowsAffected, r.Error
				}).With(
					dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(20),
						dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) })),
					dbop.WithTimeout(150*time.Millisecond),
					gormdb.InSavepoint(tx, c.opts...),
				).Run(ctx)
				if err != nil {
					return err
				}
				if n != 1 {
					return fmt.Errorf("the step updated %d rows", n)
				}
				// On the transaction's connection: the step's limit was set back.
				return tx.Raw(c.setting).Row().Scan(&after)
			}, c.txOpts...)
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
			if got := queryRows(t, db, tbl); len(got) != 2 || got[0] != "1:1" || got[1] != "2:1" {
				t.Errorf("rows = %v, want [1:1 2:1]", got)
			}
		})
	}
}
