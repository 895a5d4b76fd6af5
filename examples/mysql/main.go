// Command mysql moves money on MySQL or MariaDB through database/sql and
// go-sql-driver/mysql from several goroutines at once; transfers that
// deadlock are retried by dbop as whole transactions.
//
//	DBOP_MYSQL_DSN='root@tcp(127.0.0.1:3306)/dbop_test' go run ./examples/mysql
//
// The DSN names a database the program may create tables in. It creates its
// own, example_mysql_*, dropping those of an earlier run first, and leaves
// them behind to look at. The dialect, [mysqldb.MariaDB] or [mysqldb.MySQL],
// is chosen from SELECT VERSION(): the two set a statement time limit with
// different server variables.
//
// Each transfer is a read-modify-write transaction: it locks the payer's
// account and then the payee's with SELECT … FOR UPDATE, writes both
// balances back and records the transfer in a ledger. Two transfers in
// opposite directions can each hold one row and wait for the other's: InnoDB
// sees the cycle at once and rolls one of them back whole with error 1213
// (ER_LOCK_DEADLOCK). [sqldb.Do] runs each transfer in a transaction of its
// own per attempt, the dialect calls 1213 RetryTransaction, and
// [dbop.WithRetry] runs the victim again from START TRANSACTION, so it
// decides on balances it reads afresh.
//
// Every attempt runs with innodb_lock_wait_timeout = 2 ([sqldb.LockTimeout]),
// a server-side limit on each lock wait instead of the default 50 seconds.
// MySQL and MariaDB have no transaction-scoped form of it, so Do pins a
// connection for the attempt, sets it, and sets the previous value back.
//
// At the end the program checks that no money was created or lost and that
// the ledger holds every transfer exactly once and agrees with the
// balances. It exits with status 1 if not, and with status 2 when
// DBOP_MYSQL_DSN is not set.
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
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// accounts is how many accounts the transfers move money between.
const accounts = 4

func main() {
	workers := flag.Int("workers", 8, "concurrent writers")
	transfers := flag.Int("transfers", 20, "transfers per writer")
	flag.Parse()
	dsn := os.Getenv("DBOP_MYSQL_DSN")
	if dsn == "" {
		fmt.Fprintln(os.Stderr, "mysql example: set DBOP_MYSQL_DSN to a go-sql-driver/mysql DSN naming a database the example may create tables in, e.g.\n"+
			"\texport DBOP_MYSQL_DSN='root@tcp(127.0.0.1:3306)/dbop_test'")
		os.Exit(2)
	}

	db, err := sql.Open("mysql", dsn)
	if err == nil {
		_, err = run(context.Background(), db, *workers, *transfers, os.Stdout)
		db.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mysql example:", err)
		os.Exit(1)
	}
}

// stats is what a run counted.
type stats struct {
	Dialect             sqldb.Dialect
	Committed, Attempts int64
	Retries             map[uint16]int // by server error number
}

// run creates the tables, runs the transfers, prints what happened to out
// and checks the result.
func run(ctx context.Context, db *sql.DB, workers, transfers int, out io.Writer) (stats, error) {
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return stats{}, err
	}
	st := stats{Dialect: mysqldb.MySQL, Retries: map[uint16]int{}}
	if strings.Contains(version, "MariaDB") {
		st.Dialect = mysqldb.MariaDB
	}
	if err := setup(ctx, db); err != nil {
		return st, err
	}
	fmt.Fprintf(out, "server:    %s, dialect %s\n", version, st.Dialect)

	var (
		mu       sync.Mutex // guards st.Retries
		attempts atomic.Int64
	)
	// One pipeline for every transfer, built once and shared by all the
	// goroutines: the whole transaction again, with jittered backoff.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(2*time.Millisecond, 100*time.Millisecond)),
			dbop.MaxAttempts(30),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				mu.Lock()
				defer mu.Unlock()
				st.Retries[errorNumber(e.Err)]++
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
				from := 1 + rand.IntN(accounts)
				to := 1 + (from+rand.IntN(accounts-1))%accounts
				op := transfer(db, st.Dialect, fmt.Sprintf("w%d-t%d", w, i), from, to, 1+rand.Int64N(9))
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
	fmt.Fprintf(out, "retried:   %d × 1213 ER_LOCK_DEADLOCK, each from START TRANSACTION\n", st.Retries[1213])

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

// setup creates the example's tables afresh: the accounts, numbered from 1,
// at 0, and an empty ledger.
func setup(ctx context.Context, db *sql.DB) error {
	for _, stmt := range []string{
		"DROP TABLE IF EXISTS example_mysql_accounts, example_mysql_ledger",
		"CREATE TABLE example_mysql_accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE example_mysql_ledger (id VARCHAR(64) PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	for id := 1; id <= accounts; id++ {
		if _, err := db.ExecContext(ctx, "INSERT INTO example_mysql_accounts (id, balance) VALUES (?, 0)", id); err != nil {
			return err
		}
	}
	return nil
}

// transfer locks the payer's account and then the payee's, writes back the
// balances it computed from what it read, and records the transfer under id
// in the ledger, whose primary key would reject a transfer applied twice.
func transfer(db *sql.DB, d sqldb.Dialect, id string, from, to int, amount int64) dbop.Op[struct{}] {
	return sqldb.Do(db, d, func(ctx context.Context, tx *sql.Tx) error {
		for _, leg := range []struct {
			account int
			delta   int64
		}{{from, -amount}, {to, amount}} {
			var balance int64
			if err := tx.QueryRowContext(ctx, "SELECT balance FROM example_mysql_accounts WHERE id = ? FOR UPDATE", leg.account).Scan(&balance); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE example_mysql_accounts SET balance = ? WHERE id = ?", balance+leg.delta, leg.account); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO example_mysql_ledger (id, src, dst, amount) VALUES (?, ?, ?, ?)", id, from, to, amount)
		return err
	}, sqldb.LockTimeout(2*time.Second)) // innodb_lock_wait_timeout for each attempt, restored after it
}

const checkQuery = `SELECT
	(SELECT COALESCE(SUM(balance), 0) FROM example_mysql_accounts),
	(SELECT COUNT(*) FROM example_mysql_ledger),
	(SELECT COUNT(*) FROM example_mysql_accounts a WHERE balance <> (
		SELECT COALESCE(SUM(CASE WHEN dst = a.id THEN amount ELSE -amount END), 0)
		FROM example_mysql_ledger WHERE a.id IN (src, dst)))`

// errorNumber returns the server error number of err, as
// go-sql-driver/mysql reports it, or 0.
func errorNumber(err error) uint16 {
	if myErr, ok := errors.AsType[*mysql.MySQLError](err); ok {
		return myErr.Number
	}
	return 0
}
