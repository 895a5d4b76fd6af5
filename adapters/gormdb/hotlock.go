package gormdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
	t, err := b.beginOnce(ctx, o)
	known := b.family == sqldialect.Postgres || b.backquotes()
	if err != nil || !known || o.ReadOnly || b.uncoordinated.Load() {
		return t, err
	}
	req := hotlock.From(ctx)
	if req == nil || !req.Claim() {
		return t, nil
	}
	for {
		step, err := hotlock.Take(ctx, hotlock.SQL(rawConnPool(t.db)), b.family == sqldialect.Postgres, req)
		if err == nil && step == hotlock.Held {
			return t, nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.rollbackTimeout)
		_ = t.Rollback(rctx)
		cancel()
		if err != nil {
			if !dbop.VerdictOf(b.classify.Classify(err)).Retryable() || errors.Is(err, sql.ErrNoRows) {
				b.uncoordinated.Store(true)
				return b.beginOnce(ctx, o)
			}
			return nil, fmt.Errorf("gormdb: waiting for the hot spot's lock: %w", err)
		}
		if t, err = b.beginOnce(ctx, o); err != nil {
			return nil, err
		}
	}
}
