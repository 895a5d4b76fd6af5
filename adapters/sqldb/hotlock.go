package sqldb

import (
	"context"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
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
	begin := func() (*txn, error) { return b.beginOnce(ctx, o) }
	if b.family == sqldialect.SQLite || o.ReadOnly || b.readOnly {
		return begin()
	}
	return hotlock.Begin(ctx, hotlock.Scope[*txn]{
		Begin:           begin,
		Tx:              func(t *txn) hotlock.Tx { return hotlock.SQL(t.tx) },
		Rollback:        func(ctx context.Context, t *txn) error { return t.Rollback(ctx) },
		RollbackTimeout: b.restoreTO,
		Retryable:       func(err error) bool { return dbop.VerdictOf(b.classify.Classify(err)).Retryable() },
		Off:             &b.uncoordinated,
		Postgres:        b.family == sqldialect.Postgres,
		Name:            "sqldb",
	})
}
