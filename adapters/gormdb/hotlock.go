package gormdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/scopes"
	"gorm.io/gorm"
)

// coordinated begins an attempt's transaction with b.beginOnce and, when a
// dbop.HotSpot asks for it (internal/hotlock), takes the HotSpot's lock in
// it before fn runs, as sqldb does: on PostgreSQL a transaction-scoped
// advisory lock, after whose wait a REPEATABLE READ or SERIALIZABLE
// transaction begins again (docs/backends.md §1.13); on MySQL and MariaDB
// a row of mysqldb.CreateHotSpotLocks's table locked FOR UPDATE (§3.13).
// Where the server refuses the lock (no function, no table), transactions
// go on uncoordinated, and b remembers that. SQLite and dialectors this
// package does not know are never coordinated.
func (b *beginner) coordinated(ctx context.Context, o scopes.BeginOptions) (*txn, error) {
	begin := func() (*txn, error) {
		t, _, err := b.beginOnce(ctx, o, false)
		return t, err
	}
	if !(b.family == sqldialect.Postgres || b.backquotes()) || o.ReadOnly {
		return begin()
	}
	return hotlock.Begin(ctx, hotlock.Scope[*txn]{
		Begin:           begin,
		BeginForLock:    func() (*txn, hotlock.Limits, error) { return b.beginOnce(ctx, o, true) },
		Tx:              func(t *txn) hotlock.Tx { return hotlock.SQL(rawConnPool(t.db)) },
		Rollback:        func(ctx context.Context, t *txn) error { return t.Rollback(ctx) },
		RollbackTimeout: b.rollbackTimeout,
		State:           &b.locks,
		Postgres:        b.family == sqldialect.Postgres,
		LockTimeout:     func() time.Duration { return resolve.LockLimit(ctx, b.lock) },
		Name:            "gormdb",
	})
}

// CreateHotSpotLocks creates the tables whose locks dbop.HotSpot's
// transactions take, if they do not exist, through db: on the postgres
// dialector the tables dbop_hotspot_lock_0 to dbop_hotspot_lock_15 (see
// sqldb.CreateHotSpotLocks), on the mysql dialector the table
// dbop_hotspot_locks (MySQL and MariaDB alike), on the sqlite dialector
// nothing. Run it once, as part of your migrations, where a HotSpot runs.
// A dialector this package does not know is an error naming it.
func CreateHotSpotLocks(ctx context.Context, db *gorm.DB) error {
	if db == nil {
		return errors.New("gormdb: CreateHotSpotLocks: db is nil")
	}
	var postgres bool
	switch name := dialectorName(db); name {
	case postgresDialector:
		postgres = true
	case mysqlDialector:
	case sqliteDialector:
		return nil
	default:
		return fmt.Errorf("gormdb: CreateHotSpotLocks: the %q dialector is not one whose locks a HotSpot takes (postgres, mysql)", name)
	}
	for _, stmt := range hotlock.Create(postgres) {
		if err := db.WithContext(ctx).Exec(stmt).Error; err != nil {
			return fmt.Errorf("gormdb: CreateHotSpotLocks: %w", err)
		}
	}
	return nil
}
