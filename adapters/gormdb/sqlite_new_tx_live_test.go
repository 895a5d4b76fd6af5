package gormdb_test

// SQLite begins a transaction at a SAVEPOINT sent outside one (docs/backends.md
// §5.5): after an interrupted write has rolled back the function's
// transaction, the SAVEPOINT of GORM's nested tx.Transaction, which never
// releases it, leaves a new transaction open. The ROLLBACK or COMMIT InTx
// sends at the end then finds a transaction, and cannot tell that the
// function's own had ended. Live, on a SQLite file (modernc.org/sqlite),
// through GORM's postgres dialector under the sqlite dialector's name
// (gorm.io/driver/sqlite needs cgo): the statements are raw SQL.

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/testdb"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	_ "modernc.org/sqlite"
)

// slowSQLiteWrite runs for seconds: a deadline of tens of milliseconds
// interrupts it, and SQLite rolls back the whole transaction.
const slowSQLiteWrite = "INSERT INTO big (x) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200000000) SELECT x FROM c"

// quietSavepoints is the fake driver's dialector with GORM's savepoint
// methods as gorm.io/driver/sqlite writes them: the statement's error is
// dropped, and GORM's nested tx.Transaction runs its function anyway.
type quietSavepoints struct{ gorm.Dialector }

func (quietSavepoints) SavePoint(tx *gorm.DB, name string) error {
	tx.Exec("SAVEPOINT " + name)
	return nil
}

func (quietSavepoints) RollbackTo(tx *gorm.DB, name string) error {
	tx.Exec("ROLLBACK TO SAVEPOINT " + name)
	return nil
}

// liveSQLiteGORM opens GORM on a new SQLite file with the tables log and big;
// quiet: with quietSavepoints rather than nestingDialector.
func liveSQLiteGORM(t *testing.T, quiet bool, cfg ...*gorm.Config) (*gorm.DB, *sql.DB) {
	t.Helper()
	sqlDB, err := sql.Open("sqlite", testdb.SQLiteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	for _, stmt := range []string{"CREATE TABLE log (k TEXT NOT NULL)", "CREATE TABLE big (x INTEGER)"} {
		if _, err := sqlDB.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	var d gorm.Dialector = namedDialector{postgres.New(postgres.Config{Conn: sqlDB}), "sqlite"}
	if quiet {
		d = quietSavepoints{d}
	} else {
		d = nestingDialector{d}
	}
	c := &gorm.Config{}
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.Logger = logger.Discard
	db, err := gorm.Open(d, c)
	if err != nil {
		t.Fatal(err)
	}
	return db, sqlDB
}

// countLog returns how many rows of log have k.
func countLog(t *testing.T, db *sql.DB, k string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM log WHERE k = ?", k).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The function writes A, then a write its own deadline interrupts (SQLite
// rolls back the transaction, A included), swallows that, writes C (run on
// its own and committed at once), and runs GORM's nested tx.Transaction,
// whose SAVEPOINT begins a new transaction that holds D. It then returns
// nil, or the interrupted write's error. Either way what it ran after the
// interruption may stand: Run must fail Ambiguous and the function must
// run once. Before the fix, InTx's COMMIT committed the new transaction and
// Run returned nil with A lost; and returning the error, the ROLLBACK
// InTx sent to ask SQLite found the new transaction, so the retry ran the
// function again and C was applied twice.
func TestSQLiteNestedTransactionAfterTheEndIsAmbiguousGORM(t *testing.T) {
	for _, c := range []struct {
		name                      string
		returnErr, quiet, prepare bool
	}{
		{"returns nil", false, false, false},
		{"returns the error", true, false, false},
		{"returns nil, savepoint errors dropped", false, true, false},
		{"returns the error, savepoint errors dropped", true, true, false},
		{"returns nil, PrepareStmt", false, false, true},
	} {
		returnErr := c.returnErr
		t.Run(c.name, func(t *testing.T) {
			db, sqlDB := liveSQLiteGORM(t, c.quiet, &gorm.Config{PrepareStmt: c.prepare})
			runs := 0
			var interrupted error
			op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				runs++
				if err := tx.WithContext(ctx).Exec("INSERT INTO log (k) VALUES ('A')").Error; err != nil {
					return err
				}
				if runs == 1 {
					wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
					interrupted = tx.WithContext(wctx).Exec(slowSQLiteWrite).Error
					cancel()
				}
				if err := tx.WithContext(ctx).Exec("INSERT INTO log (k) VALUES ('C')").Error; err != nil {
					return err
				}
				if err := tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
					return tx2.Exec("INSERT INTO log (k) VALUES ('D')").Error
				}); err != nil {
					return err
				}
				if returnErr && runs == 1 {
					return interrupted
				}
				return nil
			})
			_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
			if interrupted == nil {
				t.Fatal("the slow write was not interrupted")
			}
			if !errors.Is(interrupted, context.DeadlineExceeded) {
				t.Logf("the slow write failed with %v", interrupted)
			}
			a, c := countLog(t, sqlDB, "A"), countLog(t, sqlDB, "C")
			if err == nil && a != 1 {
				t.Errorf("Run = nil, but A was committed %d times: the transaction's work was lost", a)
			}
			if c > 1 {
				t.Errorf("C was committed %d times, want at most once (runs %d, Run = %v)", c, runs, err)
			}
			if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
				t.Errorf("Run = %v (%v), want ambiguous: what the function ran after SQLite ended the transaction stands", err, v)
			}
			if runs != 1 {
				t.Errorf("the function ran %d times, want once", runs)
			}
		})
	}
}

// A read its deadline interrupts leaves SQLite's transaction open (§5.5):
// the nested tx.Transaction that follows runs in it, and the transaction
// commits A and D once.
func TestSQLiteNestedTransactionAfterAnInterruptedReadCommitsGORM(t *testing.T) {
	db, sqlDB := liveSQLiteGORM(t, false)
	var interrupted error
	op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		if err := tx.WithContext(ctx).Exec("INSERT INTO log (k) VALUES ('A')").Error; err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		var n int64
		interrupted = tx.WithContext(rctx).Raw("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200000000) SELECT count(*) FROM c").Scan(&n).Error
		cancel()
		return tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
			return tx2.Exec("INSERT INTO log (k) VALUES ('D')").Error
		})
	})
	if _, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context()); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if interrupted == nil {
		t.Fatal("the slow read was not interrupted")
	}
	if a, d := countLog(t, sqlDB, "A"), countLog(t, sqlDB, "D"); a != 1 || d != 1 {
		t.Errorf("A committed %d times, D %d times; want once each", a, d)
	}
}
