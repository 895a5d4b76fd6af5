package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/go-sql-driver/mysql"
)

// TestInSavepointStepGoingOnAfterDeadlockIsAmbiguousMariaDB checks a
// savepoint step that reads rows FOR UPDATE and, as much code does, loops
// over them without checking rows.Err(). MariaDB delivers a deadlock (1213)
// after the first rows, which ends the whole transaction and its
// savepoints (docs/backends.md §3.2); the step then inserts a row, which
// runs on its own and is committed at once, and returns nil. The scope's
// RELEASE SAVEPOINT fails with 1305: the transaction ended under a step
// that went on, so the outcome is Ambiguous and the transaction is not run
// again, which would insert the row a second time.
func TestInSavepointStepGoingOnAfterDeadlockIsAmbiguousMariaDB(t *testing.T) {
	db := openMariaDB(t)
	items := table(t, db, mdbTable("sp_ended_items"), "(id INT PRIMARY KEY, n INT NOT NULL, pad VARCHAR(255) NOT NULL) ENGINE=InnoDB")
	logt := table(t, db, mdbTable("sp_ended_log"), "(id INT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(20) NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+items+" SELECT seq, 0, REPEAT('x', 255) FROM seq_1_to_300")
	heavy := conn(t, db)
	mustExec(t, heavy, "BEGIN")
	// The heavier transaction: InnoDB picks the lighter one as the victim.
	mustExec(t, heavy, "INSERT INTO "+items+" SELECT seq, 0, 'h' FROM seq_10000_to_12000")
	mustExec(t, heavy, "UPDATE "+items+" SET n = n + 10 WHERE id = 300")
	heavyID := scalar[int64](t, heavy, "SELECT CONNECTION_ID()")
	heavyDone := false
	t.Cleanup(func() {
		if !heavyDone {
			_, _ = db.ExecContext(context.Background(), fmt.Sprintf("KILL %d", heavyID))
		}
	})

	myID := make(chan int64, 1)
	runs, stepRuns := 0, 0
	var readCounts []int
	var readErrs []error
	done := make(chan error, 1)
	go func() {
		_, err := sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
			runs++
			step := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
				stepRuns++
				if stepRuns == 1 {
					var id int64
					if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
						return struct{}{}, err
					}
					myID <- id
				}
				rows, err := tx.QueryContext(ctx, "SELECT id, pad FROM "+items+" WHERE id <= 300 ORDER BY id FOR UPDATE")
				if err != nil {
					return struct{}{}, err
				}
				count := 0
				for rows.Next() {
					count++
				}
				readErrs = append(readErrs, rows.Err()) // recorded for the test; the step ignores it
				rows.Close()
				readCounts = append(readCounts, count)
				_, err = tx.ExecContext(ctx, "INSERT INTO "+logt+" (k) VALUES ('after-read')")
				return struct{}{}, err
			})
			_, err := step.With(dbop.WithRetry(dbop.Constant(0)), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
			return err
		}).With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
		done <- err
	}()
	id := <-myID
	// The step's read is stuck at row 300: waiting for its lock (the read
	// does not always show in INNODB_TRX, so the processlist tells).
	eventually(t, "the step waits for row 300", func() bool {
		var n int
		err := db.QueryRowContext(context.Background(),
			"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE '%FOR UPDATE' AND TIME_MS >= 300", id).Scan(&n)
		return err == nil && n == 1
	})
	if _, err := heavy.ExecContext(context.Background(), "UPDATE "+items+" SET n = n + 10 WHERE id = 1"); err != nil {
		t.Fatalf("the heavy transaction was the victim: %v", err)
	}
	mustExec(t, heavy, "COMMIT")
	heavyDone = true
	err := <-done
	logged := scalar[int](t, db, "SELECT COUNT(*) FROM "+logt)
	t.Logf("Run: %v (verdict %v); transaction runs %d, step runs %d; rows read %v; log rows committed %d",
		err, dbop.VerdictOf(err), runs, stepRuns, readCounts, logged)

	// The fault fired: the read was cut short by a deadlock.
	if len(readErrs) == 0 {
		t.Fatal("the step never read")
	}
	var me *mysql.MySQLError
	if !errors.As(readErrs[0], &me) || me.Number != 1213 {
		t.Fatalf("the read ended with %v, want a deadlock (1213)", readErrs[0])
	}
	if readCounts[0] >= 300 {
		t.Fatalf("the read returned all %d rows despite the deadlock", readCounts[0])
	}
	if runs != 1 || stepRuns != 1 {
		t.Errorf("transaction runs %d, step runs %d: want 1 and 1 (running again could insert twice)", runs, stepRuns)
	}
	if logged != 1 {
		t.Errorf("log rows committed %d, want 1 (the step's INSERT, run on its own after the deadlock)", logged)
	}
	if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
		t.Fatalf("verdict %v of %v, want Ambiguous", v, err)
	}
	if !errors.As(err, &me) || me.Number != 1305 {
		t.Errorf("error %v does not reach the RELEASE's 1305", err)
	}
	if !strings.Contains(err.Error(), "no longer exists") {
		t.Errorf("error %q does not say that the savepoint no longer exists", err)
	}
}
