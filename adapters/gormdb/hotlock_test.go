package gormdb_test

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

// When a dbop.HotSpot asks for its lock (internal/hotlock), InTx takes it
// before fn runs, as sqldb does: held by another process's transaction,
// the attempt waits for it and then commits on top of the holder's write,
// once. Under SERIALIZABLE on PostgreSQL that takes a new transaction
// after the wait (docs/backends.md §1.13); on MariaDB the locking read
// takes no snapshot (§3.13).
func TestHotSpotLockWaitsForAnotherProcess(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(t *testing.T) *gorm.DB
		hold string
		opts []gormdb.TxOption
	}{
		{"postgres", func(t *testing.T) *gorm.DB { return livePostgres(t, nil) }, "SELECT pg_advisory_xact_lock(?)", nil},
		{"mariadb", func(t *testing.T) *gorm.DB {
			db := liveMySQL(t, nil)
			sqlDB, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			if err := mysqldb.CreateHotSpotLocks(t.Context(), sqlDB); err != nil {
				t.Fatal(err)
			}
			return db
		}, "SELECT id FROM dbop_hotspot_locks WHERE id = ? FOR UPDATE", []gormdb.TxOption{gormdb.Dialect(mysqldb.MariaDB)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			createTable(t, db, "gormdb_hotlock", "id int PRIMARY KEY, v int NOT NULL")
			exec(t, db, "INSERT INTO gormdb_hotlock VALUES (1, 0)")
			key := rand.Int64()
			if c.name == "mariadb" {
				exec(t, db, "INSERT IGNORE INTO dbop_hotspot_locks (id) VALUES (?)", key)
			}
			holder := db.Begin()
			if holder.Error != nil {
				t.Fatal(holder.Error)
			}
			defer holder.Rollback()
			exec(t, holder, c.hold, key)
			exec(t, holder, "UPDATE gormdb_hotlock SET v = v + 1 WHERE id = 1")

			req := &hotlock.Request{Key: key}
			done := make(chan error, 1)
			go func() {
				_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
					var v int
					if err := tx.Raw("SELECT v FROM gormdb_hotlock WHERE id = 1").Scan(&v).Error; err != nil {
						return err
					}
					return tx.Exec("UPDATE gormdb_hotlock SET v = ? WHERE id = 1", v+1).Error
				}, append(c.opts, gormdb.Isolation(sql.LevelSerializable))...).Run(hotlock.With(t.Context(), req))
				done <- err
			}()
			// The attempt begins and asks for the lock well within this;
			// took=waited=true below proves it waited.
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-done:
				t.Fatalf("the attempt ended while the lock was held: %v", err)
			default:
			}
			if err := holder.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the attempt that waited for the lock: %v", err)
			}
			var v int
			if err := db.Raw("SELECT v FROM gormdb_hotlock WHERE id = 1").Scan(&v).Error; err != nil {
				t.Fatal(err)
			}
			if v != 2 {
				t.Errorf("v = %d, want 2: the holder's write and the attempt's, each once", v)
			}
			// SERIALIZABLE: PostgreSQL begins again, MariaDB waits in place.
			if took, waited, inPlace := req.Outcome(); !took || !waited || inPlace != (c.name == "mariadb") {
				t.Errorf("request outcome took=%v waited=%v inPlace=%v, want true, true, %v", took, waited, inPlace, c.name == "mariadb")
			}
		})
	}
}
