// Command quickstart moves money between three accounts of an embedded
// SQLite database from eight goroutines at once, and dbop makes every
// transfer land exactly once.
//
//	go run ./examples/quickstart
//
// SQLite admits one writer at a time. With no busy wait and deferred
// transactions, as opened below, the losers fail at once with real
// SQLITE_BUSY ("database is locked") and SQLITE_BUSY_SNAPSHOT errors.
// [sqldb.Do] runs each transfer in a transaction of its own per attempt, the
// SQLite dialect calls both errors RetryTransaction, and [dbop.WithRetry]
// runs the whole transaction again, reads included. At the end the program
// checks that no money was created or lost and that the ledger holds each
// transfer exactly once; it exits with status 1 if not.
//
// The driver is modernc.org/sqlite, in pure Go: nothing but Go is needed.
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

	_ "modernc.org/sqlite"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

func main() {
	workers := flag.Int("workers", 8, "concurrent writers")
	transfers := flag.Int("transfers", 40, "transfers per writer")
	path := flag.String("db", "", "database file (default: a new temporary file)")
	flag.Parse()

	if _, err := run(context.Background(), *path, *workers, *transfers, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// stats is what a run counted.
type stats struct {
	Committed, Attempts int64
	Retries             map[int]int // by SQLite result code
}

// run creates the accounts in the database file at path (a temporary one
// when path is empty), runs the transfers, prints what happened to out and
// checks the result.
func run(ctx context.Context, path string, workers, transfers int, out io.Writer) (stats, error) {
	if path == "" {
		dir, err := os.MkdirTemp("", "dbop-quickstart-")
		if err != nil {
			return stats{}, err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "bank.db")
	}
	// No busy wait and deferred transactions, so that contention shows as
	// errors. A service keeps SQLiteDSN's defaults: busy_timeout 5s and
	// BEGIN IMMEDIATE, under which writers queue instead.
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN(path, sqldb.SQLiteBusyTimeout(0), sqldb.SQLiteTxLock("deferred")))
	if err != nil {
		return stats{}, err
	}
	defer db.Close()
	for _, stmt := range []string{
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE ledger (id TEXT PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL, amount INTEGER NOT NULL)",
		"INSERT INTO accounts (id, balance) VALUES (0, 0), (1, 0), (2, 0)",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return stats{}, err
		}
	}

	var (
		st       = stats{Retries: map[int]int{}}
		mu       sync.Mutex // guards st.Retries
		attempts atomic.Int64
	)
	// One pipeline, built once, shared by every goroutine.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond)),
			dbop.MaxAttempts(100),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				mu.Lock()
				defer mu.Unlock()
				st.Retries[sqliteCode(e.Err)]++
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
				from := (w + i) % 3
				to := (from + 1 + i%2) % 3
				op := transfer(db, fmt.Sprintf("w%d-t%d", w, i), from, to, 1+int64(i%7))
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
	fmt.Fprintf(out, "retried:   %d × SQLITE_BUSY (database is locked), %d × SQLITE_BUSY_SNAPSHOT (another connection wrote first)\n",
		st.Retries[5], st.Retries[517])

	// The check: no money created or lost, every transfer in the ledger
	// once, and every balance what the ledger says came in less what went out.
	var sum, rows, disagreeing int64
	if err := db.QueryRowContext(ctx, checkQuery).Scan(&sum, &rows, &disagreeing); err != nil {
		return st, err
	}
	fmt.Fprintf(out, "check:     balances sum to %d, %d ledger rows for %d transfers, %d balances disagree with the ledger\n",
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

// transfer moves amount from one account to another, reading each balance
// and writing it back, and records the transfer under id in the ledger,
// whose primary key would reject a transfer applied twice.
func transfer(db *sql.DB, id string, from, to int, amount int64) dbop.Op[struct{}] {
	return sqldb.Do(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) error {
		for account, delta := range map[int]int64{from: -amount, to: amount} {
			var balance int64
			if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE id = ?", account).Scan(&balance); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = ? WHERE id = ?", balance+delta, account); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO ledger (id, src, dst, amount) VALUES (?, ?, ?, ?)", id, from, to, amount)
		return err
	})
}

const checkQuery = `SELECT
	(SELECT coalesce(sum(balance), 0) FROM accounts),
	(SELECT count(*) FROM ledger),
	(SELECT count(*) FROM accounts a WHERE balance <> (
		SELECT coalesce(sum(CASE WHEN dst = a.id THEN amount ELSE -amount END), 0)
		FROM ledger WHERE a.id IN (src, dst)))`

// sqliteCode returns the SQLite result code of err, as modernc.org/sqlite
// reports it (5 is SQLITE_BUSY, 517 SQLITE_BUSY_SNAPSHOT), or -1.
func sqliteCode(err error) int {
	if e, ok := errors.AsType[interface {
		error
		Code() int
	}](err); ok {
		return e.Code()
	}
	return -1
}
