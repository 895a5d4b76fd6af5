// Command crdb-transfer moves money between four hot accounts in
// SERIALIZABLE transactions with CockroachDB's client-side restart protocol
// and a retry around it. It runs on CockroachDB and on PostgreSQL.
//
//	DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go run ./examples/crdb-transfer
//
// The program creates its own tables, example_crdb_transfer_*, dropping
// those of an earlier run first, and leaves them behind to look at. Eight
// workers each run transfers that read both balances, write back the new
// ones (in the order of the accounts' ids, so that transfers conflict
// without deadlocking) and record themselves in a ledger:
//
//	transfer := pgxdb.Do(pool, fn,
//		pgxdb.Isolation(pgx.Serializable),
//		pgxdb.CockroachRestart(dbop.MaxAttempts(2)),
//	)
//	transfer.With(dbop.WithRetry(backoff, dbop.MaxAttempts(50))).Run(ctx)
//
// Concurrent serializable transactions over the same rows fail with
// SQLSTATE 40001, and two layers answer it. [pgxdb.CockroachRestart] runs
// each transaction under CockroachDB's protocol: SAVEPOINT cockroach_restart
// first; on 40001, ROLLBACK TO SAVEPOINT cockroach_restart and run fn again
// at once, in the same transaction; RELEASE SAVEPOINT cockroach_restart, then
// COMMIT. It is the one retry of a 40001 inside a transaction that dbop
// allows. When its attempts are used up, the 40001 leaves the transaction,
// which is rolled back, and [dbop.WithRetry] begins a new one.
//
// On CockroachDB, RELEASE SAVEPOINT cockroach_restart is the commit point,
// and a restart gives the transaction a newer timestamp while keeping its
// priority, so restarting in place usually heals the conflict: allow more
// restarts there (cockroach-go's crdb.ExecuteInTx allows 50).
//
// On PostgreSQL, cockroach_restart is an ordinary savepoint, and a
// SERIALIZABLE transaction keeps the snapshot it took at its first statement
// across ROLLBACK TO SAVEPOINT: fn reads the same stale balances and fails
// with 40001 again. The retry around the transaction does the work, since a
// new transaction takes a new snapshot. The program prints both counts.
//
// At the end it checks that the balances sum to zero and that the ledger
// holds every transfer exactly once and agrees with the balances. It exits
// with status 1 if not, and with status 2 when DBOP_POSTGRES_DSN is not set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
)

// accounts is how many hot accounts the transfers move money between.
const accounts = 4

func main() {
	workers := flag.Int("workers", 8, "concurrent writers")
	transfers := flag.Int("transfers", 25, "transfers per writer")
	restarts := flag.Int("restarts", 1, "in-place restarts per transaction (cockroach_restart)")
	flag.Parse()
	dsn := os.Getenv("DBOP_POSTGRES_DSN")
	if dsn == "" {
		fmt.Fprintln(os.Stderr, "crdb-transfer example: set DBOP_POSTGRES_DSN to a PostgreSQL or CockroachDB connection string, e.g.\n"+
			"\texport DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'")
		os.Exit(2)
	}

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err == nil {
		_, err = run(ctx, pool, *workers, *transfers, *restarts, os.Stdout)
		pool.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdb-transfer example:", err)
		os.Exit(1)
	}
}

// stats is what a run counted.
type stats struct {
	Committed, Begun, Restarts, Retries int64
}

