// Crdb-transfer: a CockroachDB-style serializable money transfer, with
// CockroachDB's client-side restart protocol and a retry around it, run on
// PostgreSQL.
//
//	DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go run ./examples/crdb-transfer
//
// The program creates its own tables, example_crdb_transfer_*, dropping
// those of an earlier run first, and leaves them behind to look at. Eight
// workers move money between four hot accounts. Each transfer reads both
// balances, writes back the new ones (in the order of the accounts' ids, so
// that transfers conflict without deadlocking) and records itself in a
// ledger, in a SERIALIZABLE transaction:
//
//	transfer := pgxdb.InTx(pool, fn,
//		pgxdb.Isolation(pgx.Serializable),
//		pgxdb.CockroachRestart(1, dbop.FullJitter(dbop.Exponential(time.Millisecond, 10*time.Millisecond))),
//	)
//	transfer.With(dbop.WithRetry(backoff, dbop.MaxAttempts(50))).Run(ctx)
//
// Concurrent serializable transactions over the same rows fail with
// SQLSTATE 40001, serialization_failure, and there are two layers to heal
// it. [pgxdb.CockroachRestart] runs each attempt under CockroachDB's
// protocol: SAVEPOINT cockroach_restart first; on 40001, ROLLBACK TO
// SAVEPOINT cockroach_restart and run fn again, reads included, in the same
// transaction, up to the number of restarts given; RELEASE SAVEPOINT
// cockroach_restart, then COMMIT. When the restarts are used up, the 40001
// leaves [pgxdb.InTx], which rolls back, and [dbop.WithRetry] begins a new
// transaction.
//
// # On CockroachDB
//
// Point DBOP_POSTGRES_DSN at CockroachDB (for instance
// postgresql://root@127.0.0.1:26257/defaultdb?sslmode=disable) and the same
// code runs unchanged with the protocol CockroachDB documents: there RELEASE
// SAVEPOINT cockroach_restart is the commit point, and a restart at the
// savepoint gives the transaction a newer timestamp while keeping its
// identity and priority, so an in-place restart usually heals the conflict
// and a transaction that keeps losing ends up winning. Allow more restarts
// there (cockroach-go's crdb.ExecuteInTx allows 50).
//
// # On PostgreSQL
//
// PostgreSQL runs the same statements, cockroach_restart being an ordinary
// savepoint, but an in-place restart cannot heal a serialization failure:
// a SERIALIZABLE (or REPEATABLE READ) transaction keeps the snapshot it
// took at its first statement across ROLLBACK TO SAVEPOINT, so fn reads the
// same stale balances and fails with 40001 again. The retry around InTx does
// the work: a new transaction takes a new snapshot. The program counts both
// layers: in-place restarts, and how many of them led to a commit, against
// transactions begun anew.
//
// Phase 1 forces one conflict with channels, so it happens on every run:
// two transfers from the same account both read it, one commits, and only
// then does the other write. In phase 2 the eight workers race. At the end
// the program checks that the balances sum to zero and that the ledger
// holds exactly the committed transfers, each once, and agrees with the
// balances. It exits with status 1 if not, and with status 2 when
// DBOP_POSTGRES_DSN is not set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/examples/internal/demo"
)

// dsnVar is the environment variable that holds the connection string.
var dsnVar = demo.DSNVar{
	Name:    "DBOP_POSTGRES_DSN",
	What:    "a PostgreSQL (or CockroachDB) connection string",
	Example: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
}

// config is what one run does.
type config struct {
	DSN       string
	Workers   int // phase 2: concurrent writers
	Transfers int // phase 2: transfers per writer
	Accounts  int
	Restarts  int // in-place restarts per transaction
}

// report is what one run found.
type report struct {
	Transfers, Committed, GaveUp int
	Attempts                     int64          // transactions begun
	Restarts, Healed             int64          // in-place restarts, and transactions that committed after one
	ForcedRetries                int            // 40001 retries of the whole transaction in phase 1
	ForcedRestarts, ForcedHealed int64          // in-place restarts in phase 1, and commits after one
	Retries                      map[string]int // retries of the whole transaction, by cause and verdict
	Balance                      int64          // sum of the balances: 0 when nothing was lost
	LedgerRows                   int
	Missing, Unexpected          int   // committed transfers not in the ledger, and ledger rows of no committed transfer
	Disagreeing                  int64 // accounts whose balance differs from the ledger's
	Elapsed                      time.Duration
}

