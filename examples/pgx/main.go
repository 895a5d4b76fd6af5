// Pgx: deadlocks and lock timeouts on PostgreSQL through pgx v5, each
// retried by dbop at the scope that heals it.
//
//	DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go run ./examples/pgx
//
// The program creates its own tables, example_pgx_*, dropping those of an
// earlier run first, and leaves them behind to look at. It runs three phases
// on one pgxpool.Pool.
//
// Deadlocks, retried as whole transactions (phases 1 and 2). Money moves
// between two accounts, A and B, in both directions. A transfer debits the
// payer before it credits the payee, so a transfer A→B locks row A and then
// row B, and a transfer B→A locks B and then A. When two of them each hold
// their first row and ask for the other's, PostgreSQL's deadlock detector
// (after deadlock_timeout, 1s by default) fails one of them with SQLSTATE
// 40P01. [pgxdb.InTx] runs each transfer in a transaction of its own per
// attempt, its classifier calls 40P01 RetryTransaction, and
// [dbop.WithRetry] runs the victim again from BEGIN, reads included. Phase 1
// forces such a deadlock with channels, so it happens on every run. The
// victim's retry may even deadlock again: PostgreSQL does not queue a new
// transaction behind the one already waiting for a row, so the retry can
// take its first row before the survivor wakes up, and the cycle closes once
// more; the retry heals that too. In phase 2 workers race, and how many
// deadlocks they meet varies.
//
// A lock timeout, retried at a savepoint (phase 3). Another connection
// holds the stock row of an item. An outer transaction records an order,
// then reserves the item in a step run with [pgxdb.InSavepoint] and a
// per-attempt lock_timeout ([pgxdb.Timeouts]). Each attempt fails with
// SQLSTATE 55P03 once the lock timeout expires; the savepoint is rolled
// back, which undoes the step and nothing else, and the step is tried
// again. The other connection lets go after the second failure, so the
// third attempt succeeds. The order recorded before the step survives, the
// outer transaction runs once, and lock_timeout is back to its earlier
// value after the step.
//
// At the end the program checks that money was neither created nor lost,
// that every transfer is in the ledger exactly once and the balances agree
// with it, and that the order and the reservation were committed once each.
// It exits with status 1 if not, and with status 2 when DBOP_POSTGRES_DSN is
// not set.
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
	"github.com/dbop-go/dbop/examples/internal/demo"
)

// dsnVar is the environment variable that holds the connection string.
var dsnVar = demo.DSNVar{
	Name:    "DBOP_POSTGRES_DSN",
	What:    "a PostgreSQL connection string",
	Example: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
}

// heldAttempts is how many attempts of the savepoint step time out before
// the other connection lets go of the row.
const heldAttempts = 2

// config is what one run does.
type config struct {
	DSN         string
	Workers     int           // phase 2: concurrent writers
	Transfers   int           // phase 2: transfers per writer
	LockTimeout time.Duration // phase 3: lock_timeout of each attempt of the step

	// DeadlockTimeout, when positive, is the deadlock_timeout the example
	// asks for on each connection; 0 keeps the server's.
	DeadlockTimeout time.Duration
}

// report is what one run found.
type report struct {
	Transfers, Committed, GaveUp int
	Attempts                     int64          // attempts of the transfers
	ForcedDeadlocks              int            // 40P01 retries in phase 1
	Retries                      map[string]int // every retry, by cause and verdict
	Balance                      int64          // sum of the balances: 0 when nothing was lost
	LedgerRows                   int64
	Disagreeing                  int64 // accounts whose balance differs from the ledger's
	Step                         stepReport
	Elapsed                      time.Duration
}

// stepReport is what phase 3 found.
type stepReport struct {
	OuterRuns     int    // runs of the outer transaction
	StepAttempts  int    // attempts of the step
	Orders        int64  // committed rows of the order recorded before the step
	Reserved      int64  // committed reservations
	TimeoutBefore string // lock_timeout in the outer transaction before the step
	TimeoutAfter  string // and after it
}

