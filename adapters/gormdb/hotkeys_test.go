package gormdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// dbop.HotSpot with each transfer's accounts as its dbop.HotSpotKeys,
// through GORM, composed as a user writes it (WithRetry, HotSpot, Do, and a
// step retried in a savepoint inside the transaction): 8 workers × 25
// transfers among 4 accounts, each writing its two accounts in the
// transfer's order (so lock cycles when two overlap), the workers sharing
// one HotSpot, or two built at one place, standing for two processes: each
// then sees the other's attempts as another process's, and their attempts
// take the HotSpot's lock in a shared mode with a lock per key. On
// PostgreSQL with the lock tables and on MariaDB with the lock table, under
// READ COMMITTED and SERIALIZABLE. Every transfer commits exactly once:
// balances sum to 0, one ledger row each, every balance equals its ledger
// net.
func TestHotSpotKeysComposed(t *testing.T) {
	levels := []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelSerializable}
	t.Run("postgres", func(t *testing.T) {
		log := &pgcLog{}
		db := postgresTracedInSchema(t, "gormdb_hotkeys", log)
		for _, processes := range []int{1, 2} {
			for _, iso := range levels {
				t.Run(fmt.Sprintf("%dp/%s", processes, iso), func(t *testing.T) {
					log.reset()
					gormKeyedTransfers(t, db, processes, gormdb.Isolation(iso))
					if processes == 1 {
						return
					}
					shared := 0
					for _, stmt := range log.log() {
						if strings.Contains(stmt, "IN "+hotlock.PostgresShareMode+" MODE") {
							shared++
						}
					}
					if shared == 0 {
						t.Error("no transaction took the HotSpot's lock with a lock per key")
					}
				})
			}
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		db := mariadbWithHotLocks(t)
		for _, processes := range []int{1, 2} {
			for _, iso := range levels {
				t.Run(fmt.Sprintf("%dp/%s", processes, iso), func(t *testing.T) {
					gormKeyedTransfers(t, db, processes, gormdb.Isolation(iso), mariadb)
				})
			}
		}
	})
}

// postgresTracedInSchema is postgresInSchema with the lock tables and the
// statements traced into log.
func postgresTracedInSchema(t *testing.T, schema string, log *pgcLog) *gorm.DB {
	t.Helper()
	postgresInSchema(t, schema, true) // the schema, its lock tables, and their cleanup
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", testdb.PostgresEnv, err)
	}
	cc.RuntimeParams["search_path"] = schema
	cc.Tracer = log
	return openPostgres(t, cc, nil)
}

// gormKeyedTransfers runs 8 workers × 25 keyed transfers among 4 accounts
// through processes HotSpots built at one place, and checks the
// invariants.
func gormKeyedTransfers(t *testing.T, db *gorm.DB, processes int, opts ...gormdb.TxOption) {
	const workers, each, accounts = 8, 25, 4
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(workers + 2)
	createTable(t, db, "gormdb_hotkeys_accounts", "id int PRIMARY KEY, balance bigint NOT NULL")
	createTable(t, db, "gormdb_hotkeys_ledger", "id int PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL")
	exec(t, db, "INSERT INTO gormdb_hotkeys_accounts VALUES (1, 0), (2, 0), (3, 0), (4, 0)")
	var spOpts []gormdb.SavepointOption
	for _, o := range opts {
		if so, ok := o.(gormdb.SavepointOption); ok {
			spOpts = append(spOpts, so)
		}
	}
	hots := make([]dbop.Decorator, processes)
	for i := range hots {
		hots[i] = dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond)), dbop.MaxAttempts(50)), dbop.HotSpot())
	}
	testdb.Transfers(t, workers, each, accounts, func(w int, tr testdb.Transfer) error {
		ctx := dbop.HotSpotKeys(t.Context(), int64(tr.From), int64(tr.To))
		_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
			if err := tx.Exec("UPDATE gormdb_hotkeys_accounts SET balance = balance - 1 WHERE id = ?", tr.From).Error; err != nil {
				return err
			}
			// A step of its own, retried in a savepoint.
			_, err := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
				return struct{}{}, tx.WithContext(ctx).Exec("INSERT INTO gormdb_hotkeys_ledger VALUES (?, ?, ?)", tr.ID, tr.From, tr.To).Error
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), gormdb.InSavepoint(tx, spOpts...)).Run(ctx)
			if err != nil {
				return err
			}
			return tx.Exec("UPDATE gormdb_hotkeys_accounts SET balance = balance + 1 WHERE id = ?", tr.To).Error
		}, opts...).With(hots[w%processes]).Run(ctx)
		return err
	})
	testdb.CheckLedger(t, workers*each, "gormdb_hotkeys_accounts", "gormdb_hotkeys_ledger", func(query string) (n int64, err error) {
		return n, db.Raw(query).Scan(&n).Error
	})
}

