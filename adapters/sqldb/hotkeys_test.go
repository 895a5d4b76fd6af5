package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
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
	testdb.Transfers(t, workers, each, accounts, func(w int, tr testdb.Transfer) error {
		ctx := dbop.HotSpotKeys(t.Context(), int64(tr.From), int64(tr.To))
		_, err := sqldb.Do(db, d, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "UPDATE sqldb_hotkeys_accounts SET balance = balance - 1 WHERE id = ?", tr.From); err != nil {
				return err
			}
			// A step of its own, retried in a savepoint.
			_, err := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
				_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_hotkeys_ledger VALUES (?, ?, ?)", tr.ID, tr.From, tr.To)
				return struct{}{}, err
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), sqldb.InSavepoint(tx, d)).Run(ctx)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, "UPDATE sqldb_hotkeys_accounts SET balance = balance + 1 WHERE id = ?", tr.To)
			return err
		}, opts...).With(hots[w%processes]).Run(ctx)
		return err
	})
	testdb.CheckLedger(t, workers*each, "sqldb_hotkeys_accounts", "sqldb_hotkeys_ledger", func(query string) (n int64, err error) {
		return n, db.QueryRowContext(t.Context(), query).Scan(&n)
	})
}

// A writer of the hot rows that the HotSpot's lock does not order (a
// worker whose pipeline has no HotSpot) forms lock cycles with the attempt
// that holds the lock. On PostgreSQL the bound on the lock waits after the
// lock travels with the LOCK statement (SET LOCAL lock_timeout), so a
// cycle ends at the bound, not a second later at the deadlock detector
// (the pgx twin of this test, in adapters/pgxdb, checks the statements);
// InnoDB ends a cycle at once. Every transfer lands once.
func TestHotSpotBoundsWaitsForWritersItsLockDoesNotOrder(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		db := postgresInSchema(t, "sqldb_hot_outsider", true)
		for _, iso := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelSerializable} {
			t.Run(iso.String(), func(t *testing.T) { besideAnOutsider(t, db, sqldb.Postgres, "$%d", sqldb.Isolation(iso)) })
		}
	})
	// Without the lock tables the HotSpot's lock is the advisory lock, and
	// the bound follows it in a round trip of its own.
	t.Run("postgres/advisory", func(t *testing.T) {
		db := postgresInSchema(t, "sqldb_hot_outsider_advisory", false)
		for _, iso := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelSerializable} {
			t.Run(iso.String(), func(t *testing.T) { besideAnOutsider(t, db, sqldb.Postgres, "$%d", sqldb.Isolation(iso)) })
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		db := openMariaDB(t)
		if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
			t.Fatal(err)
		}
		for _, iso := range []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelSerializable} {
			t.Run(iso.String(), func(t *testing.T) { besideAnOutsider(t, db, mysqldb.MariaDB, "?", sqldb.Isolation(iso)) })
		}
	})
}

// besideAnOutsider runs testdb.Outsider's transfers on db for 3 s, 8
// workers through WithRetry and a HotSpot and one through WithRetry alone,
// mark being the dialect's placeholder ("?", or "$%d"), and checks how
// long the hot attempts' statements took, and the ledger.
func besideAnOutsider(t *testing.T, db *sql.DB, d sqldb.Dialect, mark string, opts ...sqldb.TxOption) {
	db.SetMaxOpenConns(12)
	ph := func(i int) string {
		if mark == "?" {
			return "?"
		}
		return fmt.Sprintf(mark, i)
	}
	table(t, db, "sqldb_outsider_accounts", "(id int PRIMARY KEY, balance bigint NOT NULL)")
	table(t, db, "sqldb_outsider_ledger", "(id int PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL)")
	mustExec(t, db, "INSERT INTO sqldb_outsider_accounts VALUES (1, 0), (2, 0), (3, 0), (4, 0)")
	debit := "UPDATE sqldb_outsider_accounts SET balance = balance - 1 WHERE id = " + ph(1)
	credit := "UPDATE sqldb_outsider_accounts SET balance = balance + 1 WHERE id = " + ph(1)
	entry := fmt.Sprintf("INSERT INTO sqldb_outsider_ledger VALUES (%s, %s, %s)", ph(1), ph(2), ph(3))
	hotStatements, n := testdb.Outsider(t, 3*time.Second, 9, func(pipeline dbop.Decorator, tr testdb.Transfer, timed func(func() error) error) error {
		_, err := sqldb.Do(db, d, func(ctx context.Context, tx *sql.Tx) error {
			return timed(func() error {
				if _, err := tx.ExecContext(ctx, debit, tr.From); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, entry, tr.ID, tr.From, tr.To); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, credit, tr.To)
				return err
			})
		}, opts...).With(pipeline).Run(t.Context())
		return err
	})
	testdb.CheckNoDetectorWaits(t, hotStatements)
	testdb.CheckLedger(t, n, "sqldb_outsider_accounts", "sqldb_outsider_ledger", func(query string) (n int64, err error) {
		return n, db.QueryRowContext(t.Context(), query).Scan(&n)
	})
}

