// Package readme holds every Go code block of the repository's README.md,
// compiled. TestReadmeCodeBlocks fails when a block in the README is not
// found here or in readme_test.go, so the README cannot drift from code
// that builds.
package readme

import (
	"context"
	"database/sql"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/classifiers"
)

// retried is how every transfer runs: on a deadlock or a serialization
// failure, the whole transaction again, with jittered exponential backoff.
var retried = dbop.WithRetry(
	dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)),
	dbop.MaxAttempts(50),
)

// transfer moves amount between two accounts and returns the ledger row's id.
func transfer(ctx context.Context, pool *pgxpool.Pool, from, to, amount int64) (int64, error) {
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", amount, to); err != nil {
			return 0, err
		}
		var id int64
		err := tx.QueryRow(ctx, "INSERT INTO ledger (src, dst, amount) VALUES ($1, $2, $3) RETURNING id", from, to, amount).Scan(&id)
		return id, err
	}, pgxdb.Isolation(pgx.Serializable), pgxdb.LockTimeout(2*time.Second))
	return op.With(retried).Run(ctx)
}

// Built once, stored in a variable, applied to operations of any result type.
var resilient = dbop.Chain(
	dbop.WithTimeout(10*time.Second), // before the retry: one budget for the whole operation, waits included
	dbop.WithRetry(dbop.FullJitter(dbop.Exponential(20*time.Millisecond, time.Second))),
	dbop.ClassifyBy(classifiers.Default), // after the retry: it classifies each attempt's error
)

func countOrders(ctx context.Context, db *sql.DB) (int, error) {
	count := dbop.Op[int](func(ctx context.Context) (int, error) {
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n)
		return n, err
	})
	return count.With(resilient).Run(ctx)
}

func claimJob(ctx context.Context, tx pgx.Tx, jobID int64) (int64, error) {
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := tx.Exec(ctx, "UPDATE jobs SET state = 'claimed' WHERE id = $1", jobID)
		return tag.RowsAffected(), err
	})
	n, err := step.With(
		dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(3)),
		pgxdb.InSavepoint(tx, pgxdb.LockTimeout(time.Second)), // each attempt in its own savepoint, with SET LOCAL lock_timeout
	).Run(ctx)
	return n, err
}

type (
	Order struct{ ID int64 }
	Money int64
	Page  []Order
)

func findOrder(ctx context.Context) (Order, error)        { return Order{ID: 1}, nil }
func priceOf(ctx context.Context, o Order) (Money, error) { return Money(o.ID * 100), nil }
func loadPage(n int) dbop.Op[Page] {
	return func(ctx context.Context) (Page, error) { return Page{{ID: int64(n)}}, nil }
}

func compose() (dbop.Op[Money], dbop.Op[[]Page]) {
	// Sequence two steps, the second using the first's value.
	orderTotal := dbop.Then(dbop.Op[Order](findOrder), func(ctx context.Context, o Order) (Money, error) { return priceOf(ctx, o) })

	// Run several at once, at most 4 at a time; the first failure cancels the rest.
	pages := dbop.All(4, loadPage(1), loadPage(2), loadPage(3))
	return orderTotal, pages
}

// Shared by every operation of a service: retries stop growing the load when
// the database is down, and resume when it recovers. The zero Budget lets
// retries add 10% to the operations, after a burst of 100.
var budget dbop.Budget
var guarded = dbop.Chain(
	dbop.WithRetry(dbop.Exponential(10*time.Millisecond, time.Second), dbop.WithBudget(&budget)),
	dbop.Bulkhead(16), // at most 16 attempts in flight: retries cannot exhaust the pool
)

// The README's snippets are reached from here, so nothing is unused.
var _ = []any{transfer, countOrders, claimJob, compose, guarded, sharedTransfer}

// hot is how transfers run when they all write the same few accounts:
// the retry, then a HotSpot that admits their attempts as many at a time
// as succeed together, oldest first, and has the database order processes.
var hot = dbop.Chain(retried, dbop.HotSpot())

// The README runs transfers with op.With(hot).
var _ = hot

// sharedTransfer is the README's ShareCommits block: the transfers that are
// ready at the same time share one transaction and one COMMIT.
func sharedTransfer(ctx context.Context, pool *pgxpool.Pool, fn func(context.Context, pgx.Tx) error) error {
	transfer := pgxdb.Do(pool, fn, pgxdb.Isolation(pgx.Serializable), pgxdb.ShareCommits())
	_, err := transfer.With(retried).Run(ctx)
	return err
}
