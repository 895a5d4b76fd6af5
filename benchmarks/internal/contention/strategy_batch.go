package contention

import (
	"context"
	"fmt"
	"sync"

	"github.com/dbop-go/dbop/internal/hotlock"
)

// batchMax is the most transfers one Batch transaction carries.
const batchMax = 32

// Batch runs the transfers of a process that wait at the same time in one
// transaction, each in a savepoint of its own, and commits them together:
// one commit, and one flush of the database's log, for several transfers.
// A transfer that fails with an error the classifier calls retryable ends
// the whole transaction, and every transfer in it is retried, up to 50
// attempts; one that fails otherwise is rolled back to its savepoint and
// gives up, the others go on. One worker at a time leads: it runs the
// queue's transfers, its own among them, and hands the lead to the next
// waiting worker. On PostgreSQL with the lock tables each transaction
// locks one of dbop.HotSpot's lock tables in its BEGIN round trip, as
// pglock does, so that processes take turns a batch at a time. It is not a
// retry strategy but a yardstick: what sharing commits between transfers
// of the same rows gets, beside running them one at a time.
func Batch(cfg Config) Strategy {
	type result struct {
		err  error
		lead bool
	}
	type req struct {
		fn   TxFunc
		done chan result
	}
	var (
		mu      sync.Mutex
		queue   []*req
		leading bool
	)
	lock := ""
	if cfg.Backend.Kind == Postgres && !cfg.NoLockTables {
		lock = hotlock.PostgresLock(0)
	}
	run := func(ctx context.Context, db DB, batch []*req) {
		errs := make([]error, len(batch))
		if lock != "" {
			ctx = context.WithValue(ctx, pgLockKey{}, lock)
		}
		err := db.Attempt(ctx, func(ctx context.Context, tx Tx) error {
			for i, r := range batch {
				if err := tx.Exec(ctx, "SAVEPOINT dbop_batch"); err != nil {
					return err
				}
				if err := r.fn(ctx, tx); err != nil {
					if db.Classifier(err).Retryable() {
						return err
					}
					errs[i] = err
					if rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT dbop_batch"); rerr != nil {
						return fmt.Errorf("batch: rolling back %v: %w", err, rerr)
					}
				}
			}
			return nil
		})
		for i, r := range batch {
			if err != nil {
				errs[i] = err
			}
			r.done <- result{err: errs[i]}
		}
	}
	lead := func(ctx context.Context, db DB) {
		mu.Lock()
		n := min(len(queue), batchMax)
		batch := append([]*req(nil), queue[:n]...)
		queue = queue[n:]
		mu.Unlock()
		run(ctx, db, batch)
		mu.Lock()
		if len(queue) == 0 {
			leading = false
			mu.Unlock()
			return
		}
		next := queue[0]
		mu.Unlock()
		next.done <- result{lead: true}
	}
	return Strategy{
		Name: "batch",
		Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
			for n := 1; ; n++ {
				r := &req{fn: fn, done: make(chan result, 1)}
				mu.Lock()
				queue = append(queue, r)
				first := !leading
				leading = true
				mu.Unlock()
				if first {
					lead(ctx, db)
				}
				res := <-r.done
				for res.lead {
					lead(ctx, db)
					res = <-r.done
				}
				err := res.err
				if err == nil || !db.Classifier(err).Retryable() || n >= pgLockAttempts || ctx.Err() != nil {
					return err
				}
			}
		},
	}
}
