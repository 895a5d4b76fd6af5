package gormdb_test

// A wait for a dbop.HotSpot's lock that the caller's context ends says
// nothing of the server: the operation takes the lock again afterwards
// (internal/hotlock's missing).

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"gorm.io/gorm"
)

func TestHotLockCancelledWaitKeepsTheLock(t *testing.T) {
	db := mariadbWithHotLocks(t)
	createTable(t, db, "gormdb_hlc_hot", "id int PRIMARY KEY, v int NOT NULL")
	exec(t, db, "INSERT INTO gormdb_hlc_hot VALUES (1, 0)")
	key := rand.Int64()
	exec(t, db, "INSERT IGNORE INTO dbop_hotspot_locks (id) VALUES (?)", key)
	op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (struct{}, error) {
		return struct{}{}, tx.Exec("UPDATE gormdb_hlc_hot SET v = v + 1 WHERE id = 1").Error
	}, gormdb.Dialect(mysqldb.MariaDB))
	sqlDB, _ := db.DB()
	hold := func() *sql.Tx {
		holder, err := sqlDB.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := holder.ExecContext(t.Context(), "SELECT id FROM dbop_hotspot_locks WHERE id = ? FOR UPDATE", key); err != nil {
			t.Fatal(err)
		}
		return holder
	}
	holder := hold()
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := op.Run(hotlock.With(ctx, &hotlock.Request{Key: key}))
	if err == nil {
		t.Fatal("the run cancelled while another process held the lock succeeded: it did not wait for the lock")
	}
	holder.Rollback()

	req := &hotlock.Request{Key: key}
	if _, err := op.Run(hotlock.With(t.Context(), req)); err != nil {
		t.Fatal(err)
	}
	if took, _, _ := req.Outcome(); !took {
		t.Errorf("after one cancelled wait the operation no longer takes the HotSpot's lock")
	}
}
