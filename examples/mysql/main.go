// Mysql: deadlocks on MySQL or MariaDB through database/sql and
// go-sql-driver/mysql, retried by dbop as whole transactions.
//
//	DBOP_MYSQL_DSN='root@tcp(127.0.0.1:3306)/dbop_test' go run ./examples/mysql
//
// The DSN names a database the program may create tables in. It creates
// its own, example_mysql_*, dropping those of an earlier run first, and
// leaves them behind to look at. The dialect, [sqldb.MariaDB] or
// [sqldb.MySQL], is chosen from SELECT VERSION(): it decides which server
// settings carry the per-attempt limits.
//
// Each transfer is a read-modify-write transaction: it locks the two
// accounts with SELECT … FOR UPDATE, one after the other in an order picked
// at random, writes both balances back and records the transfer in a
// ledger. Two transfers that lock the same accounts in opposite orders can
// each hold one row and wait for the other's: InnoDB sees the cycle at
// once and rolls one of them back whole with error 1213 (ER_LOCK_DEADLOCK),
// savepoints included. [sqldb.InTx] runs each transfer in a transaction of
// its own per attempt, its classifier calls 1213 RetryTransaction, and
// [dbop.WithRetry] runs the victim again from START TRANSACTION, reads
// included, so it decides on balances it reads afresh.
//
// Every attempt runs with innodb_lock_wait_timeout = 2 ([sqldb.LockTimeout]),
// a server-side limit on each lock wait: a wait that long fails its
// statement with 1205 instead of holding the transfer up for the server's
// default 50 seconds. MySQL and MariaDB have no transaction-scoped form of
// that setting, so InTx pins a connection for the attempt, sets it, and
// sets the previous value back afterwards; the final check reads it on the
// pooled connections.
//
// Phase 1 forces a deadlock with channels, so it happens on every run;
// in phase 2 workers race, and how many deadlocks they meet varies. At the
// end the program checks that money was neither created nor lost, that
// every transfer is in the ledger exactly once and the balances agree with
// it, and that no connection kept the attempts' setting. It exits with
// status 1 if not, and with status 2 when DBOP_MYSQL_DSN is not set.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/examples/internal/demo"
)

// dsnVar is the environment variable that holds the DSN.
var dsnVar = demo.DSNVar{
	Name:    "DBOP_MYSQL_DSN",
	What:    "a go-sql-driver/mysql DSN for MySQL or MariaDB, naming a database the example may create tables in",
	Example: "root@tcp(127.0.0.1:3306)/dbop_test",
}

// lockWait is the per-attempt innodb_lock_wait_timeout.
const lockWait = 2 * time.Second

// config is what one run does.
type config struct {
	DSN       string
	Workers   int // phase 2: concurrent writers
	Transfers int // phase 2: transfers per writer
	Accounts  int
}

// report is what one run found.
type report struct {
	Dialect                      sqldb.Dialect
	Transfers, Committed, GaveUp int
	Attempts                     int64
	ForcedDeadlocks              int            // 1213 retries in phase 1
	Retries                      map[string]int // by cause and verdict
	Balance                      int64          // sum of the balances: 0 when nothing was lost
	LedgerRows                   int64
	Disagreeing                  int64 // accounts whose balance differs from the ledger's
	Connections                  int   // pooled connections checked for a leftover setting
	Leftover                     int   // those whose innodb_lock_wait_timeout differs from the global one
	Elapsed                      time.Duration
}

// Consistent reports whether every transfer landed exactly once, the
// balances add up and agree with the ledger, and no pooled connection kept
// an attempt's setting.
func (r report) Consistent() bool {
	return r.GaveUp == 0 && r.Committed == r.Transfers && r.Balance == 0 &&
		r.LedgerRows == int64(r.Committed) && r.Disagreeing == 0 && r.Leftover == 0
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Workers, "workers", 8, "phase 2: concurrent writers")
	flag.IntVar(&cfg.Transfers, "transfers", 20, "phase 2: transfers per writer")
	flag.IntVar(&cfg.Accounts, "accounts", 4, "accounts the transfers move money between")
	flag.Parse()
	cfg.DSN = dsnVar.MustGet("mysql example") // status 2 if it is not set

	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	rep, err := run(ctx, cfg, os.Stdout)
	demo.ExitOnFailure("mysql example", rep.Consistent(), err) // status 1 if the run or its check failed
}

