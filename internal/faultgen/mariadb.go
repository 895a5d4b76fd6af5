package faultgen

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
)

// MyTransferFn is the transfer for MariaDB, idempotent by design as
// PGTables.transferFn is: INSERT IGNORE writes the ledger row or finds it,
// and only the call that wrote it updates the balances.
func MyTransferFn(tr Transfer) func(ctx context.Context, tx *sql.Tx) (bool, error) {
	return func(ctx context.Context, tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, "INSERT IGNORE INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)",
			tr.Key, tr.Src, tr.Dst, tr.Amount)
		if err != nil {
			return false, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return false, err // n == 0: applied by an earlier attempt
		}
		for _, u := range []struct {
			id    int
			delta int64
		}{{tr.Src, -tr.Amount}, {tr.Dst, tr.Amount}} {
			res, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ? WHERE id = ?", u.delta, u.id)
			if err != nil {
				return false, err
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return false, dbop.Classify(fmt.Errorf("account %d: updated %d rows (%v)", u.id, n, err), dbop.NotRetryable)
			}
		}
		return true, nil
	}
}

// OpenMy opens a database/sql pool on cfg, closed when t ends.
func OpenMy(t *testing.T, cfg *mysql.Config, maxConns int) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	db.SetMaxOpenConns(maxConns)
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	return db
}

// MyServer returns the settings of the MariaDB server the suites run on,
// from the environment (testdb.MySQL), or skips t when none is
// configured. It fails t when they name no TCP address, which the fault
// proxy needs.
func MyServer(t *testing.T) *mysql.Config {
	t.Helper()
	base, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", testdb.MySQLEnv, err)
	}
	if base.Net != "tcp" {
		t.Fatalf("the fault proxy needs a TCP address; %s uses %q", testdb.MySQLEnv, base.Net)
	}
	return base
}

// ReadMyState reads the ledger and the balances with a pool of its own, in
// one transaction of locking reads: each waits (up to 30 s) for every
// transaction still writing those rows to end — a worker's session the
// server has not yet seen go, a COMMIT still being applied — so the state
// read is final and the two reads agree. It needs no information_schema.
func ReadMyState(t *testing.T, cfg *mysql.Config, q string) (map[string]LedgerRow, []int64) {
	t.Helper()
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const locking = "SET STATEMENT innodb_lock_wait_timeout = 30 FOR "
	return ScanState(t, tx,
		locking+"SELECT k, src, dst, amount FROM "+q+".ledger LOCK IN SHARE MODE",
		locking+"SELECT id, balance FROM "+q+".accounts LOCK IN SHARE MODE")
}