// The README's HotSpot pipeline with InSavepoint listed after it, for a
// step of a transaction the caller owns: each attempt runs inside that
// transaction, which holds its locks while it waits, so the HotSpot lets
// it through. Here B's transaction holds a row A's step waits for; had
// B's step waited for A's slot, A's step would have run into the
// HotSpot's deadline (and B's transaction with it, in a pool with more
// writers). Both steps and both transactions complete, each write once.
func TestHotSpotBeforeInSavepointInTheCallersTransaction(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(t *testing.T) *sql.DB
		d    sqldb.Dialect
	}{
		{"postgres", func(t *testing.T) *sql.DB { return openPostgres(t) }, sqldb.Postgres},
		{"mariadb", func(t *testing.T) *sql.DB { return openMariaDB(t) }, mysqldb.MariaDB},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			table(t, db, "sqldb_hot_owntx", "(id int PRIMARY KEY, v int NOT NULL)")
			mustExec(t, db, "INSERT INTO sqldb_hot_owntx VALUES (1, 0), (2, 0)")
			hot := dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)), dbop.MaxAttempts(50)), dbop.HotSpot())
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			begin := func() *sql.Tx {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				return tx
			}
			step := func(tx *sql.Tx, stmt string) error {
				_, err := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
					_, err := tx.ExecContext(ctx, stmt)
					return struct{}{}, err
				}).With(hot, sqldb.InSavepoint(tx, c.d)).Run(ctx)
				return err
			}
			txB := begin()
			if _, err := txB.ExecContext(ctx, "UPDATE sqldb_hot_owntx SET v = v + 1 WHERE id = 1"); err != nil {
				t.Fatal(err)
			}
			txA := begin()
			errA := make(chan error, 1)
			go func() {
				err := step(txA, "UPDATE sqldb_hot_owntx SET v = v + 10 WHERE id = 1") // waits for B's row
				if err == nil {
					err = txA.Commit()
				} else {
					txA.Rollback()
				}
				errA <- err
			}()
			eventually(t, "A's step waits for B's row", func() bool {
				var waiting int
				q := "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE sqldb_hot_owntx%'"
				if c.name != "postgres" {
					q = "SELECT count(*) FROM information_schema.processlist WHERE state = 'Updating' AND info LIKE 'UPDATE sqldb_hot_owntx%'"
				}
				return db.QueryRowContext(ctx, q).Scan(&waiting) == nil && waiting == 1
			})
			start := time.Now()
			if err := step(txB, "UPDATE sqldb_hot_owntx SET v = v + 100 WHERE id = 2"); err != nil {
				t.Fatalf("B's step: %v", err)
			}
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Errorf("B's step took %v: it waited for A's slot", d)
			}
			if err := txB.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := <-errA; err != nil {
				t.Fatalf("A: %v", err)
			}
			if v1, v2 := scalar[int](t, db, "SELECT v FROM sqldb_hot_owntx WHERE id = 1"), scalar[int](t, db, "SELECT v FROM sqldb_hot_owntx WHERE id = 2"); v1 != 11 || v2 != 100 {
				t.Errorf("rows %d and %d, want 11 and 100: every write once", v1, v2)
			}
		})
	}
}