func run(ctx context.Context, cfg config, out io.Writer) (report, error) {
	if cfg.DSN == "" {
		return report{}, errors.New(dsnVar.Message())
	}
	out = demo.Locked(out) // the workers report progress
	if cfg.Workers < 1 || cfg.Transfers < 1 || cfg.Accounts < 2 {
		return report{}, fmt.Errorf("need at least 1 worker, 1 transfer and 2 accounts, got %d, %d, %d", cfg.Workers, cfg.Transfers, cfg.Accounts)
	}
	db, err := sql.Open("mysql", cfg.DSN)
	if err != nil {
		return report{}, fmt.Errorf("%s: %w", dsnVar.Name, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(cfg.Workers)
	db.SetMaxIdleConns(cfg.Workers)

	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return report{}, fmt.Errorf("connect: %w", err)
	}
	dialect := sqldb.MySQL
	if strings.Contains(version, "MariaDB") {
		dialect = sqldb.MariaDB
	}
	if err := setup(ctx, db, cfg.Accounts); err != nil {
		return report{}, fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(out, "dbop mysql example: server %s, dialect %s, innodb_lock_wait_timeout %v per attempt\n", version, dialect, lockWait)

	st := &demo.Stats{}          // attempts, and retries by cause and verdict
	phaseLog := &demo.PhaseLog{} // tells each retry of phase 1
	// One pipeline for every transfer, built once and shared by all the
	// goroutines: a whole-transaction retry with jittered backoff.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(2*time.Millisecond, 100*time.Millisecond)),
			dbop.MaxAttempts(30),
			dbop.OnRetry(func(ctx context.Context, e dbop.RetryEvent) {
				why := cause(e.Err) + " (" + e.Verdict.String() + ")"
				st.Retried(why)
				phaseLog.Printf("  transfer %s, attempt %d: %s; the transaction runs again\n", demo.ID(ctx), e.Attempt, why)
			}),
		),
		dbop.Before(st.Attempt),
	)

	start := time.Now()
	rep := report{Dialect: dialect}
	var committed, gaveUp atomic.Int64
	// do runs one transfer and returns the number of transfers committed
	// so far, or 0 if it gave up.
	do := func(ctx context.Context, t transfer, afterFirstLock func(context.Context) error) int64 {
		ctx = demo.WithID(ctx, t.id) // for the OnRetry hook
		if _, err := t.op(db, dialect, afterFirstLock).With(resilient).Run(ctx); err != nil {
			gaveUp.Add(1)
			fmt.Fprintf(out, "  transfer %s gave up: %v\n", t.id, err)
			return 0
		}
		return committed.Add(1)
	}

	// Phase 1: two transfers lock accounts 1 and 2 in opposite orders; each
	// takes its first row, waits until the other has taken its own, and then
	// asks for the other's: a deadlock on every run.
	fmt.Fprintln(out, "phase 1: two transfers lock accounts 1 and 2 FOR UPDATE in opposite orders, and meet in between")
	phaseLog.Start(out)
	meet := demo.NewRendezvous(2)
	var wg sync.WaitGroup
	for _, t := range []transfer{
		{id: "forced-1", from: 1, to: 2, amount: 10, fromFirst: true},
		{id: "forced-2", from: 1, to: 2, amount: 10, fromFirst: false},
	} {
		wait, leave := meet.Party()
		wg.Go(func() {
			defer leave() // in case the first attempt failed before it arrived
			do(ctx, t, wait)
		})
	}
	wg.Wait()
	phaseLog.Stop()
	rep.Transfers += 2
	rep.ForcedDeadlocks = st.Caused(deadlock)
	attempts, retries := st.Snapshot()
	fmt.Fprintf(out, "  %d transfers committed, %d attempts: each deadlock victim ran again from START TRANSACTION\n", committed.Load(), attempts)

	// Phase 2: workers race, each transfer locking its two accounts in a
	// random order.
	fmt.Fprintf(out, "phase 2: %d workers × %d transfers among %d accounts, rows locked in random order\n", cfg.Workers, cfg.Transfers, cfg.Accounts)
	phase2 := cfg.Workers * cfg.Transfers
	rep.Transfers += phase2
	progress := int64(max(1, phase2/4))
	base := committed.Load()
	for w := range cfg.Workers {
		wg.Go(func() {
			for i := range cfg.Transfers {
				from := 1 + rand.IntN(cfg.Accounts)
				to := 1 + (from+rand.IntN(cfg.Accounts-1))%cfg.Accounts
				t := transfer{id: fmt.Sprintf("w%d-t%d", w, i), from: from, to: to, amount: 1 + int64(rand.IntN(9)), fromFirst: rand.IntN(2) == 0}
				if n := do(ctx, t, nil) - base; n > 0 && n%progress == 0 {
					a, r := st.Snapshot()
					fmt.Fprintf(out, "  %4d transfers committed, %4d attempts, %3d retries so far\n", n, a-attempts, r-retries)
				}
			}
		})
	}
	wg.Wait()

	rep.Committed, rep.GaveUp = int(committed.Load()), int(gaveUp.Load())
	rep.Attempts, _ = st.Snapshot()
	rep.Retries = st.Retries()
	rep.Elapsed = time.Since(start)
	if err := check(ctx, db, cfg.Workers, &rep); err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	printReport(out, rep)
	return rep, nil
}

