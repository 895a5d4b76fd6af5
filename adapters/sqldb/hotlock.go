package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
// (docs/backends.md §3.12). Without the table, transactions go on
// uncoordinated. SQLite runs one writer at a time already.
func (b *begin) coordinated(ctx context.Context, o scopes.BeginOptions) (*txn, error) {
	t, err := b.beginOnce(ctx, o)
	if err != nil || b.family == sqldialect.SQLite || o.ReadOnly || b.readOnly || b.uncoordinated.Load() {
		return t, err
	}
	req := hotlock.From(ctx)
	if req == nil || !req.Claim() {
		return t, nil
	}
	if b.family != sqldialect.Postgres {
		return b.lockRow(ctx, o, t, req)
	}
	for {
		var got bool
		var isolation string
		err := t.tx.QueryRowContext(ctx, hotlock.PostgresTry, req.Key).Scan(&got, &isolation)
		if err == nil && got {
			req.Took()
			return t, nil
		}
		if err == nil {
			req.Waited()
			_, err = t.tx.ExecContext(ctx, hotlock.PostgresWait, req.Key)
			if err == nil && isolation == "read committed" {
				req.Took()
				return t, nil
			}
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.restoreTO)
		_ = t.Rollback(rctx)
		cancel()
		if err != nil {
			if !dbop.VerdictOf(b.classify.Classify(err)).Retryable() {
				b.uncoordinated.Store(true)
				return b.beginOnce(ctx, o)
			}
			return nil, fmt.Errorf("sqldb: waiting for the hot spot's lock: %w", err)
		}
		if t, err = b.beginOnce(ctx, o); err != nil {
			return nil, err
		}
	}
}

// lockRow takes the HotSpot's lock on MySQL or MariaDB: the row req.Key of
// the lock table, added the first time.
func (b *begin) lockRow(ctx context.Context, o scopes.BeginOptions, t *txn, req *hotlock.Request) (*txn, error) {
	for added := false; ; added = true {
		start := time.Now()
		var id int64
		err := t.tx.QueryRowContext(ctx, hotlock.MySQLLock, req.Key).Scan(&id)
		if err == nil {
			req.Took()
			if time.Since(start) > lockWaited {
				req.Waited()
			}
			return t, nil
		}
		if errors.Is(err, sql.ErrNoRows) && !added {
			if _, err = t.tx.ExecContext(ctx, hotlock.MySQLAdd, req.Key); err == nil {
				continue
			}
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.restoreTO)
		_ = t.Rollback(rctx)
		cancel()
		if !dbop.VerdictOf(b.classify.Classify(err)).Retryable() || errors.Is(err, sql.ErrNoRows) {
			b.uncoordinated.Store(true) // no lock table, say (1146)
			return b.beginOnce(ctx, o)
		}
		return nil, fmt.Errorf("sqldb: waiting for the hot spot's lock: %w", err)
	}
}

// lockWaited is how long a locking read of the lock row must take for the
// HotSpot to hear that another transaction held it: InnoDB does not say
// whether a lock was waited for, and an uncontended read takes well under
// a millisecond on a local server.
const lockWaited = 2 * time.Millisecond
