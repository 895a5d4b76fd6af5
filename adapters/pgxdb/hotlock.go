package pgxdb

import (
	"context"
	"fmt"
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
// uncoordinated, and off remembers that for the operation.
func coordinated(ctx context.Context, o scopes.BeginOptions, classify func(error) error, off *atomic.Bool, begin func() (*txn, error)) (*txn, error) {
	t, err := begin()
	if err != nil || o.ReadOnly || off.Load() {
		return t, err
	}
	req := hotlock.From(ctx)
	if req == nil || !req.Claim() {
		return t, nil
	}
	for {
		var got bool
		var isolation string
		err := t.Tx.QueryRow(ctx, hotlock.PostgresTry, req.Key).Scan(&got, &isolation)
		if err == nil && got {
			req.Took()
			if isolation == "read committed" {
				req.InPlace()
			}
			return t, nil
		}
		if err == nil {
			req.Waited()
			_, err = t.Tx.Exec(ctx, hotlock.PostgresWait, req.Key)
			if err == nil && isolation == "read committed" {
				req.Took()
				req.InPlace()
				return t, nil
			}
		}
		abandon(ctx, t.Tx)
		if err != nil {
			if !dbop.VerdictOf(classify(err)).Retryable() {
				off.Store(true)
				return begin()
			}
			return nil, fmt.Errorf("pgxdb: waiting for the hot spot's lock: %w", err)
		}
		if t, err = begin(); err != nil {
			return nil, err
		}
	}
}

// abandon rolls back a transaction begun for an attempt that will not run
// in it, bounded as scopes.InTx bounds its rollbacks, whatever ctx's state.
func abandon(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scopes.DefaultRollbackTimeout)
	defer cancel()
	_ = tx.Rollback(rctx)
}
