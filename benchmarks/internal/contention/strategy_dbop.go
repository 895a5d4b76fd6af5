package contention

import (
	"context"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// uncancelledAttempts runs each attempt with a context the end of the drain
// does not cancel (see Strategy).
var uncancelledAttempts = dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
	return next(context.WithoutCancel(ctx))
})

// DBOP is dbop's recommended pipeline: pgxdb.InTx, a transaction per
// attempt classified by PostgreSQL's rules, retried whole with full-jitter
// exponential backoff. The pipeline is built once; the operation, which
// closes over the transfer, once per transfer, as an application would.
func DBOP(name string, p DBOPParams) Strategy {
	retry := []dbop.RetryOption{}
	if p.MaxAttempts > 0 {
		retry = append(retry, dbop.MaxAttempts(p.MaxAttempts))
	}
	pipeline := dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(p.Base, p.Max)), retry...))
	if p.Bulkhead > 0 {
		pipeline = dbop.Chain(pipeline, dbop.Bulkhead(int64(p.Bulkhead)))
	}
	pipeline = dbop.Chain(pipeline, uncancelledAttempts)
	var settings []pgxdb.TxOption
	if p.LockTimeout > 0 {
		settings = append(settings, pgxdb.LockTimeout(p.LockTimeout))
	}
	return Strategy{
		Name: name,
		Transfer: func(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn TxFunc) error {
			op := pgxdb.Do(pool, fn, append(settings[:len(settings):len(settings)], pgxdb.Isolation(opts.IsoLevel))...)
			_, err := op.With(pipeline).Run(ctx)
			return err
		},
	}
}