// Consistent reports whether every transfer landed exactly once, the
// balances add up and agree with the ledger, and the outer transaction of
// phase 3 kept its earlier work.
func (r report) Consistent() bool {
	return r.GaveUp == 0 && r.Committed == r.Transfers && r.Balance == 0 &&
		r.LedgerRows == int64(r.Committed) && r.Disagreeing == 0 &&
		r.Step.OuterRuns == 1 && r.Step.StepAttempts == heldAttempts+1 &&
		r.Step.Orders == 1 && r.Step.Reserved == 1 && r.Step.TimeoutAfter == r.Step.TimeoutBefore
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Workers, "workers", 4, "phase 2: concurrent writers")
	flag.IntVar(&cfg.Transfers, "transfers", 10, "phase 2: transfers per writer")
	flag.DurationVar(&cfg.LockTimeout, "lock-timeout", 100*time.Millisecond, "phase 3: lock_timeout of each attempt of the step")
	flag.DurationVar(&cfg.DeadlockTimeout, "deadlock-timeout", 50*time.Millisecond, "deadlock_timeout to ask for (superuser only; 0 keeps the server's)")
	flag.Parse()
	cfg.DSN = dsnVar.MustGet("pgx example") // status 2 if it is not set

	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	rep, err := run(ctx, cfg, os.Stdout)
	demo.ExitOnFailure("pgx example", rep.Consistent(), err) // status 1 if the run or its check failed
}

