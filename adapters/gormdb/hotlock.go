package gormdb

import (
	"context"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/scopes"
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
	begin := func() (*txn, error) { return b.beginOnce(ctx, o) }
	if !(b.family == sqldialect.Postgres || b.backquotes()) || o.ReadOnly {
		return begin()
	}
	return hotlock.Begin(ctx, hotlock.Scope[*txn]{
		Begin:           begin,
		Tx:              func(t *txn) hotlock.Tx { return hotlock.SQL(rawConnPool(t.db)) },
		Rollback:        func(ctx context.Context, t *txn) error { return t.Rollback(ctx) },
		RollbackTimeout: b.rollbackTimeout,
		Retryable:       func(err error) bool { return dbop.VerdictOf(b.classify.Classify(err)).Retryable() },
		Off:             &b.uncoordinated,
		Postgres:        b.family == sqldialect.Postgres,
		Name:            "gormdb",
	})
}
