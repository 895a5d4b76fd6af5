package sqldb_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// TestHotLockKilledWaitKeepsTheLock: an attempt waits for the HotSpot's
// lock row another process holds; a DBA's (or pt-kill's) KILL QUERY ends
// the wait with 1317, the MySQL analogue of PostgreSQL's 57014 cancel.
// The killed attempt fails (it must not go on without the lock while the
// other process holds it), and the server still has the lock table: later
// runs take the lock.
func TestHotLockKilledWaitKeepsTheLock(t *testing.T) {
	db := openMariaDB(t)
	if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
		t.Fatal(err)
	}
	table(t, db, "sqldb_hlk_hot", "(id int PRIMARY KEY, v int NOT NULL)")
	mustExec(t, db, "INSERT INTO sqldb_hlk_hot VALUES (1, 0)")
	key := rand.Int64()
	mustExec(t, db, "INSERT IGNORE INTO dbop_hotspot_locks (id) VALUES (?)", key)
	var waiterID int64
	op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
		_, err := tx.ExecContext(ctx, "UPDATE sqldb_hlk_hot SET v = v + 1 WHERE id = 1")
		return struct{}{}, err
	})
	hold := func() *sql.Tx {
		h, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, h, "SELECT id FROM dbop_hotspot_locks WHERE id = ? FOR UPDATE", key)
		return h
	}
	req := &hotlock.Request{Key: key}
	if _, err := op.Run(hotlock.With(t.Context(), req)); err != nil {
		t.Fatal(err)
	}
	if took, _, _ := req.Outcome(); !took {
		t.Fatal("first run did not take the lock")
	}
	holder := hold()
	done := make(chan error, 1)
	go func() {
		_, err := op.Run(hotlock.With(t.Context(), &hotlock.Request{Key: key}))
		done <- err
	}()
	// find the waiter and KILL QUERY it
	deadline := time.Now().Add(5 * time.Second)
	for waiterID == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		_ = db.QueryRowContext(t.Context(), "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT id FROM dbop_hotspot_locks WHERE id = % FOR UPDATE' AND id <> CONNECTION_ID() AND state <> '' LIMIT 1").Scan(&waiterID)
	}
	if waiterID == 0 {
		holder.Rollback()
		t.Fatal("no waiter found")
	}
	mustExec(t, db, "KILL QUERY ?", waiterID)
	err := <-done
	holder.Rollback()
	if err == nil {
		t.Fatal("the run whose wait for the lock was killed succeeded: it went on without the lock another process held")
	}

	req = &hotlock.Request{Key: key}
	if _, err := op.Run(hotlock.With(t.Context(), req)); err != nil {
		t.Fatal(err)
	}
	if took, _, _ := req.Outcome(); !took {
		t.Errorf("after one KILL QUERY of a wait, the operation no longer takes the HotSpot's lock (1317 taken for a missing lock table)")
	}
}