func run(ctx context.Context, cfg config, out io.Writer) (report, error) {
	if cfg.DSN == "" {
		return report{}, errors.New(dsnVar.Message())
	}
	out = demo.Locked(out) // the workers report progress
	if cfg.Workers < 1 || cfg.Transfers < 1 || cfg.LockTimeout <= 0 {
		return report{}, fmt.Errorf("need at least 1 worker, 1 transfer and a positive lock timeout, got %d, %d, %v", cfg.Workers, cfg.Transfers, cfg.LockTimeout)
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return report{}, fmt.Errorf("%s: %w", dsnVar.Name, err)
	}
	poolCfg.MaxConns = int32(cfg.Workers + 2) // the writers, and phase 3's two connections
	if cfg.DeadlockTimeout > 0 {
		poolCfg.AfterConnect = lowerDeadlockTimeout(cfg.DeadlockTimeout)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return report{}, err
	}
	defer pool.Close()
	var version, deadlockTimeout string
	if err := pool.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('deadlock_timeout')").Scan(&version, &deadlockTimeout); err != nil {
		return report{}, fmt.Errorf("connect: %w", err)
	}
	if err := setup(ctx, pool); err != nil {
		return report{}, fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(out, "dbop pgx example: PostgreSQL %s, deadlock_timeout %s (each deadlock is found after a lock wait that long)\n", version, deadlockTimeout)

	st := &demo.Stats{}          // attempts, and retries by cause and verdict
	phaseLog := &demo.PhaseLog{} // tells each retry of phase 1
	// One pipeline for every transfer, built once and shared by all the
	// goroutines: a whole-transaction retry with jittered backoff.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(5*time.Millisecond, 200*time.Millisecond)),
			dbop.MaxAttempts(20),
			dbop.OnRetry(func(ctx context.Context, e dbop.RetryEvent) {
				cause := retryCause(e)
				st.Retried(cause)
				phaseLog.Printf("  transfer %s, attempt %d: %s; the transaction runs again\n", demo.ID(ctx), e.Attempt, cause)
			}),
		),
		dbop.Before(st.Attempt),
	)

	start := time.Now()
	var rep report
	var committed, gaveUp atomic.Int64
	// do runs one transfer and returns the number of transfers committed
	// so far, or 0 if it gave up.
	do := func(ctx context.Context, id, from, to string, amount int64, afterDebit func(context.Context) error) int64 {
		ctx = demo.WithID(ctx, id) // for the OnRetry hook
		if _, err := transfer(pool, id, from, to, amount, afterDebit).With(resilient).Run(ctx); err != nil {
			gaveUp.Add(1)
			fmt.Fprintf(out, "  transfer %s gave up: %v\n", id, err)
			return 0
		}
		return committed.Add(1)
	}

	// Phase 1: two transfers in opposite directions each take their first
	// row, wait until the other has taken its own, and then ask for the
	// other's: a deadlock on every run.
	fmt.Fprintln(out, "phase 1: transfers A→B and B→A each lock their first row, then ask for the other's")
	phaseLog.Start(out)
	meet := demo.NewRendezvous(2)
	var wg sync.WaitGroup
	for i, leg := range [][2]string{{"A", "B"}, {"B", "A"}} {
		wait, leave := meet.Party()
		wg.Go(func() {
			defer leave() // in case the first attempt failed before it arrived
			do(ctx, fmt.Sprintf("forced-%d", i+1), leg[0], leg[1], 10, wait)
		})
	}
	wg.Wait()
	phaseLog.Stop()
	rep.Transfers += 2
	attempts, retries := st.Snapshot()
	rep.ForcedDeadlocks = st.Caused("40P01")
	fmt.Fprintf(out, "  %d transfers committed, %d attempts: each deadlock victim ran again from BEGIN\n", committed.Load(), attempts)

	// Phase 2: workers race, half of the transfers in each direction.
	fmt.Fprintf(out, "phase 2: %d workers × %d transfers between A and B, in both directions at once\n", cfg.Workers, cfg.Transfers)
	phase2 := cfg.Workers * cfg.Transfers
	rep.Transfers += phase2
	progress := int64(max(1, phase2/4))
	base := committed.Load()
	for w := range cfg.Workers {
		wg.Go(func() {
			for i := range cfg.Transfers {
				from, to := "A", "B"
				if (w+i)%2 == 1 {
					from, to = to, from
				}
				if n := do(ctx, fmt.Sprintf("w%d-t%d", w, i), from, to, 1+int64(i%5), nil) - base; n > 0 && n%progress == 0 {
					a, r := st.Snapshot()
					fmt.Fprintf(out, "  %4d transfers committed, %4d attempts, %3d retries so far\n", n, a-attempts, r-retries)
				}
			}
		})
	}
	wg.Wait()

	// Phase 3: a step retried at a savepoint inside an outer transaction.
	fmt.Fprintf(out, "phase 3: a step retried at a savepoint, with lock_timeout %v per attempt, while another connection holds its row\n", cfg.LockTimeout)
	step, err := reserve(ctx, pool, cfg.LockTimeout, st, out)
	rep.Step = step
	if err != nil {
		return rep, fmt.Errorf("phase 3: %w", err)
	}

	rep.Committed, rep.GaveUp = int(committed.Load()), int(gaveUp.Load())
	rep.Attempts, _ = st.Snapshot()
	rep.Retries = st.Retries()
	rep.Elapsed = time.Since(start)
	if err := check(ctx, pool, &rep); err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	printReport(out, rep)
	return rep, nil
}

// lowerDeadlockTimeout returns a pgxpool AfterConnect hook that sets
// deadlock_timeout on each new connection. PostgreSQL looks for a deadlock
// only once a lock wait has lasted deadlock_timeout (1s by default), so each
// deadlock of phase 2 would cost a second. Only a superuser, or a role
// granted SET on the parameter, may change it; for any other role the hook
// keeps the server's value, and the example takes longer.
func lowerDeadlockTimeout(d time.Duration) func(context.Context, *pgx.Conn) error {
	set := fmt.Sprintf("SET deadlock_timeout = %d", d.Milliseconds())
	return func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, set)
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42501" {
			return nil // insufficient_privilege: keep the server's value
		}
		return err
	}
}

