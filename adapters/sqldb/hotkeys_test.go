package sqldb_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/testdb"
)

// dbop.HotSpot with each transfer's accounts as its dbop.HotSpotKeys,
// composed as a user writes it (WithRetry, HotSpot, Do, and a step retried
// in a savepoint inside the transaction): 8 workers × 25 transfers among 4
// accounts, each writing its two accounts in the transfer's order (so lock
// cycles when two overlap). On MariaDB with the lock table, under
// REPEATABLE READ and SERIALIZABLE, and on SQLite. Every transfer commits
// exactly once: balances sum to 0, one ledger row each, every balance
// equals its ledger net.
func TestHotSpotKeysComposedMariaDB(t *testing.T) {
	db := openMariaDB(t)
	if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
		t.Fatal(err)
	}
	for _, iso := range []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelSerializable} {
		t.Run(iso.String(), func(t *testing.T) { keyedTransfers(t, db, mysqldb.MariaDB, 1, sqldb.Isolation(iso)) })
	}
}

// The same with two HotSpots built at one place, standing for two
// processes: each sees the other's attempts as another process's, and their
// attempts take the HotSpot's row in share mode and their keys' rows
// (docs/backends.md §3.14).
func TestHotSpotKeysComposedMariaDBAcrossProcesses(t *testing.T) {
	db := openMariaDB(t)
	if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
		t.Fatal(err)
	}
	for _, iso := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelSerializable} {
		t.Run(iso.String(), func(t *testing.T) { keyedTransfers(t, db, mysqldb.MariaDB, 2, sqldb.Isolation(iso)) })
	}
}

func TestHotSpotKeysComposedSQLite(t *testing.T) {
	keyedTransfers(t, openSQLite(t, testdb.SQLiteFile(t)), sqldb.SQLite, 1)
}

// keyedTransfers runs 8 workers × 25 keyed transfers among 4 accounts, the
// workers sharing processes HotSpots built at one place, and checks the
// invariants.
func keyedTransfers(t *testing.T, db *sql.DB, d sqldb.Dialect, processes int, opts ...sqldb.TxOption) {
	const workers, each, accounts = 8, 25, 4
	db.SetMaxOpenConns(workers + 2)
	table(t, db, "sqldb_hotkeys_accounts", "(id int PRIMARY KEY, balance bigint NOT NULL)")
	table(t, db, "sqldb_hotkeys_ledger", "(id int PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL)")
	mustExec(t, db, "INSERT INTO sqldb_hotkeys_accounts VALUES (1, 0), (2, 0), (3, 0), (4, 0)")
	hots := make([]dbop.Decorator, processes)
	for i := range hots {
		hots[i] = dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond)), dbop.MaxAttempts(50)), dbop.HotSpot())
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		hot := hots[w%processes]
		wg.Go(func() {
			for i := range each {
				id := w*each + i
				from := 1 + (w+i)%accounts
				to := 1 + (w+i+1+i%(accounts-1))%accounts
				ctx := dbop.HotSpotKeys(t.Context(), int64(from), int64(to))
				_, err := sqldb.Do(db, d, func(ctx context.Context, tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "UPDATE sqldb_hotkeys_accounts SET balance = balance - 1 WHERE id = ?", from); err != nil {
						return err
					}
					// A step of its own, retried in a savepoint.
					_, err := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
						_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_hotkeys_ledger VALUES (?, ?, ?)", id, from, to)
						return struct{}{}, err
					}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), sqldb.InSavepoint(tx, d)).Run(ctx)
					if err != nil {
						return err
					}
					_, err = tx.ExecContext(ctx, "UPDATE sqldb_hotkeys_accounts SET balance = balance + 1 WHERE id = ?", to)
					return err
				}, opts...).With(hot).Run(ctx)
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("transfer: %v", err)
	}
	var n, sum, bad int64
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM sqldb_hotkeys_ledger").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != workers*each {
		t.Errorf("%d ledger rows, want %d: each transfer once", n, workers*each)
	}
	if err := db.QueryRowContext(t.Context(), "SELECT COALESCE(sum(balance), 0) FROM sqldb_hotkeys_accounts").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 0 {
		t.Errorf("balances sum to %d, want 0", sum)
	}
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM sqldb_hotkeys_accounts a WHERE a.balance <>
		(SELECT COALESCE(sum(CASE WHEN l.to_id = a.id THEN 1 WHEN l.from_id = a.id THEN -1 ELSE 0 END), 0) FROM sqldb_hotkeys_ledger l)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d balances disagree with the ledger", bad)
	}
}