// run creates the tables, runs the transfers with up to restarts in-place
// restarts per transaction, prints what happened to out and checks the
// result.
func run(ctx context.Context, pool *pgxpool.Pool, workers, transfers, restarts int, out io.Writer) (stats, error) {
	if err := setup(ctx, pool); err != nil {
		return stats{}, err
	}
	var begun, restarted, retried, committed atomic.Int64
	// Built once, shared by every transfer: the restarts in place, and the
	// retry of the whole transaction around them.
	inPlace := []dbop.RetryOption{
		dbop.MaxAttempts(1 + restarts),
		dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { restarted.Add(1) }),
	}
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(2*time.Millisecond, 100*time.Millisecond)),
			dbop.MaxAttempts(50),
			dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { retried.Add(1) }),
		),
		dbop.Before(func(context.Context) error { begun.Add(1); return nil }),
	)

	errs := make(chan error, workers*transfers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range transfers {
				from := 1 + rand.IntN(accounts)
				to := 1 + (from+rand.IntN(accounts-1))%accounts
				op := transfer(pool, fmt.Sprintf("w%d-t%d", w, i), from, to, 1+rand.Int64N(9), inPlace...)
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
	st := stats{Committed: committed.Load(), Begun: begun.Load(), Restarts: restarted.Load(), Retries: retried.Load()}
	fmt.Fprintf(out, "transfers:    %d committed, %d gave up, in %d transactions\n", st.Committed, len(errs), st.Begun)
	fmt.Fprintf(out, "restarts:     %d in place, at SAVEPOINT cockroach_restart\n", st.Restarts)
	fmt.Fprintf(out, "retried:      %d transactions rolled back and begun anew once their restarts were used up\n", st.Retries)

	// The check: no money created or lost, every transfer in the ledger
	// once, and every balance what the ledger says came in less what went out.
	var sum, rows, disagreeing int64
	if err := pool.QueryRow(ctx, checkQuery).Scan(&sum, &rows, &disagreeing); err != nil {
		return st, err
	}
	fmt.Fprintf(out, "check:        balances sum to %d, %d ledger rows for %d transfers, %d balances disagree with the ledger\n",
		sum, rows, st.Committed, disagreeing)
	if err := <-errs; err != nil {
		return st, fmt.Errorf("a transfer gave up: %w", err)
	}
	if sum != 0 || rows != st.Committed || disagreeing != 0 {
		return st, errors.New("consistency check FAILED")
	}
	fmt.Fprintln(out, "OK: every transfer landed exactly once")
	return st, nil
}

// setup creates the example's tables afresh: the accounts, numbered from 1,
// at 0, and an empty ledger.
func setup(ctx context.Context, pool *pgxpool.Pool) error {
	for _, stmt := range []string{
		"DROP TABLE IF EXISTS example_crdb_transfer_accounts, example_crdb_transfer_ledger",
		"CREATE TABLE example_crdb_transfer_accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE example_crdb_transfer_ledger (id text PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)",
		fmt.Sprintf("INSERT INTO example_crdb_transfer_accounts SELECT generate_series(1, %d), 0", accounts),
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// transfer reads both balances, writes back the new ones in the order of
// the accounts' ids, and records the transfer under id in the ledger, whose
// primary key would reject a transfer applied twice. Its transaction is
// SERIALIZABLE and restarts in place as the options restarts say.
func transfer(pool *pgxpool.Pool, id string, from, to int, amount int64, restarts ...dbop.RetryOption) dbop.Op[struct{}] {
	return pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		balance := map[int]int64{}
		for _, account := range []int{from, to} {
			var b int64
			if err := tx.QueryRow(ctx, "SELECT balance FROM example_crdb_transfer_accounts WHERE id = $1", account).Scan(&b); err != nil {
				return err
			}
			balance[account] = b
		}
		balance[from] -= amount
		balance[to] += amount
		for _, account := range []int{min(from, to), max(from, to)} {
			if _, err := tx.Exec(ctx, "UPDATE example_crdb_transfer_accounts SET balance = $1 WHERE id = $2", balance[account], account); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO example_crdb_transfer_ledger (id, src, dst, amount) VALUES ($1, $2, $3, $4)", id, from, to, amount)
		return err
	}, pgxdb.Isolation(pgx.Serializable), pgxdb.CockroachRestart(restarts...))
}

const checkQuery = `SELECT
	(SELECT coalesce(sum(balance), 0) FROM example_crdb_transfer_accounts),
	(SELECT count(*) FROM example_crdb_transfer_ledger),
	(SELECT count(*) FROM example_crdb_transfer_accounts a WHERE balance <> (
		SELECT coalesce(sum(CASE WHEN dst = a.id THEN amount ELSE -amount END), 0)
		FROM example_crdb_transfer_ledger WHERE a.id IN (src, dst)))`
