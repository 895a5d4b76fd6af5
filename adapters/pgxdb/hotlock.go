package pgxdb

import (
	"context"
	"sync/atomic"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// coordinated begins an attempt's transaction with begin and, when a
// dbop.HotSpot asks for it (hotlock), takes the HotSpot's advisory lock in
// it before fn runs, so that the attempts of every process running that
// HotSpot write the hot rows one at a time (docs/contention.md, "Across
// processes").
//
// The lock is transaction-scoped (pg_advisory_xact_lock): COMMIT or
// ROLLBACK releases it, so nothing outlives the attempt on a pooled
// connection. It is first tried without waiting. When another transaction
// holds it, the attempt waits for it in this transaction, bounded by the
// attempt's lock_timeout like any statement, and then, unless the
// transaction is READ COMMITTED, rolls back and begins a new one that
// tries again: a REPEATABLE READ or SERIALIZABLE transaction took its
// snapshot when the try ran, before the holder committed, and every write
// to the holder's rows would fail with 40001 (docs/backends.md §1.13).
//
// A server without the function (42883, say) makes the transaction go on
// uncoordinated, and off remembers that for the operation. The statements
// are hotlock.Take's, as sqldb's and gormdb's are.
func (c *config) coordinated(ctx context.Context, o scopes.BeginOptions, off *atomic.Bool, begin func() (*txn, error)) (*txn, error) {
	if o.ReadOnly {
		return begin()
	}
	return hotlock.Begin(ctx, hotlock.Scope[*txn]{
		Begin:           begin,
		Tx:              func(t *txn) hotlock.Tx { return pgxTx{t.Tx} },
		Rollback:        func(ctx context.Context, t *txn) error { return t.Tx.Rollback(ctx) },
		RollbackTimeout: c.rollbackTimeout,
		Retryable:       func(err error) bool { return dbop.VerdictOf(c.classify(err)).Retryable() },
		Off:             off,
		Postgres:        true,
		Name:            "pgxdb",
	})
}

// pgxTx adapts a pgx.Tx to hotlock.Tx.
type pgxTx struct{ tx pgx.Tx }

func (t pgxTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error } {
	return t.tx.QueryRow(ctx, query, args...)
}

func (t pgxTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}