func setup(ctx context.Context, db *sql.DB, accounts int) error {
	stmts := []string{
		"DROP TABLE IF EXISTS example_mysql_accounts, example_mysql_ledger",
		"CREATE TABLE example_mysql_accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE example_mysql_ledger (id VARCHAR(64) PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB",
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	for id := 1; id <= accounts; id++ {
		if _, err := db.ExecContext(ctx, "INSERT INTO example_mysql_accounts (id, balance) VALUES (?, 0)", id); err != nil {
			return err
		}
	}
	return nil
}

// transfer is one movement of money, recorded in the ledger under id.
type transfer struct {
	id        string
	from, to  int
	amount    int64
	fromFirst bool // lock the payer's row first
}

// op returns the transfer as an operation: a transaction that locks both
// accounts with SELECT … FOR UPDATE in the transfer's order (running
// afterFirstLock, if not nil, between the two), writes back the balances it
// computed from what it read, and records the transfer in the ledger. The
// ledger's primary key would reject a transfer applied twice.
func (t transfer) op(db *sql.DB, d sqldb.Dialect, afterFirstLock func(context.Context) error) dbop.Op[struct{}] {
	order := []int{t.from, t.to}
	if !t.fromFirst {
		order = []int{t.to, t.from}
	}
	return sqldb.InTx(db, d, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
		balance := map[int]int64{}
		for i, id := range order {
			var b int64
			if err := tx.QueryRowContext(ctx, "SELECT balance FROM example_mysql_accounts WHERE id = ? FOR UPDATE", id).Scan(&b); err != nil {
				return struct{}{}, err
			}
			balance[id] = b
			if i == 0 && afterFirstLock != nil {
				if err := afterFirstLock(ctx); err != nil {
					return struct{}{}, err
				}
			}
		}
		for _, w := range []struct {
			id      int
			balance int64
		}{{t.from, balance[t.from] - t.amount}, {t.to, balance[t.to] + t.amount}} {
			if _, err := tx.ExecContext(ctx, "UPDATE example_mysql_accounts SET balance = ? WHERE id = ?", w.balance, w.id); err != nil {
				return struct{}{}, err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO example_mysql_ledger (id, src, dst, amount) VALUES (?, ?, ?, ?)", t.id, t.from, t.to, t.amount)
		return struct{}{}, err
	}, sqldb.LockTimeout(lockWait)) // innodb_lock_wait_timeout for each attempt, restored after it
}

// check reads back what the run committed, and the lock wait timeout of up
// to conns pooled connections.
func check(ctx context.Context, db *sql.DB, conns int, rep *report) error {
	queries := []struct {
		sql  string
		dest any
	}{
		{"SELECT COALESCE(SUM(balance), 0) FROM example_mysql_accounts", &rep.Balance},
		{"SELECT COUNT(*) FROM example_mysql_ledger", &rep.LedgerRows},
		// An account's balance is what the ledger says came in less what
		// went out.
		{`SELECT COUNT(*) FROM example_mysql_accounts a WHERE a.balance <> (
			SELECT COALESCE(SUM(CASE WHEN l.dst = a.id THEN l.amount ELSE -l.amount END), 0)
			FROM example_mysql_ledger l WHERE a.id IN (l.src, l.dst))`, &rep.Disagreeing},
	}
	for _, q := range queries {
		if err := db.QueryRowContext(ctx, q.sql).Scan(q.dest); err != nil {
			return err
		}
	}
	// Hold conns connections at once, so that each is a different one of
	// the pool's: the idle ones first.
	held := make([]*sql.Conn, 0, conns)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		held = append(held, c)
		var same bool
		if err := c.QueryRowContext(ctx, "SELECT @@SESSION.innodb_lock_wait_timeout = @@GLOBAL.innodb_lock_wait_timeout").Scan(&same); err != nil {
			return err
		}
		rep.Connections++
		if !same {
			rep.Leftover++
		}
	}
	return nil
}

const deadlock = "1213 ER_LOCK_DEADLOCK"

// cause names an error by its server error number, as go-sql-driver/mysql
// reports it in a *mysql.MySQLError.
func cause(err error) string {
	myErr, ok := errors.AsType[*mysql.MySQLError](err)
	if !ok {
		return err.Error()
	}
	switch myErr.Number {
	case 1213:
		return deadlock
	case 1205:
		return "1205 ER_LOCK_WAIT_TIMEOUT"
	default:
		return fmt.Sprintf("%d %s", myErr.Number, myErr.Message)
	}
}

func printReport(out io.Writer, r report) {
	s := demo.Finished(out, r.Elapsed)
	s.Row("operations", "%d (%d committed, %d gave up)", r.Transfers, r.Committed, r.GaveUp)
	s.Row("attempts", "%d (%.2f per operation)", r.Attempts, float64(r.Attempts)/float64(max(1, r.Transfers)))
	s.Row("retries", "%d", demo.Total(r.Retries))
	s.Causes(r.Retries)
	s.Check(r.Consistent(), "OK: no money created or lost, every transfer in the ledger exactly once, no setting left behind",
		"sum of balances %d, ledger rows %d for %d commits, %d balances disagree with the ledger, %d of %d pooled connections kept a lock wait timeout",
		r.Balance, r.LedgerRows, r.Committed, r.Disagreeing, r.Leftover, r.Connections)
}
