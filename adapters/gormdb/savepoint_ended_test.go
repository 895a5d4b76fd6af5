package gormdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// errSavepointGone is MariaDB's answer to RELEASE or ROLLBACK TO of a
// savepoint that a deadlock (1213) took away with the whole transaction
// (docs/backends.md §3.2).
var errSavepointGone = &mysql.MySQLError{Number: 1305, SQLState: [5]byte{'4', '2', '0', '0', '0'}, Message: "SAVEPOINT dbop_sp_1 does not exist"}

// TestInSavepointFindingTransactionEndedIsAmbiguous checks a savepoint step
// that goes on after the server ended the transaction under it (a deadlock
// it did not return on MySQL and MariaDB, an interrupted write on SQLite):
// its later statements ran on their own, committed at once, and the
// savepoint went with the transaction. When RELEASE, after the step
// returned nil, or ROLLBACK TO, after it returned a statement-level
// error, answers that the savepoint does not exist, the outcome is
// Ambiguous and the transaction is not run again, which could apply those
// statements twice. The driver's answers are scripted.
func TestInSavepointFindingTransactionEndedIsAmbiguous(t *testing.T) {
	lockWait := &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded; try restarting transaction"}
	for _, tc := range []struct {
		name      string
		dialector string
		opts      []gormdb.SavepointOption
		txOpts    []gormdb.TxOption
		stepErr   error  // what the step's write returns
		failStmt  string // the savepoint statement that finds no savepoint
		answer    error
	}{
		{"MariaDB RELEASE", "mysql", []gormdb.SavepointOption{mariadb}, []gormdb.TxOption{mariadb}, nil, "RELEASE SAVEPOINT `dbop_sp_1`", errSavepointGone},
		{"MariaDB ROLLBACK TO", "mysql", []gormdb.SavepointOption{mariadb}, []gormdb.TxOption{mariadb}, lockWait, "ROLLBACK TO SAVEPOINT `dbop_sp_1`", errSavepointGone},
		{"SQLite RELEASE", "sqlite", nil, nil, nil, `RELEASE SAVEPOINT "dbop_sp_1"`, errors.New("SQL logic error: no such savepoint: dbop_sp_1 (1)")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, f := fakeGORM(t, tc.dialector, nil)
			if tc.stepErr != nil {
				f.failNext(writeC, tc.stepErr)
			}
			f.failNext(tc.failStmt, tc.answer)
			runs := 0
			_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				runs++
				step := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
					return struct{}{}, execIn(ctx, tx, writeC)
				})
				_, err := step.With(dbop.WithRetry(dbop.Constant(0)), gormdb.InSavepoint(tx, tc.opts...)).Run(ctx)
				return err
			}, tc.txOpts...).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
			log := strings.Join(f.Log(), "; ")
			if !strings.Contains(log, tc.failStmt) {
				t.Fatalf("%s never ran: the fault did not fire (log: %s)", tc.failStmt, log)
			}
			if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
				t.Errorf("Run = %v (%v), want ambiguous", err, v)
			}
			if !errors.Is(err, tc.answer) || !strings.Contains(err.Error(), "no longer exists") {
				t.Errorf("Run = %v, want the answer in it, and to say that the savepoint no longer exists", err)
			}
			if runs != 1 {
				t.Errorf("the transaction ran %d times, want 1 (log: %s)", runs, log)
			}
		})
	}
}
