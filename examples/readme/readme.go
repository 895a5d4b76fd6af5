// Package readme holds every Go code block of the repository's README.md,
// compiled. TestReadmeCodeBlocks fails when a block in the README is not
// found here, so the README cannot drift from code that builds.
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

// Built once, stored in a variable, applied to operations of any result type.
var resilient = dbop.Chain(
	dbop.WithTimeout(10*time.Second), // outside the retry: the overall budget
	dbop.WithRetry(dbop.FullJitter(dbop.Exponential(20*time.Millisecond, time.Second))),
	dbop.WithTimeout(2*time.Second), // inside the retry: each attempt
	dbop.ClassifyBy(classifiers.Default),
)

func countOrders(ctx context.Context, db *sql.DB) (int, error) {
	count := dbop.Op[int](func(ctx context.Context) (int, error) {
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n)
		return n, err
	})
	return count.With(resilient).Run(ctx)
}

func transferMoney(ctx context.Context, pool *pgxpool.Pool, from, to, amount int64) (int64, error) {
	// The whole transaction is retried: reads included, as 40001 and 40P01 require.
	transfer := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		var id int64
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", amount, to); err != nil {
			return 0, err
		}
		err := tx.QueryRow(ctx, "INSERT INTO ledger (src, dst, amount) VALUES ($1, $2, $3) RETURNING id", from, to, amount).Scan(&id)
		return id, err
	}, pgxdb.Isolation(pgx.Serializable))
	id, err := transfer.With(dbop.WithRetry(
		dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)),
		dbop.MaxAttempts(50),
	)).Run(ctx)
	return id, err
}

func claimJob(ctx context.Context, tx pgx.Tx, jobID int64) (int64, error) {
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := tx.Exec(ctx, "UPDATE jobs SET state = 'claimed' WHERE id = $1", jobID)
		return tag.RowsAffected(), err
	})
	n, err := step.With(
		dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(3)),
		pgxdb.InSavepoint(tx),                              // each attempt in its own savepoint
		pgxdb.Timeouts(tx, pgxdb.LockTimeout(time.Second)), // SET LOCAL lock_timeout, undone with the savepoint
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
// the database is down, and resume when it recovers.
var budget = dbop.NewBudget(0.1)
var guarded = dbop.Chain(
	dbop.WithRetry(dbop.Exponential(10*time.Millisecond, time.Second), dbop.WithBudget(budget)),
	dbop.Bulkhead(16), // at most 16 attempts in flight: retries cannot exhaust the pool
)

// The README's snippets are reached from here, so nothing is unused.
var _ = []any{countOrders, transferMoney, claimJob, compose, guarded}