// A writer of the hot rows that the HotSpot's lock does not order (a
// worker whose pipeline has no HotSpot) forms lock cycles with the attempt
// that holds the lock. Through GORM on PostgreSQL the bound on the lock
// waits after the lock travels with the LOCK statement (SET LOCAL
// lock_timeout after it), so a cycle ends at the bound, not a second later
// at the deadlock detector; InnoDB ends a cycle at once. Every transfer
// lands once.
func TestHotSpotBoundsWaitsForWritersItsLockDoesNotOrder(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		log := &pgcLog{}
		db := postgresTracedInSchema(t, "gormdb_hot_outsider", log)
		for _, iso := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelSerializable} {
			t.Run(iso.String(), func(t *testing.T) {
				log.reset()
				gormBesideAnOutsider(t, db, gormdb.Isolation(iso))
				if testdb.BoundsAfterLock(log.log()) == 0 {
					t.Error("no transaction that took the lock bounded its lock waits after it")
				}
			})
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		db := mariadbWithHotLocks(t)
		for _, iso := range []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelSerializable} {
			t.Run(iso.String(), func(t *testing.T) { gormBesideAnOutsider(t, db, gormdb.Isolation(iso), mariadb) })
		}
	})
}

// gormBesideAnOutsider runs testdb.Outsider's transfers through db for
// 3 s, 8 workers through WithRetry and a HotSpot and one through WithRetry
// alone, and checks how long the hot attempts' statements took, and the ledger.
func gormBesideAnOutsider(t *testing.T, db *gorm.DB, opts ...gormdb.TxOption) {
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(12)
	createTable(t, db, "gormdb_outsider_accounts", "id int PRIMARY KEY, balance bigint NOT NULL")
	createTable(t, db, "gormdb_outsider_ledger", "id int PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL")
	exec(t, db, "INSERT INTO gormdb_outsider_accounts VALUES (1, 0), (2, 0), (3, 0), (4, 0)")
	hotStatements, n := testdb.Outsider(t, 3*time.Second, 9, func(pipeline dbop.Decorator, tr testdb.Transfer, timed func(func() error) error) error {
		_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
			return timed(func() error {
				if err := tx.Exec("UPDATE gormdb_outsider_accounts SET balance = balance - 1 WHERE id = ?", tr.From).Error; err != nil {
					return err
				}
				if err := tx.Exec("INSERT INTO gormdb_outsider_ledger VALUES (?, ?, ?)", tr.ID, tr.From, tr.To).Error; err != nil {
					return err
				}
				return tx.Exec("UPDATE gormdb_outsider_accounts SET balance = balance + 1 WHERE id = ?", tr.To).Error
			})
		}, opts...).With(pipeline).Run(t.Context())
		return err
	})
	testdb.CheckNoDetectorWaits(t, hotStatements)
	testdb.CheckLedger(t, n, "gormdb_outsider_accounts", "gormdb_outsider_ledger", func(query string) (n int64, err error) {
		return n, db.Raw(query).Scan(&n).Error
	})
}
