// Quickstart: writers contend for the same rows of an embedded SQLite file
// and dbop makes every transfer land exactly once.
//
//	go run ./examples/quickstart
//
// Eight goroutines move money between three accounts at once, each transfer
// a read-modify-write transaction. SQLite admits one writer at a time, and
// with no busy wait (busy_timeout 0) and deferred transactions the losers
// fail at once with real SQLITE_BUSY ("database is locked") and
// SQLITE_BUSY_SNAPSHOT errors. The classifier knows both need the whole
// transaction run again; the retry does so with jittered backoff. At the end
// the program checks that money was neither created nor lost and that the
// ledger holds each transfer exactly once, and exits non-zero if not.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the embedded default: pure Go, no cgo

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/examples/internal/demo"
)

// config is what one run does.
type config struct {
	Workers   int
	Transfers int // per worker
	Accounts  int
	Path      string // the database file; a temporary one when empty
}

// report is what one run found.
type report struct {
	Operations, Committed, GaveUp int
	Attempts                      int64
	RetriesByCause                map[string]int
	Balance                       int64 // sum of all balances: 0 when nothing was lost
	LedgerRows, LedgerSum         int64
	Elapsed                       time.Duration
}

// Consistent reports whether every committed transfer is in the ledger
// exactly once and the balances add up.
func (r report) Consistent() bool {
	return r.GaveUp == 0 && r.Balance == 0 && r.LedgerRows == int64(r.Committed) && r.Committed == r.Operations
}

func main() {
	cfg := config{}
	flag.IntVar(&cfg.Workers, "workers", 8, "concurrent writers")
	flag.IntVar(&cfg.Transfers, "transfers", 40, "transfers per writer")
	flag.IntVar(&cfg.Accounts, "accounts", 3, "accounts the transfers move money between")
	flag.StringVar(&cfg.Path, "db", "", "database file (default: a new temporary file)")
	flag.Parse()

	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	rep, err := run(ctx, cfg, os.Stdout)
	demo.ExitOnFailure("quickstart", rep.Consistent(), err) // status 1 if the run or its check failed
}

func run(ctx context.Context, cfg config, w io.Writer) (report, error) {
	out := demo.Locked(w) // the workers print progress concurrently
	if cfg.Workers < 1 || cfg.Transfers < 1 || cfg.Accounts < 2 {
		return report{}, fmt.Errorf("need at least 1 worker, 1 transfer and 2 accounts, got %d, %d, %d", cfg.Workers, cfg.Transfers, cfg.Accounts)
	}
	path := cfg.Path
	if path == "" {
		dir, err := os.MkdirTemp("", "dbop-quickstart-")
		if err != nil {
			return report{}, err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "bank.db")
	}

	// No busy wait and deferred transactions: contention surfaces as errors
	// at once, which is what this example wants to show. For a service, keep
	// SQLiteDSN's defaults (busy_timeout 5s, BEGIN IMMEDIATE).
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN(path, sqldb.SQLiteBusyTimeout(0), sqldb.SQLiteTxLock("deferred")))
	if err != nil {
		return report{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(cfg.Workers)
	if err := setup(ctx, db, cfg.Accounts); err != nil {
		return report{}, fmt.Errorf("setup: %w", err)
	}

	st := &demo.Stats{} // attempts, and retries by cause
	// One pipeline, built once, shared by every goroutine.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond)),
			dbop.MaxAttempts(100),
			dbop.OnRetry(func(_ context.Context, e dbop.RetryEvent) { st.Retried(cause(e.Err)) }),
		),
		dbop.Before(st.Attempt),
	)

	fmt.Fprintf(out, "dbop quickstart: %d writers × %d transfers between %d accounts on %s\n",
		cfg.Workers, cfg.Transfers, cfg.Accounts, filepath.Base(path))
	start := time.Now()
	var committed, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			for i := range cfg.Transfers {
				id := fmt.Sprintf("w%d-t%d", w, i)
				from := (w + i) % cfg.Accounts
				to := (from + 1 + i%(cfg.Accounts-1)) % cfg.Accounts
				if _, err := transfer(db, id, from, to, 1+int64(i%7)).With(resilient).Run(ctx); err != nil {
					gaveUp.Add(1)
					fmt.Fprintf(out, "  transfer %s gave up: %v\n", id, err)
					continue
				}
				if n := committed.Add(1); n%int64(max(1, cfg.Workers*cfg.Transfers/4)) == 0 {
					attempts, _ := st.Snapshot()
					fmt.Fprintf(out, "  %4d transfers committed, %4d attempts so far\n", n, attempts)
				}
			}
		})
	}
	wg.Wait()

	attempts, _ := st.Snapshot()
	rep := report{
		Operations:     cfg.Workers * cfg.Transfers,
		Committed:      int(committed.Load()),
		GaveUp:         int(gaveUp.Load()),
		Attempts:       attempts,
		RetriesByCause: st.Retries(),
		Elapsed:        time.Since(start),
	}
	if err := db.QueryRowContext(ctx, "SELECT sum(balance) FROM accounts").Scan(&rep.Balance); err != nil {
		return rep, err
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(amount), 0) FROM ledger").Scan(&rep.LedgerRows, &rep.LedgerSum); err != nil {
		return rep, err
	}
	printReport(out, rep)
	return rep, nil
}

func setup(ctx context.Context, db *sql.DB, accounts int) error {
	stmts := []string{
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE ledger (id TEXT PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL, amount INTEGER NOT NULL)",
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	for i := range accounts {
		if _, err := db.ExecContext(ctx, "INSERT INTO accounts (id, balance) VALUES (?, 0)", i); err != nil {
			return err
		}
	}
	return nil
}

// transfer moves amount from one account to another, reading each balance
// and writing it back, and records the transfer under its id in the ledger.
// The ledger's primary key would reject a second application of the same
// transfer: a write applied twice could not go unnoticed.
func transfer(db *sql.DB, id string, from, to int, amount int64) dbop.Op[struct{}] {
	return sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
		for _, leg := range []struct {
			account int
			delta   int64
		}{{from, -amount}, {to, amount}} {
			var balance int64
			if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE id = ?", leg.account).Scan(&balance); err != nil {
				return struct{}{}, err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = ? WHERE id = ?", balance+leg.delta, leg.account); err != nil {
				return struct{}{}, err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO ledger (id, src, dst, amount) VALUES (?, ?, ?, ?)", id, from, to, amount)
		return struct{}{}, err
	})
}

// cause names an error by its SQLite result code, as modernc.org/sqlite
// reports it.
func cause(err error) string {
	if coder, ok := errors.AsType[interface {
		error
		Code() int
	}](err); ok {
		switch code := coder.Code(); code {
		case 5:
			return "SQLITE_BUSY (database is locked)"
		case 517:
			return "SQLITE_BUSY_SNAPSHOT (another connection wrote first)"
		default:
			return fmt.Sprintf("SQLite result code %d", code)
		}
	}
	return err.Error()
}

func printReport(out io.Writer, r report) {
	s := demo.Finished(out, r.Elapsed)
	s.Row("operations", "%d (%d committed, %d gave up)", r.Operations, r.Committed, r.GaveUp)
	s.Row("attempts", "%d (%.2f per operation)", r.Attempts, float64(r.Attempts)/float64(max(1, r.Operations)))
	s.Row("retries", "%d", demo.Total(r.RetriesByCause))
	s.Causes(r.RetriesByCause)
	s.Check(r.Consistent(), "OK: no money created or lost, every transfer in the ledger exactly once",
		"sum of balances %d, ledger rows %d for %d commits", r.Balance, r.LedgerRows, r.Committed)
}