func setup(ctx context.Context, pool *pgxpool.Pool) error {
	stmts := []string{
		"DROP TABLE IF EXISTS example_pgx_accounts, example_pgx_ledger, example_pgx_orders, example_pgx_stock",
		"CREATE TABLE example_pgx_accounts (id text PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE example_pgx_ledger (id text PRIMARY KEY, src text NOT NULL, dst text NOT NULL, amount bigint NOT NULL)",
		"CREATE TABLE example_pgx_orders (id text PRIMARY KEY, item text NOT NULL)",
		"CREATE TABLE example_pgx_stock (item text PRIMARY KEY, reserved int NOT NULL)",
		"INSERT INTO example_pgx_accounts VALUES ('A', 0), ('B', 0)",
		"INSERT INTO example_pgx_stock VALUES ('widget', 0)",
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// transfer moves amount from one account to the other: it debits the payer,
// runs afterDebit (if not nil), credits the payee and records the transfer
// in the ledger under id. The ledger's primary key would reject a transfer
// applied twice.
func transfer(pool *pgxpool.Pool, id, from, to string, amount int64, afterDebit func(context.Context) error) dbop.Op[struct{}] {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (struct{}, error) {
		if _, err := tx.Exec(ctx, "UPDATE example_pgx_accounts SET balance = balance - $1 WHERE id = $2", amount, from); err != nil {
			return struct{}{}, err
		}
		if afterDebit != nil {
			if err := afterDebit(ctx); err != nil {
				return struct{}{}, err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE example_pgx_accounts SET balance = balance + $1 WHERE id = $2", amount, to); err != nil {
			return struct{}{}, err
		}
		_, err := tx.Exec(ctx, "INSERT INTO example_pgx_ledger (id, src, dst, amount) VALUES ($1, $2, $3, $4)", id, from, to, amount)
		return struct{}{}, err
	})
}

// reserve runs phase 3. Another connection locks the widget's stock row; an
// outer transaction records order-1 and then reserves a widget in a step
// retried at a savepoint, with a lock_timeout per attempt. The other
// connection lets go when the step's retry reports its heldAttempts-th
// failure, so the attempt after it succeeds.
func reserve(ctx context.Context, pool *pgxpool.Pool, lockTimeout time.Duration, st *demo.Stats, out io.Writer) (stepReport, error) {
	var rep stepReport
	holder, err := pool.Begin(ctx)
	if err != nil {
		return rep, err
	}
	var once sync.Once
	letGo := func() {
		once.Do(func() { _ = holder.Rollback(context.WithoutCancel(ctx)) })
	}
	defer letGo()
	if _, err := holder.Exec(ctx, "SELECT 1 FROM example_pgx_stock WHERE item = 'widget' FOR UPDATE"); err != nil {
		return rep, err
	}
	fmt.Fprintln(out, "  another connection locks the widget's stock row (SELECT … FOR UPDATE)")

	// The outer transaction has a retry of its own, as any transaction
	// should; OuterRuns shows it was not needed.
	order := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (struct{}, error) {
		rep.OuterRuns++
		rep.StepAttempts = 0
		if _, err := tx.Exec(ctx, "INSERT INTO example_pgx_orders (id, item) VALUES ('order-1', 'widget')"); err != nil {
			return struct{}{}, err
		}
		fmt.Fprintln(out, "  outer transaction: order-1 recorded")
		if err := tx.QueryRow(ctx, "SHOW lock_timeout").Scan(&rep.TimeoutBefore); err != nil {
			return struct{}{}, err
		}

		step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			tag, err := tx.Exec(ctx, "UPDATE example_pgx_stock SET reserved = reserved + 1 WHERE item = 'widget'")
			return tag.RowsAffected(), err
		})
		n, err := step.With(
			dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(heldAttempts+3),
				dbop.OnRetry(func(_ context.Context, e dbop.RetryEvent) {
					cause := retryCause(e)
					st.Retried(cause)
					fmt.Fprintf(out, "  step attempt %d: %s → rolled back to the savepoint, trying again\n", e.Attempt, cause)
					if e.Attempt == heldAttempts {
						letGo()
						fmt.Fprintln(out, "  the other connection lets go of the row")
					}
				})),
			dbop.Before(func(context.Context) error { rep.StepAttempts++; return nil }),
			pgxdb.InSavepoint(tx),                              // each attempt in a savepoint of tx
			pgxdb.Timeouts(tx, pgxdb.LockTimeout(lockTimeout)), // SET LOCAL lock_timeout for that attempt only
		).Run(ctx) // the context InTx handed to this function
		if err != nil {
			return struct{}{}, fmt.Errorf("reserve: %w", err)
		}
		fmt.Fprintf(out, "  step attempt %d: %d widget reserved\n", rep.StepAttempts, n)
		return struct{}{}, tx.QueryRow(ctx, "SHOW lock_timeout").Scan(&rep.TimeoutAfter)
	})
	if _, err := order.With(dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(3))).Run(ctx); err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "  outer transaction committed after %d run; lock_timeout in it %s before the step, %s after\n", rep.OuterRuns, rep.TimeoutBefore, rep.TimeoutAfter)
	return rep, nil
}

