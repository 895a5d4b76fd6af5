// Command pgx moves money on PostgreSQL through pgx v5 from several
// goroutines at once: transfers that deadlock are retried as whole
// transactions, and a step inside a transaction that times out waiting for a
// lock is retried at a savepoint.
//
//	DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go run ./examples/pgx
//
// The program creates its own tables, example_pgx_*, dropping those of an
// earlier run first, and leaves them behind to look at.
//
// Transfers: workers move money between accounts A and B in both
// directions. A transfer debits the payer before it credits the payee, so
// two transfers in opposite directions can each hold one row and wait for
// the other's: PostgreSQL's deadlock detector (after deadlock_timeout, 1s by
// default) fails one with SQLSTATE 40P01. [pgxdb.Do] runs each transfer in a
// transaction of its own per attempt and calls 40P01 RetryTransaction, and
// [dbop.WithRetry] runs the victim again from BEGIN.
//
// A step at a savepoint: another connection holds the widget's stock row. An
// order transaction records order-1, then reserves a widget in a step run by
// [pgxdb.InSavepoint] with [pgxdb.LockTimeout], a server-side limit on each
// attempt's lock waits (a context deadline would make pgx close the
// connection, and the transaction with it). The first attempt fails with
// 55P03; the savepoint is rolled back, which undoes the step and nothing
// else; the other connection lets go; the second attempt succeeds, and
// order-1 survives in a transaction that ran once.
//
// At the end the program checks that no money was created or lost, that
// the ledger holds every transfer exactly once and agrees with the balances,
// and that order-1 and its reservation were committed once. It exits with
// status 1 if not, and with status 2 when DBOP_POSTGRES_DSN is not set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
)

func main() {
	workers := flag.Int("workers", 4, "concurrent writers")
	transfers := flag.Int("transfers", 10, "transfers per writer")
	flag.Parse()
	dsn := os.Getenv("DBOP_POSTGRES_DSN")
	if dsn == "" {
		fmt.Fprintln(os.Stderr, "pgx example: set DBOP_POSTGRES_DSN to a PostgreSQL connection string, e.g.\n"+
			"\texport DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'")
		os.Exit(2)
	}

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err == nil {
		_, err = run(ctx, pool, *workers, *transfers, os.Stdout)
		pool.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgx example:", err)
		os.Exit(1)
	}
}

// stats is what a run counted.
type stats struct {
	Committed, Attempts int64
	Retries             map[string]int // of the transfers, by SQLSTATE
	OrderRuns           int            // runs of order-1's transaction
	StepAttempts        int            // attempts of its reservation step
}