// ScanState reads, in tx, the ledger with ledgerQuery (k, src, dst,
// amount) and the balances with balancesQuery (id, balance), as a
// backend's final state for Verify: the balances of NumAccounts accounts
// and more, for a run with a clearing account.
func ScanState(t *testing.T, tx *sql.Tx, ledgerQuery, balancesQuery string) (map[string]LedgerRow, []int64) {
	t.Helper()
	ledger := map[string]LedgerRow{}
	rows, err := tx.QueryContext(t.Context(), ledgerQuery)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	for rows.Next() {
		var key string
		var row LedgerRow
		if err := rows.Scan(&key, &row.Src, &row.Dst, &row.Amount); err != nil {
			t.Fatal(err)
		}
		ledger[key] = row
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	balances := make([]int64, NumAccounts)
	rows, err = tx.QueryContext(t.Context(), balancesQuery)
	if err != nil {
		t.Fatalf("read the balances: %v", err)
	}
	for rows.Next() {
		var id int
		var balance int64
		if err := rows.Scan(&id, &balance); err != nil {
			t.Fatal(err)
		}
		for id >= len(balances) {
			balances = append(balances, 0)
		}
		balances[id] = balance
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the balances: %v", err)
	}
	return ledger, balances
}

// MyFaultMinimums is how many times each kind of fault must fire in a run
// of defaultDuration or longer (see CheckFaults). As for PGFaultMinimums,
// they hold with 40 injector rounds, half of the 83–99 a 6 s run gives on
// two cores under -race: two decks, which deal kill connection 10 times,
// kill query 6, lock 8, drop 8 and cut 8. A row lock is held 0.3–1.5 s,
// one at a time, so its count is bounded by time, not deals: a simulation
// of the schedule with every round 40 ms slower than observed never fired
// it fewer than twice in 100 000 runs, hence 2. In 12 runs of 6 s they
// fired: kill connection 21–25, kill query 11–14, lock 5–7, drop 16–20,
// cut armed 16–20 and fired 8–14. Every minimum is at least 2, so that a
// kind that fired once or never fails the suite.
var MyFaultMinimums = map[string]int{
	"kill connection":                4,
	"kill query":                     3,
	"row lock held":                  2,
	"proxy drop all":                 3,
	"proxy cut after COMMIT (armed)": 4,
	"proxy cut after COMMIT (fired)": 3,
}

// NewMyInjector returns the injector of the MariaDB faults
// (MyFaultMinimums): it kills the connections and queries in database db,
// holds row locks of its accounts table, and drops and cuts proxy's
// connections.
func NewMyInjector(admin *sql.DB, proxy *faultproxy.Proxy, db string) InjectFunc {
	return (&myInjector{admin: admin, proxy: proxy, db: db}).inject
}

// myInjector causes the MariaDB faults.
type myInjector struct {
	admin   *sql.DB
	proxy   *faultproxy.Proxy
	db      string // the workers' database
	holding atomic.Bool
}

func (in *myInjector) inject(ctx context.Context, slot int, rng *rand.Rand, spawn func(func() error)) (string, error) {
	switch {
	case slot < 25:
		return in.kill(ctx, rng, "kill connection", "KILL CONNECTION", "")
	case slot < 40:
		// go-sql-driver runs a statement with arguments as a server-side
		// prepared statement, which the process list shows as Execute.
		return in.kill(ctx, rng, "kill query", "KILL QUERY", " AND COMMAND IN ('Query', 'Execute')")
	case slot < 60:
		return in.holdLock(ctx, rng, spawn)
	case slot < 80:
		if n := in.proxy.DropAll(); n > 0 {
			return "proxy drop all", nil
		}
		return "", nil
	default:
		in.proxy.CutAfter([]byte("COMMIT")) // go-sql-driver sends COMMIT in upper case
		return "proxy cut after COMMIT (armed)", nil
	}
}

// kill runs stmt (KILL CONNECTION or KILL QUERY) on one of the workers'
// connections, chosen with rng among those matching filter.
func (in *myInjector) kill(ctx context.Context, rng *rand.Rand, kind, stmt, filter string) (string, error) {
	rows, err := in.admin.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?"+filter+" ORDER BY ID", in.db)
	if err != nil {
		return kind, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return kind, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return kind, err
	}
	if len(ids) == 0 {
		return "", nil
	}
	if _, err := in.admin.ExecContext(ctx, fmt.Sprintf("%s %d", stmt, ids[rng.IntN(len(ids))])); err != nil {
		if myErr, ok := errors.AsType[*mysql.MySQLError](err); ok && myErr.Number == 1094 { // ER_NO_SUCH_THREAD: it had gone
			return "", nil
		}
		return kind, err
	}
	return kind, nil
}

// holdLock locks one account's row from a connection of its own for
// 0.3–1.5 s: past max_statement_time, and sometimes past
// innodb_lock_wait_timeout. One lock is held at a time; the injector goes
// on meanwhile.
func (in *myInjector) holdLock(ctx context.Context, rng *rand.Rand, spawn func(func() error)) (string, error) {
	const kind = "row lock held"
	id, hold := rng.IntN(NumAccounts), time.Duration(300+rng.IntN(1201))*time.Millisecond
	if !in.holding.CompareAndSwap(false, true) {
		return "", nil
	}
	tx, err := in.admin.BeginTx(ctx, nil)
	if err != nil {
		return kind, err
	}
	var balance int64
	if err := tx.QueryRowContext(ctx, "SELECT balance FROM `"+in.db+"`.accounts WHERE id = ? FOR UPDATE", id).Scan(&balance); err != nil {
		tx.Rollback()
		return kind, err
	}
	spawn(func() error {
		defer in.holding.Store(false)
		time.Sleep(hold)
		return tx.Rollback()
	})
	return kind, nil
}

// MyRunDatabase creates the run's database, name, with its accounts,
// ledger and commit marker tables, dropped when t ends, and returns its
// quoted name.
func MyRunDatabase(t *testing.T, admin *sql.DB, name string) string {
	t.Helper()
	q := "`" + name + "`"
	for _, stmt := range []string{
		"CREATE DATABASE " + q,
		"CREATE TABLE " + q + ".accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE " + q + ".ledger (k VARCHAR(64) PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE " + q + "." + strings.TrimPrefix(resolve.CreateMarkersSQL, "CREATE TABLE IF NOT EXISTS "),
	} {
		if _, err := admin.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+q); err != nil {
			t.Errorf("drop the run's database: %v", err)
		}
	})
	return q
}