// check reads back what the run committed.
func check(ctx context.Context, pool *pgxpool.Pool, rep *report) error {
	queries := []struct {
		sql  string
		dest any
	}{
		{"SELECT coalesce(sum(balance), 0) FROM example_pgx_accounts", &rep.Balance},
		{"SELECT count(*) FROM example_pgx_ledger", &rep.LedgerRows},
		// An account's balance is what the ledger says came in less what
		// went out.
		{`SELECT count(*) FROM example_pgx_accounts a WHERE a.balance <> (
			SELECT coalesce(sum(CASE WHEN l.dst = a.id THEN l.amount ELSE -l.amount END), 0)
			FROM example_pgx_ledger l WHERE a.id IN (l.src, l.dst))`, &rep.Disagreeing},
		{"SELECT count(*) FROM example_pgx_orders WHERE id = 'order-1'", &rep.Step.Orders},
		{"SELECT reserved FROM example_pgx_stock WHERE item = 'widget'", &rep.Step.Reserved},
	}
	for _, q := range queries {
		if err := pool.QueryRow(ctx, q.sql).Scan(q.dest); err != nil {
			return err
		}
	}
	return nil
}

// retryCause names what a retry heals: the error's SQLSTATE and the
// verdict of pgxdb's classifier, such as "40P01 deadlock_detected
// (retry-transaction)".
func retryCause(e dbop.RetryEvent) string {
	return demo.PostgresCause(e.Err) + " (" + e.Verdict.String() + ")"
}

func printReport(out io.Writer, r report) {
	s := demo.Finished(out, r.Elapsed)
	s.Row("transfers", "%d (%d committed, %d gave up), %d attempts (%.2f per transfer)",
		r.Transfers, r.Committed, r.GaveUp, r.Attempts, float64(r.Attempts)/float64(max(1, r.Transfers)))
	s.Row("step", "%d attempts at a savepoint, in %d run of the outer transaction", r.Step.StepAttempts, r.Step.OuterRuns)
	s.Row("retries", "%d", demo.Total(r.Retries))
	s.Causes(r.Retries)
	s.Check(r.Consistent(), "OK: no money created or lost, every transfer in the ledger exactly once, order and reservation committed once",
		"sum of balances %d, ledger rows %d for %d commits, %d balances disagree with the ledger, order-1 rows %d, widgets reserved %d",
		r.Balance, r.LedgerRows, r.Committed, r.Disagreeing, r.Step.Orders, r.Step.Reserved)
}
