package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/scopes"
)

// coordinated begins an attempt's transaction with b.beginOnce and, on
// PostgreSQL when a dbop.HotSpot asks for it (hotlock), takes the
// HotSpot's transaction-scoped advisory lock in it before fn runs, so that
// the attempts of every process running that HotSpot write the hot rows
// one at a time (docs/contention.md, "Across processes").
//
// The lock is tried first without waiting. When another transaction holds
// it, the attempt waits for it in this transaction, bounded by the
// attempt's limits like any statement, and then, unless the transaction is
// READ COMMITTED, rolls back and begins a new one that tries again: a
// REPEATABLE READ or SERIALIZABLE transaction took its snapshot when the
// try ran, before the holder committed, and its writes to the holder's
// rows would fail with 40001 (docs/backends.md §1.13). A server without
// the function makes the transaction go on uncoordinated, and b remembers
// that.
//
// MySQL and MariaDB have no transaction-scoped advisory lock: there the
// lock is a row of mysqldb.CreateHotSpotLocks's table, locked with
// SELECT … FOR UPDATE, which waits in place at every isolation level
// (docs/backends.md §3.13). Without the table, transactions go on
// uncoordinated. SQLite runs one writer at a time already.
func (b *begin) coordinated(ctx context.Context, o scopes.BeginOptions) (*txn, error) {
	begin := func() (*txn, error) {
		t, _, err := b.beginOnce(ctx, o, false)
		return t, err
	}
	if b.family == sqldialect.SQLite || o.ReadOnly || b.readOnly {
		return begin()
	}
	s := hotlock.Scope[*txn]{
		Begin:           begin,
		Tx:              func(t *txn) hotlock.Tx { return hotlock.SQL(t.tx) },
		Rollback:        func(ctx context.Context, t *txn) error { return t.Rollback(ctx) },
		RollbackTimeout: b.restoreTO,
		State:           &b.locks,
		Postgres:        b.family == sqldialect.Postgres,
		LockTimeout:     func() time.Duration { return resolve.LockLimit(ctx, b.timeouts.lock) },
		Name:            "sqldb",
	}
	// The attempt's limits travel in the LOCK's round trip: before the
	// lock's statements, or the SELECT after them under REPEATABLE READ
	// or SERIALIZABLE (beginOnce).
	s.BeginForLock = func() (*txn, hotlock.Limits, error) { return b.beginOnce(ctx, o, true) }
	return hotlock.Begin(ctx, s)
}

// PostgresHotSpotLockTables returns the names of the tables
// [CreateHotSpotLocks] creates on PostgreSQL, for a migration that grants
// a role the right to lock them (GRANT UPDATE ON … TO …) or drops them.
func PostgresHotSpotLockTables() []string { return hotlock.PostgresTableNames() }

// CreateHotSpotLocks creates the tables whose locks dbop.HotSpot's
// transactions take, if they do not exist, on the server of d's family,
// through db (a *sql.DB, *sql.Conn or *sql.Tx). Run it once, as part of
// your migrations, where a HotSpot runs on PostgreSQL, MySQL or MariaDB.
//
//   - PostgreSQL: the tables dbop_hotspot_lock_0 to dbop_hotspot_lock_15,
//     in the first schema of the search_path, as pgxdb.CreateHotSpotLocks
//     makes them (its documentation says how they are used). Without
//     them a HotSpot takes a transaction-scoped advisory lock, which waits
//     in place only under READ COMMITTED (docs/backends.md §1.13, §1.14).
//   - MySQL and MariaDB: the table dbop_hotspot_locks, as
//     mysqldb.CreateHotSpotLocks makes it. Without it nothing orders the
//     processes (§3.13).
//   - SQLite: nothing; it runs one writer at a time already.
//
// It panics, as InTx does, when d is not a usable Dialect.
func CreateHotSpotLocks(ctx context.Context, db interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}, d Dialect) error {
	mustBeValid(d, "CreateHotSpotLocks")
	if d.Family == sqldialect.SQLite {
		return nil
	}
	if db == nil {
		return errors.New("sqldb: CreateHotSpotLocks: db is nil")
	}
	for _, stmt := range hotlock.Create(d.Family == sqldialect.Postgres) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sqldb: CreateHotSpotLocks (%s): %w", d.Name, err)
		}
	}
	return nil
}