// Consistent reports whether the balances sum to zero and the ledger holds
// exactly the committed transfers and agrees with the balances.
func (r report) Consistent() bool {
	return r.GaveUp == 0 && r.Committed == r.Transfers && r.Balance == 0 &&
		r.LedgerRows == r.Committed && r.Missing == 0 && r.Unexpected == 0 && r.Disagreeing == 0
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Workers, "workers", 8, "phase 2: concurrent writers")
	flag.IntVar(&cfg.Transfers, "transfers", 25, "phase 2: transfers per writer")
	flag.IntVar(&cfg.Accounts, "accounts", 4, "hot accounts the transfers move money between")
	flag.IntVar(&cfg.Restarts, "restarts", 1, "in-place restarts per transaction (cockroach_restart)")
	flag.Parse()
	cfg.DSN = dsnVar.MustGet("crdb-transfer example") // status 2 if it is not set

	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	rep, err := run(ctx, cfg, os.Stdout)
	demo.ExitOnFailure("crdb-transfer example", rep.Consistent(), err) // status 1 if the run or its check failed
}

func run(ctx context.Context, cfg config, out io.Writer) (report, error) {
	if cfg.DSN == "" {
		return report{}, errors.New(dsnVar.Message())
	}
	out = demo.Locked(out) // the workers report progress
	if cfg.Workers < 1 || cfg.Transfers < 1 || cfg.Accounts < 3 || cfg.Restarts < 0 {
		return report{}, fmt.Errorf("need at least 1 worker, 1 transfer, 3 accounts and no negative restarts, got %d, %d, %d, %d",
			cfg.Workers, cfg.Transfers, cfg.Accounts, cfg.Restarts)
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return report{}, fmt.Errorf("%s: %w", dsnVar.Name, err)
	}
	poolCfg.MaxConns = int32(cfg.Workers)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return report{}, err
	}
	defer pool.Close()
	var version string
	if err := pool.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return report{}, fmt.Errorf("connect: %w", err)
	}
	version, _, _ = strings.Cut(version, " (")
	if err := setup(ctx, pool, cfg.Accounts); err != nil {
		return report{}, fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(out, "dbop crdb-transfer example: %s, SERIALIZABLE, cockroach_restart with up to %d in-place restart(s) per transaction\n", version, cfg.Restarts)

	st := &demo.Stats{}               // transactions begun, and retries of the whole transaction by cause and verdict
	var restarts, healed atomic.Int64 // in-place restarts, and transactions that committed after one
	phaseLog := &demo.PhaseLog{}      // tells each restart and retry of phase 1
	// Built once, shared by every transfer: the whole-transaction retry.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(2*time.Millisecond, 100*time.Millisecond)),
			dbop.MaxAttempts(50),
			dbop.OnRetry(func(ctx context.Context, e dbop.RetryEvent) {
				why := demo.PostgresCause(e.Err) + " (" + e.Verdict.String() + ")"
				st.Retried(why)
				phaseLog.Printf("  transfer %s, attempt %d: %s; rolled back, a new transaction begins\n", demo.ID(ctx), e.Attempt, why)
			}),
		),
		dbop.Before(st.Attempt),
	)
	// And the options of every transfer's transaction.
	txOpts := []pgxdb.Option{
		pgxdb.Isolation(pgx.Serializable),
		pgxdb.CockroachRestart(cfg.Restarts, dbop.FullJitter(dbop.Exponential(time.Millisecond, 10*time.Millisecond))),
	}

	start := time.Now()
	var rep report
	var (
		mu        sync.Mutex
		committed []string
		gaveUp    atomic.Int64
	)
	// do runs one transfer and returns the number of transfers committed
	// so far, or 0 if it gave up.
	do := func(ctx context.Context, t transfer, afterRead func(context.Context) error) int {
		ctx = demo.WithID(ctx, t.id) // for the OnRetry hook
		// runs counts the runs of fn in the current attempt's transaction:
		// more than one means in-place restarts. The Before listed after
		// the shared pipeline, inside its retry, resets it for each attempt.
		runs := 0
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (struct{}, error) {
			runs++
			if runs > 1 {
				restarts.Add(1)
				phaseLog.Printf("  transfer %s: 40001; ROLLBACK TO SAVEPOINT cockroach_restart, fn runs again in the same transaction (restart %d)\n", t.id, runs-1)
			}
			return struct{}{}, t.apply(ctx, tx, afterRead)
		}, txOpts...)
		_, err := op.With(resilient, dbop.Before(func(context.Context) error { runs = 0; return nil })).Run(ctx)
		if err != nil {
			gaveUp.Add(1)
			fmt.Fprintf(out, "  transfer %s gave up: %v\n", t.id, err)
			return 0
		}
		if runs > 1 {
			healed.Add(1)
		}
		mu.Lock()
		defer mu.Unlock()
		committed = append(committed, t.id)
		return len(committed)
	}
	committedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(committed)
	}

	// Phase 1: two transfers from account 1 both read it; the first writes
	// and commits, and only then does the second write, with a snapshot
	// that is now stale.
	fmt.Fprintln(out, "phase 1: two transfers from account 1 both read it; one commits, then the other writes")
	phaseLog.Start(out)
	meet := demo.NewRendezvous(2)
	firstDone := make(chan struct{})
	wait1, leave1 := meet.Party()
	wait2, leave2 := meet.Party()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(firstDone)
		defer leave1()
		do(ctx, transfer{id: "forced-1", from: 1, to: 2, amount: 10}, wait1)
	})
	wg.Go(func() {
		defer leave2()
		do(ctx, transfer{id: "forced-2", from: 1, to: 3, amount: 10}, func(ctx context.Context) error {
			if err := wait2(ctx); err != nil {
				return err
			}
			return demo.Await(ctx, firstDone) // closed already on a restart or a retry
		})
	})
	wg.Wait()
	phaseLog.Stop()
	rep.Transfers += 2
	rep.ForcedRetries = st.Caused("40001")
	rep.ForcedRestarts, rep.ForcedHealed = restarts.Load(), healed.Load()
	attempts, retries := st.Snapshot()
	fmt.Fprintf(out, "  %d transfers committed: %d transactions begun, %d in-place restart(s), %d of them healed\n",
		committedCount(), attempts, rep.ForcedRestarts, rep.ForcedHealed)

	// Phase 2: the workers race on the hot accounts.
	fmt.Fprintf(out, "phase 2: %d workers × %d transfers among %d hot accounts\n", cfg.Workers, cfg.Transfers, cfg.Accounts)
	phase2 := cfg.Workers * cfg.Transfers
	rep.Transfers += phase2
	progress := max(1, phase2/4)
	base := committedCount()
	for w := range cfg.Workers {
		wg.Go(func() {
			for i := range cfg.Transfers {
				from := 1 + rand.IntN(cfg.Accounts)
				to := 1 + (from+rand.IntN(cfg.Accounts-1))%cfg.Accounts
				t := transfer{id: fmt.Sprintf("w%d-t%d", w, i), from: from, to: to, amount: 1 + rand.Int64N(9)}
				if n := do(ctx, t, nil) - base; n > 0 && n%progress == 0 {
					a, r := st.Snapshot()
					fmt.Fprintf(out, "  %4d transfers committed, %4d transactions begun, %3d restarted in place, %3d retried so far\n",
						n, a-attempts, restarts.Load()-rep.ForcedRestarts, r-retries)
				}
			}
		})
	}
	wg.Wait()

	rep.Committed, rep.GaveUp = len(committed), int(gaveUp.Load())
	rep.Attempts, _ = st.Snapshot()
	rep.Retries = st.Retries()
	rep.Restarts, rep.Healed = restarts.Load(), healed.Load()
	rep.Elapsed = time.Since(start)
	if err := check(ctx, pool, committed, &rep); err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	printReport(out, rep)
	return rep, nil
}

