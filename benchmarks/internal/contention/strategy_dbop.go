package contention

import (
	"context"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// drainKey carries the end of the run's drain period, the one deadline of
// the run's context that is not an attempt's own.
type drainKey struct{}

// limitKey carries the deadline serverLimits turns into server-side limits.
type limitKey struct{}

// serverLimits runs each attempt with a context the end of the drain does
// not cancel (see Strategy). It also stands in for issue 13's InTx, which
// turns the time left on the context into server-side limits: the deadline
// an attempt got from dbop.HotSpot is taken off the context, so that
// neither pgx nor go-sql-driver closes the connection when it passes, and
// handed to the transfer, which sets it as statement_timeout and
// lock_timeout (PostgreSQL) or max_statement_time (MariaDB), less issue
// 13's margin. Once InTx does this itself, serverLimits reduces to
// context.WithoutCancel.
var serverLimits = dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
	dl, ok := ctx.Deadline()
	if at, has := hotlock.ServerDeadline(ctx); has {
		// The bound HotSpot asked the server to enforce, without the
		// margin limitOf takes off a context's deadline.
		dl, ok = at.Add(time.Until(at)/9), true
	}
	drain, _ := ctx.Value(drainKey{}).(time.Time)
	ctx = context.WithoutCancel(ctx)
	if ok && (drain.IsZero() || dl.Before(drain)) {
		ctx = context.WithValue(ctx, limitKey{}, dl)
	}
	return next(ctx)
})

// adapterLimits runs each attempt with a context the end of the drain does
// not cancel, as serverLimits does, but keeps the deadline an attempt got
// from dbop.HotSpot on it: the adapters' transaction scopes (pgxdb.Do,
// sqldb.Do) then turn the time left into server-side limits themselves
// (resolve.ServerLimits), as they do in an application. A statement the
// server has not ended when the deadline passes is ended by the driver,
// which closes its connection. -limits adapter selects it.
var adapterLimits = dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
	dl, ok := ctx.Deadline()
	drain, _ := ctx.Value(drainKey{}).(time.Time)
	ctx = context.WithoutCancel(ctx)
	if ok && (drain.IsZero() || dl.Before(drain)) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	return next(ctx)
})

// limitOf returns the server-side limit, in whole milliseconds, that
// issue 13's InTx would set for the deadline ctx carries: the time left,
// less the smaller of 10 % and 50 ms, so that the server cancels the
// statement before the client gives up on it.
func limitOf(ctx context.Context) (int64, bool) {
	dl, ok := ctx.Value(limitKey{}).(time.Time)
	if !ok {
		return 0, false
	}
	left := time.Until(dl)
	left -= min(left/10, 50*time.Millisecond)
	ms := int64((left + time.Millisecond - 1) / time.Millisecond)
	return max(ms, 1), true
}

// DBOP is dbop's pipeline: the backend's InTx, a transaction per attempt
// classified by the backend's rules, retried whole with full-jitter
// exponential backoff, with a Bulkhead or a HotSpot after the retry when
// p says so. The pipeline is built once; the operation, which closes over
// the transfer, once per transfer, as an application would.
func DBOP(name string, p DBOPParams) Strategy {
	var retry []dbop.RetryOption
	if p.MaxAttempts > 0 {
		retry = append(retry, dbop.MaxAttempts(p.MaxAttempts))
	}
	pipeline := []dbop.Decorator{dbop.WithRetry(dbop.FullJitter(dbop.Exponential(p.Base, p.Max)), retry...)}
	if p.Bulkhead > 0 {
		pipeline = append(pipeline, dbop.Bulkhead(int64(p.Bulkhead)))
	}
	if p.HotSpot {
		pipeline = append(pipeline, dbop.HotSpot())
	}
	limits := serverLimits
	if p.AdapterLimits {
		limits = adapterLimits
	}
	chain := dbop.Chain(append(pipeline, limits)...)
	return Strategy{
		Name: name,
		Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
			if p.Keys {
				tr := TransferOf(ctx)
				ctx = dbop.HotSpotKeys(ctx, int64(tr.From), int64(tr.To))
			}
			_, err := db.Op(fn, OpOptions{LockTimeout: p.LockTimeout, Standin: !p.AdapterLimits, Share: p.Share}).With(chain).Run(ctx)
			return err
		},
	}
}
