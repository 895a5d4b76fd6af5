package gormdb_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// When a dbop.HotSpot asks for its lock (internal/hotlock), InTx takes it
// before fn runs, as sqldb does: held by another process's transaction,
// the attempt waits for it and then commits on top of the holder's write,
// once. Under SERIALIZABLE on PostgreSQL with CreateHotSpotLocks's tables,
// and on MariaDB, the lock takes no snapshot and waits in place
// (docs/backends.md §1.14, §3.13); with PostgreSQL's advisory lock, where
// the tables are missing, that takes a new transaction after the wait
// (§1.13).
func TestHotSpotLockWaitsForAnotherProcess(t *testing.T) {
	for _, c := range []struct {
		name    string
		open    func(t *testing.T) *gorm.DB
		hold    func(key int64) (string, []any)
		opts    []gormdb.TxOption
		inPlace bool
	}{
		{"postgres-tables", func(t *testing.T) *gorm.DB { return postgresInSchema(t, "gormdb_hotlock_tables", true) },
			func(key int64) (string, []any) {
				return "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE", nil
			}, nil, true},
		{"postgres-advisory", func(t *testing.T) *gorm.DB { return postgresInSchema(t, "gormdb_hotlock_advisory", false) },
			func(key int64) (string, []any) { return "SELECT pg_advisory_xact_lock(?)", []any{key} }, nil, false},
		{"mariadb", mariadbWithHotLocks, func(key int64) (string, []any) {
			return "SELECT id FROM dbop_hotspot_locks WHERE id = ? FOR UPDATE", []any{key}
		},
			[]gormdb.TxOption{gormdb.Dialect(mysqldb.MariaDB)}, true},
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
			query, args := c.hold(key)
			exec(t, holder, query, args...)
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
			// the outcome below proves it waited: the advisory lock, tried
			// first, says so; a lock taken in place reports its time.
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
			if took, waited, inPlace := req.Outcome(); !took || waited == c.inPlace || inPlace != c.inPlace {
				t.Errorf("request outcome took=%v waited=%v inPlace=%v, want true, %v, %v", took, waited, inPlace, !c.inPlace, c.inPlace)
			}
			if d := req.LockTime(); c.inPlace && d < 200*time.Millisecond {
				t.Errorf("the lock statement reported taking %v, want most of the 300ms the lock was held", d)
			}
		})
	}
}

// postgresInSchema opens GORM on the test database with its connections in
// schema, which it creates empty, with CreateHotSpotLocks's tables when
// tables is set: tests of other packages share the database, and a lock
// table in their schema would change what their HotSpots take.
func postgresInSchema(t *testing.T, schema string, tables bool) *gorm.DB {
	t.Helper()
	admin := livePostgres(t, nil)
	exec(t, admin, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	exec(t, admin, "CREATE SCHEMA "+schema)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := admin.WithContext(ctx).Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE").Error; err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", testdb.PostgresEnv, err)
	}
	cc.RuntimeParams["search_path"] = schema
	db := openPostgres(t, cc, nil)
	if tables {
		if err := gormdb.CreateHotSpotLocks(t.Context(), db); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// CreateHotSpotLocks makes the tables the dialector's HotSpot locks take:
// PostgreSQL's sixteen, MySQL's one, none for SQLite; a dialector gormdb
// does not know is an error naming it, and a nil *gorm.DB one too.
func TestCreateHotSpotLocks(t *testing.T) {
	for _, c := range []struct {
		dialector string
		want      []string
		err       string
	}{
		{"postgres", hotlock.Create(true), ""},
		{"mysql", hotlock.Create(false), ""},
		{"sqlite", nil, ""},
		{"clickhouse", nil, `gormdb: CreateHotSpotLocks: the "clickhouse" dialector is not one whose locks a HotSpot takes (postgres, mysql)`},
	} {
		t.Run(c.dialector, func(t *testing.T) {
			db, f := fakeGORM(t, c.dialector, nil)
			f.Log()
			err := gormdb.CreateHotSpotLocks(t.Context(), db)
			if (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
			if diff := cmp.Diff(c.want, f.Log()); diff != "" {
				t.Errorf("statements (-want +got):\n%s", diff)
			}
		})
	}
	if err := gormdb.CreateHotSpotLocks(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "db is nil") {
		t.Errorf("nil db: %v", err)
	}
}

// mariadbWithHotLocks returns the live MariaDB through GORM, with
// mysqldb.CreateHotSpotLocks's table.
func mariadbWithHotLocks(t *testing.T) *gorm.DB {
	t.Helper()
	db := liveMySQL(t, nil)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	if err := mysqldb.CreateHotSpotLocks(t.Context(), sqlDB); err != nil {
		t.Fatal(err)
	}
	return db
}