func setup(ctx context.Context, pool *pgxpool.Pool, accounts int) error {
	stmts := []string{
		"DROP TABLE IF EXISTS example_crdb_transfer_accounts, example_crdb_transfer_ledger",
		"CREATE TABLE example_crdb_transfer_accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE example_crdb_transfer_ledger (id text PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)",
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	for id := 1; id <= accounts; id++ {
		if _, err := pool.Exec(ctx, "INSERT INTO example_crdb_transfer_accounts (id, balance) VALUES ($1, 0)", id); err != nil {
			return err
		}
	}
	return nil
}

// transfer is one movement of money, recorded in the ledger under id.
type transfer struct {
	id       string
	from, to int
	amount   int64
}

// apply runs the transfer in tx: it reads both balances, runs afterRead (if
// not nil), writes back the balances it computed, in the order of the
// accounts' ids, and records the transfer in the ledger. The ledger's
// primary key would reject a transfer applied twice.
func (t transfer) apply(ctx context.Context, tx pgx.Tx, afterRead func(context.Context) error) error {
	balance := map[int]int64{}
	for _, id := range []int{t.from, t.to} {
		var b int64
		if err := tx.QueryRow(ctx, "SELECT balance FROM example_crdb_transfer_accounts WHERE id = $1", id).Scan(&b); err != nil {
			return err
		}
		balance[id] = b
	}
	if afterRead != nil {
		if err := afterRead(ctx); err != nil {
			return err
		}
	}
	balance[t.from] -= t.amount
	balance[t.to] += t.amount
	for _, id := range []int{min(t.from, t.to), max(t.from, t.to)} {
		if _, err := tx.Exec(ctx, "UPDATE example_crdb_transfer_accounts SET balance = $1 WHERE id = $2", balance[id], id); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, "INSERT INTO example_crdb_transfer_ledger (id, src, dst, amount) VALUES ($1, $2, $3, $4)", t.id, t.from, t.to, t.amount)
	return err
}

// check reads back what the run committed and compares the ledger with the
// transfers reported committed.
func check(ctx context.Context, pool *pgxpool.Pool, committed []string, rep *report) error {
	if err := pool.QueryRow(ctx, "SELECT coalesce(sum(balance), 0) FROM example_crdb_transfer_accounts").Scan(&rep.Balance); err != nil {
		return err
	}
	// An account's balance is what the ledger says came in less what went
	// out.
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM example_crdb_transfer_accounts a WHERE a.balance <> (
		SELECT coalesce(sum(CASE WHEN l.dst = a.id THEN l.amount ELSE -l.amount END), 0)
		FROM example_crdb_transfer_ledger l WHERE a.id IN (l.src, l.dst))`).Scan(&rep.Disagreeing); err != nil {
		return err
	}
	rows, err := pool.Query(ctx, "SELECT id FROM example_crdb_transfer_ledger")
	if err != nil {
		return err
	}
	ledger, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	rep.LedgerRows = len(ledger)
	for _, id := range committed {
		if !slices.Contains(ledger, id) {
			rep.Missing++
		}
	}
	for _, id := range ledger {
		if !slices.Contains(committed, id) {
			rep.Unexpected++
		}
	}
	return nil
}

func printReport(out io.Writer, r report) {
	s := demo.Finished(out, r.Elapsed)
	s.Row("operations", "%d (%d committed, %d gave up)", r.Transfers, r.Committed, r.GaveUp)
	s.Row("attempts", "%d transactions begun (%.2f per operation)", r.Attempts, float64(r.Attempts)/float64(max(1, r.Transfers)))
	s.Row("restarts", "%d in place at SAVEPOINT cockroach_restart, %d of them followed by a commit in the same transaction", r.Restarts, r.Healed)
	if r.Restarts > 0 && r.Healed == 0 {
		s.Row("", "(none healed: a restart keeps the transaction's snapshot on PostgreSQL; a new transaction heals)")
	}
	s.Row("retries", "%d of the whole transaction", demo.Total(r.Retries))
	s.Causes(r.Retries)
	s.Check(r.Consistent(), "OK: balances sum to zero, the ledger holds exactly the committed transfers",
		"sum of balances %d, ledger rows %d for %d commits (%d missing, %d unexpected), %d balances disagree with the ledger",
		r.Balance, r.LedgerRows, r.Committed, r.Missing, r.Unexpected, r.Disagreeing)
}
