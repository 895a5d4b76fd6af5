package gormdb_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// boundSetup returns a *gorm.DB of one connection in schema, with the lock
// tables, and a function that locks the lock table of a key for 3s from
// another connection (or until the test ends).
func boundSetup(t *testing.T, schema string) (*gorm.DB, func(key int64)) {
	t.Helper()
	admin := postgresInSchema(t, schema, true)
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", testdb.PostgresEnv, err)
	}
	cc.RuntimeParams["search_path"] = schema
	db := openPostgres(t, cc, nil)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	return db, func(key int64) {
		holder := admin.Begin()
		if holder.Error != nil {
			t.Fatal(holder.Error)
		}
		exec(t, holder, "LOCK TABLE "+hotlock.PostgresTable(key)+" IN EXCLUSIVE MODE")
		timer := time.AfterFunc(3*time.Second, func() { holder.Rollback() })
		t.Cleanup(func() {
			if timer.Stop() {
				holder.Rollback()
			}
		})
	}
}

// backendPID returns the server process of db's connection.
func backendPID(t *testing.T, db *gorm.DB) int {
	t.Helper()
	var pid int
	if err := db.Raw("SELECT pg_backend_pid()").Scan(&pid).Error; err != nil {
		t.Fatal(err)
	}
	return pid
}

// Under READ COMMITTED, and with no isolation given (the server's default),
// the SELECT of the limits derived from a deadline precedes the HotSpot's
// LOCK, in the LOCK's round trip, so the server bounds the LOCK's wait:
// when another process holds the lock longer than the deadline allows, the
// server ends the wait with 57014 or 55P03 before the deadline, the error
// is retried, and the connection survives (docs/backends.md §1.7, §1.14).
// A deadline that ended the wait on the client would make pgx close the
// connection.
func TestHotSpotLockBoundedByTheDeadline(t *testing.T) {
	db, hold := boundSetup(t, "gormdb_hotlock_bound")
	for _, iso := range []sql.IsolationLevel{sql.LevelDefault, sql.LevelReadCommitted} {
		t.Run(iso.String(), func(t *testing.T) {
			pid := backendPID(t, db)
			key := rand.Int64()
			hold(key)
			ctx, cancel := context.WithTimeout(hotlock.With(context.Background(), &hotlock.Request{Key: key}), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := gormdb.Do(db, func(context.Context, *gorm.DB) error { return nil }, gormdb.Isolation(iso)).Run(ctx)
			took := time.Since(start)
			t.Logf("after %v: %v (verdict %v)", took.Round(time.Millisecond), err, dbop.VerdictOf(err))
			if code := pgCode(err); code != "57014" && code != "55P03" {
				t.Errorf("got %v (SQLSTATE %q), want the server's statement or lock timeout", err, code)
			}
			if took >= 500*time.Millisecond {
				t.Errorf("the wait ended after %v, not before the deadline (500ms)", took)
			}
			if v := dbop.VerdictOf(err); !v.Retryable() {
				t.Errorf("verdict %v, want a retryable one", v)
			}
			if got := backendPID(t, db); got != pid {
				t.Errorf("the pool's one connection is backend %d, was %d: the attempt's connection was closed", got, pid)
			}
		})
	}
}

// LockTimeout bounds the HotSpot's LOCK, with no deadline, at every
// isolation level: it is sent as SET LOCAL before the LOCK, in its round
// trip, where it takes no snapshot (docs/backends.md §1.14).
func TestHotSpotLockBoundedByLockTimeout(t *testing.T) {
	db, hold := boundSetup(t, "gormdb_hotlock_bound_given")
	for _, iso := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelSerializable} {
		t.Run(iso.String(), func(t *testing.T) {
			key := rand.Int64()
			hold(key)
			ctx := hotlock.With(t.Context(), &hotlock.Request{Key: key})
			start := time.Now()
			_, err := gormdb.Do(db, func(context.Context, *gorm.DB) error { return nil },
				gormdb.Isolation(iso), gormdb.LockTimeout(300*time.Millisecond)).Run(ctx)
			took := time.Since(start)
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
			if code := pgCode(err); code != "55P03" {
				t.Errorf("got %v (SQLSTATE %q), want the lock timeout given (55P03)", err, code)
			}
			if took > time.Second {
				t.Errorf("the wait ended after %v, not about LockTimeout's 300ms", took)
			}
		})
	}
}
