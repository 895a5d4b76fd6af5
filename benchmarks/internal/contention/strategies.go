package contention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TxFunc is one attempt of a transfer inside the transaction tx.
type TxFunc func(ctx context.Context, tx pgx.Tx) error

// A Strategy runs one logical transfer to completion: it begins transactions
// on pool with opts, runs fn in them, and retries as it sees fit. It returns
// nil once a transaction committed and the error it gave up on otherwise.
//
// ctx ends when the run's drain period is over. A strategy runs each attempt
// with [context.WithoutCancel] of it, so that the end of the drain stops its
// waits but never cancels a transaction in flight: a COMMIT cancelled in
// flight has an unknown outcome, and the ledger check needs every outcome
// known.
type Strategy struct {
	Name string
	// Workers overrides Config.Workers when positive.
	Workers  int
	Transfer func(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn TxFunc) error
}

// Names of the strategies that [Strategies] knows.
var Names = []string{"dbop", "dbop+bulkhead", "immediate", "cenkalti", "none", "reference"}

// Recommended is the dbop pipeline the benchmark runs by default; README.md
// gives the sweep that chose it.
var Recommended = DBOPParams{Base: 5 * time.Millisecond, Max: time.Second, MaxAttempts: 50}

// HotSpotBulkhead is the Bulkhead the dbop+bulkhead strategy adds to the
// configured pipeline: one attempt at a time, because on this workload the
// database commits about one transfer at a time whatever the concurrency
// (README.md, "Why a bulkhead").
const HotSpotBulkhead = 1

// DBOPParams configures the dbop strategy's pipeline.
type DBOPParams struct {
	Base, Max   time.Duration // FullJitter(Exponential(Base, Max))
	MaxAttempts int           // 0: dbop.DefaultMaxAttempts
	Bulkhead    int           // when positive, dbop.Bulkhead(Bulkhead) after the retry: concurrent attempts capped
	LockTimeout time.Duration // when positive, pgxdb.LockTimeout(LockTimeout) on each attempt
}

func (p DBOPParams) String() string {
	s := fmt.Sprintf("WithRetry(FullJitter(Exponential(%v, %v))", p.Base, p.Max)
	if p.MaxAttempts > 0 {
		s += fmt.Sprintf(", MaxAttempts(%d)", p.MaxAttempts)
	}
	s += ")"
	if p.Bulkhead > 0 {
		s += fmt.Sprintf(", Bulkhead(%d)", p.Bulkhead)
	}
	if p.LockTimeout > 0 {
		s += fmt.Sprintf(" + LockTimeout(%v)", p.LockTimeout)
	}
	return s
}

// StrategyByName returns the named strategy.
func StrategyByName(name string, cfg Config) (Strategy, error) {
	switch name {
	case "dbop":
		return DBOP("dbop", cfg.DBOP), nil
	case "dbop+bulkhead":
		p := cfg.DBOP
		if p.Bulkhead == 0 {
			p.Bulkhead = HotSpotBulkhead
		}
		return DBOP("dbop+bulkhead", p), nil
	case "immediate":
		return Immediate(cfg.ImmediateCap), nil
	case "cenkalti":
		return Cenkalti(), nil
	case "none":
		return None("none", 0), nil
	case "reference":
		return None("reference", 1), nil
	}
	return Strategy{}, fmt.Errorf("unknown strategy %q (want one of %v)", name, Names)
}

// attemptOnce runs fn in one transaction with pgx's own helper: commit on
// success, roll back on error.
func attemptOnce(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn TxFunc) error {
	ctx = context.WithoutCancel(ctx)
	return pgx.BeginTxFunc(ctx, pool, opts, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// None makes one attempt and gives up on any error. With workers = 1 and no
// one else writing, it is the conflict-free reference.
func None(name string, workers int) Strategy {
	return Strategy{Name: name, Workers: workers, Transfer: attemptOnce}
}

// Immediate retries serialization failures and deadlocks at once, with no
// wait, up to maxAttempts attempts: what cockroach-go's crdb.ExecuteInTx
// does (it retries SQLSTATE 40001 in a loop without backoff).
func Immediate(maxAttempts int) Strategy {
	return Strategy{
		Name: "immediate",
		Transfer: func(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn TxFunc) error {
			for n := 1; ; n++ {
				err := attemptOnce(ctx, pool, opts, fn)
				if err == nil || !conflict(err) || n >= maxAttempts || ctx.Err() != nil {
					return err
				}
			}
		},
	}
}

// conflict reports whether err is a serialization failure or a deadlock.
func conflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// Cenkalti wraps the transaction in backoff.Retry with cenkalti/backoff/v5's
// defaults: exponential backoff from 500 ms, factor 1.5, ±50% jitter,
// 60 s maximum interval, 15 min maximum elapsed time, every error retried.
func Cenkalti() Strategy {
	return Strategy{
		Name: "cenkalti",
		Transfer: func(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn TxFunc) error {
			_, err := backoff.Retry(ctx, func() (struct{}, error) {
				return struct{}{}, attemptOnce(ctx, pool, opts, fn)
			})
			return err
		},
	}
}