// run creates the tables, runs the transfers and the order, prints what
// happened to out and checks the result.
func run(ctx context.Context, pool *pgxpool.Pool, workers, transfers int, out io.Writer) (stats, error) {
	if err := setup(ctx, pool); err != nil {
		return stats{}, err
	}

	var (
		st       = stats{Retries: map[string]int{}}
		mu       sync.Mutex // guards st.Retries
		attempts atomic.Int64
	)
	// One pipeline for every transfer, built once and shared by all the
	// goroutines: the whole transaction again, with jittered backoff.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)),
			dbop.MaxAttempts(50),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				mu.Lock()
				defer mu.Unlock()
				st.Retries[sqlstate(e.Err)]++
			}),
		),
		dbop.Before(func(context.Context) error { attempts.Add(1); return nil }),
	)

	var committed atomic.Int64
	errs := make(chan error, workers*transfers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range transfers {
				from, to := "A", "B"
				if (w+i)%2 == 1 {
					from, to = to, from
				}
				op := transfer(pool, fmt.Sprintf("w%d-t%d", w, i), from, to, 1+int64(i%5))
				if _, err := op.With(resilient).Run(ctx); err != nil {
					errs <- err
					continue
				}
				committed.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	st.Committed, st.Attempts = committed.Load(), attempts.Load()
	fmt.Fprintf(out, "transfers: %d committed, %d gave up, in %d attempts\n", st.Committed, len(errs), st.Attempts)
	fmt.Fprintf(out, "retried:   %d × 40P01 deadlock_detected, each from BEGIN\n", st.Retries["40P01"])
	if err := <-errs; err != nil {
		return st, fmt.Errorf("a transfer gave up: %w", err)
	}

	if err := order(ctx, pool, &st); err != nil {
		return st, fmt.Errorf("order-1: %w", err)
	}
	fmt.Fprintf(out, "order-1:   committed in %d run of its transaction; its reservation took %d attempts at a savepoint (lock_timeout %v each)\n",
		st.OrderRuns, st.StepAttempts, stepLockTimeout)

	// The check: no money created or lost, every transfer in the ledger
	// once, every balance what the ledger says came in less what went out,
	// and order-1 and its reservation committed once.
	var sum, rows, disagreeing, orders, reserved int64
	if err := pool.QueryRow(ctx, checkQuery).Scan(&sum, &rows, &disagreeing, &orders, &reserved); err != nil {
		return st, err
	}
	fmt.Fprintf(out, "check:     balances sum to %d, %d ledger rows for %d transfers, %d balances disagree with the ledger, order-1 ×%d, %d widget reserved\n",
		sum, rows, st.Committed, disagreeing, orders, reserved)
	if sum != 0 || rows != st.Committed || disagreeing != 0 || orders != 1 || reserved != 1 {
		return st, errors.New("consistency check FAILED")
	}
	fmt.Fprintln(out, "OK: every transfer landed exactly once, and order-1 kept its work")
	return st, nil
}

// setup creates the example's tables afresh: accounts A and B at 0, an
// empty ledger, no orders and one item, the widget, with none reserved.
func setup(ctx context.Context, pool *pgxpool.Pool) error {
	for _, stmt := range []string{
		"DROP TABLE IF EXISTS example_pgx_accounts, example_pgx_ledger, example_pgx_orders, example_pgx_stock",
		"CREATE TABLE example_pgx_accounts (id text PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE example_pgx_ledger (id text PRIMARY KEY, src text NOT NULL, dst text NOT NULL, amount bigint NOT NULL)",
		"CREATE TABLE example_pgx_orders (id text PRIMARY KEY, item text NOT NULL)",
		"CREATE TABLE example_pgx_stock (item text PRIMARY KEY, reserved int NOT NULL)",
		"INSERT INTO example_pgx_accounts VALUES ('A', 0), ('B', 0)",
		"INSERT INTO example_pgx_stock VALUES ('widget', 0)",
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// transfer debits the payer, credits the payee and records the transfer
// under id in the ledger, whose primary key would reject a transfer applied
// twice.
func transfer(pool *pgxpool.Pool, id, from, to string, amount int64) dbop.Op[struct{}] {
	return pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE example_pgx_accounts SET balance = balance - $1 WHERE id = $2", amount, from); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE example_pgx_accounts SET balance = balance + $1 WHERE id = $2", amount, to); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO example_pgx_ledger (id, src, dst, amount) VALUES ($1, $2, $3, $4)", id, from, to, amount)
		return err
	})
}

// stepLockTimeout is how long each attempt of order-1's reservation step
// may wait for a lock.
const stepLockTimeout = 100 * time.Millisecond

// order records order-1 and reserves a widget for it in a step retried at a
// savepoint, while another connection holds the widget's row: it lets go
// when the step's first attempt has timed out.
func order(ctx context.Context, pool *pgxpool.Pool, st *stats) error {
	holder, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, "SELECT 1 FROM example_pgx_stock WHERE item = 'widget' FOR UPDATE"); err != nil {
		return err
	}

	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		st.OrderRuns++
		if _, err := tx.Exec(ctx, "INSERT INTO example_pgx_orders (id, item) VALUES ('order-1', 'widget')"); err != nil {
			return err
		}
		reserve := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			st.StepAttempts++
			tag, err := tx.Exec(ctx, "UPDATE example_pgx_stock SET reserved = reserved + 1 WHERE item = 'widget'")
			return tag.RowsAffected(), err
		})
		_, err := reserve.With(
			dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(3),
				// After a failed attempt, the other connection lets go of the row.
				dbop.OnRetry(func(ctx context.Context, _ dbop.AttemptEvent) { holder.Rollback(ctx) })),
			pgxdb.InSavepoint(tx, pgxdb.LockTimeout(stepLockTimeout)), // each attempt in a savepoint, with SET LOCAL lock_timeout
		).Run(ctx) // the context Do handed to this function
		return err
	})
	_, err = op.With(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)))).Run(ctx)
	return err
}

const checkQuery = `SELECT
	(SELECT coalesce(sum(balance), 0) FROM example_pgx_accounts),
	(SELECT count(*) FROM example_pgx_ledger),
	(SELECT count(*) FROM example_pgx_accounts a WHERE balance <> (
		SELECT coalesce(sum(CASE WHEN dst = a.id THEN amount ELSE -amount END), 0)
		FROM example_pgx_ledger WHERE a.id IN (src, dst))),
	(SELECT count(*) FROM example_pgx_orders WHERE id = 'order-1'),
	(SELECT reserved FROM example_pgx_stock WHERE item = 'widget')`

// sqlstate returns the SQLSTATE of err, or its message when it has none.
func sqlstate(err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code
	}
	return err.Error()
}
