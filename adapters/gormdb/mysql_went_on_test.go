package gormdb_test

import (
	"context"
	"database/sql/driver"
	"regexp"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// The MySQL family on the fake driver: a scripted 1213 in GORM's nested
// tx.Transaction, after which the function writes C and returns the 1213.
// A C that was sent, failed or not, ran on its own (docs/backends.md §3.2):
// Run is Ambiguous after one run, with no COMMIT. A C whose error says it
// was never sent (driver.ErrBadConn: the connection was lost at the error
// that ended the transaction) did not run, and neither did GORM's ROLLBACK
// TO SAVEPOINT write anything: the retry around InTx runs the transaction
// again, which commits.
func TestMySQLDeadlockReturnedAfterGoingOnOnTheFakeDriver(t *testing.T) {
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found (scripted)"}
	savepoint := regexp.MustCompile(`SAVEPOINT sp[0-9]+$`)
	for _, tc := range []struct {
		name      string
		cErr      error // C's scripted error
		ambiguous bool
	}{
		{"C sent", nil, true},
		{"C sent and failed", errScripted, true},
		{"C never sent", driver.ErrBadConn, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, f := fakeGORM(t, "mysql", nil)
			f.failNext("UPDATE step", deadlock)
			if tc.cErr != nil {
				f.failNext(writeC, tc.cErr)
			}
			runs := 0
			var nested, retried []error
			_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				runs++
				if err := execIn(ctx, tx, writeA); err != nil {
					return err
				}
				err := tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
					return tx2.Exec("UPDATE step").Error
				})
				if err != nil {
					nested = append(nested, err)
				}
				_ = execIn(ctx, tx, writeC) // best effort
				return err
			}, mariadb).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
				dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) }))).Run(t.Context())
			if len(nested) != 1 || !isMySQL(nested[0], 1213) {
				t.Fatalf("the nested transaction failed with %v, want the scripted 1213 once: the fault did not fire", nested)
			}
			log := f.Log()
			for i, s := range log {
				log[i] = savepoint.ReplaceAllString(s, "SAVEPOINT sp")
			}
			first := []string{"BEGIN", writeA, "SAVEPOINT sp", "UPDATE step", "ROLLBACK TO SAVEPOINT sp", writeC, "ROLLBACK"}
			if tc.ambiguous {
				if v := dbop.VerdictOf(err); v != dbop.Ambiguous || !isMySQL(err, 1213) {
					t.Errorf("Run = %v (%v), want ambiguous, with the 1213 in it", err, v)
				}
				if runs != 1 || len(retried) != 0 {
					t.Errorf("the function ran %d times, the retry around InTx retried %v; want once, nothing", runs, retried)
				}
				checkLog(t, first, log)
				return
			}
			if err != nil || runs != 2 || len(retried) != 1 || !isMySQL(retried[0], 1213) || dbop.VerdictOf(retried[0]) != dbop.RetryTransaction {
				t.Errorf("Run = %v after %d runs, retried %v; want success after 2, the 1213 retried", err, runs, retried)
			}
			checkLog(t, append(first, "BEGIN", writeA, "SAVEPOINT sp", "UPDATE step", writeC, "COMMIT"), log)
		})
	}
}
