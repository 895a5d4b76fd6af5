package gormdb_test

// GORM's own idioms run inside InTx's function on live servers: nested
// tx.Transaction on handles derived from tx, statements whose .Error is
// never looked at, InTx given a handle already in a transaction, and
// gorm.Config.DefaultTransactionTimeout.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	mysqldialect "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// InTx's function writes A, runs a best-effort step and ignores its error,
// as GORM's documentation shows for a nested transaction, then writes C
// and returns nil. The step meets a real 1213, on which MariaDB rolls the
// whole transaction back (A with it) and runs what follows on its own.
// The step runs:
//
//   - in tx.WithContext(ctx).Transaction or tx.Session(…).Transaction: a
//     handle derived from tx, on which GORM records the step's error and
//     the failed ROLLBACK TO (1305), so that tx itself stays clean and C
//     runs;
//   - on tx, without a nested transaction, its .Error looked at by nobody
//     but the step;
//   - as the first, on a *gorm.DB opened with PrepareStmt.
//
// In every case C commits on its own, and InTx must not report success
// (A lost): it returns the Ambiguous error naming the 1213 and the
// function that went on, and the retry around it does not run it again
// (C would be written twice).
func TestMariaDBDeadlockSwallowedOnADerivedHandleIsAmbiguous(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *gorm.Config
	}{
		{"WithContext", nil},
		{"Session", nil},
		{"unchecked", nil},
		{"PrepareStmt", &gorm.Config{PrepareStmt: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newGcmpSceneWith(t, "derived_"+strings.ToLower(tc.name), gcmpDeadlock, tc.cfg)
			var outer gcmpRecorder
			var swallowed []error
			attempts := 0
			op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				attempts++
				if err := s.write(ctx, tx, "A"); err != nil {
					return 0, err
				}
				var err error
				switch tc.name {
				case "unchecked":
					_, err = s.step(tx).Run(ctx)
				case "Session":
					err = tx.Session(&gorm.Session{}).Transaction(func(tx2 *gorm.DB) error {
						_, err := s.step(tx2).Run(ctx)
						return err
					})
				default:
					err = tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
						_, err := s.step(tx2).Run(ctx)
						return err
					})
				}
				if err != nil {
					swallowed = append(swallowed, err) // best effort
				}
				return attempts, s.write(ctx, tx, "C")
			}, mariadb)
			err := s.run(t, func(ctx context.Context) (err error) {
				_, err = op.With(s.retry(&outer)).Run(ctx)
				return err
			})
			if len(swallowed) != 1 || !isMySQL(swallowed[0], 1213) {
				t.Fatalf("the function swallowed %v; want one 1213 (the fault did not fire)", swallowed)
			}
			if v := dbop.VerdictOf(err); v != dbop.Ambiguous || !isMySQL(err, 1213) ||
				!strings.Contains(err.Error(), "returned nil after the server had rolled the transaction back") {
				t.Errorf("Run: %v (verdict %v); want an Ambiguous error naming the 1213 and the function that went on", err, v)
			}
			if attempts != 1 {
				t.Errorf("%d attempts, want 1: the retry must not run the function again", attempts)
			}
			if got := outer.all(); len(got) != 0 {
				t.Errorf("the retry retried %v", got)
			}
			// A and the step went with the rollback; C committed on its own,
			// which is what the Ambiguous error says may have happened.
			if diff := cmp.Diff(map[string]int{"C": 1}, rbLogCounts(t, s)); diff != "" {
				t.Errorf("log rows by kind (-want +got):\n%s", diff)
			}
		})
	}
}

// The *gorm.DB InTx hands its function on MySQL and MariaDB runs its
// statements through a pool of gormdb's that watches their errors: GORM
// must still see the transaction in it. tx.DB() returns the *sql.DB under
// it, tx.Begin refuses, a nested tx.Transaction that fails is rolled back
// to its savepoint alone, and a PrepareStmt session runs its statements in
// the transaction (the second run's write goes with its rollback). With
// and without PrepareStmt on the *gorm.DB.
func TestMySQLInTxHandleKeepsGORMTransactionBehaviour(t *testing.T) {
	for _, prepare := range []bool{false, true} {
		t.Run(fmt.Sprintf("PrepareStmt=%v", prepare), func(t *testing.T) {
			db := liveMySQL(t, &gorm.Config{PrepareStmt: prepare})
			table := fmt.Sprintf("gormdb_handle_%v", prepare)
			createTable(t, db, table, "k varchar(10) PRIMARY KEY")
			want, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			insert := func(tx *gorm.DB, k string) error {
				return tx.Exec("INSERT INTO "+table+" VALUES (?)", k).Error
			}
			errLater := errors.New("the function fails after its writes")
			runs := 0
			op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				runs++
				if runs == 2 {
					if err := insert(tx.Session(&gorm.Session{PrepareStmt: true}), "E"); err != nil {
						return err
					}
					return errLater
				}
				if got, err := tx.DB(); err != nil || got != want {
					t.Errorf("tx.DB() = %p, %v; want the *sql.DB under the transaction, %p", got, err, want)
				}
				if err := tx.Begin().Error; !errors.Is(err, gorm.ErrInvalidTransaction) {
					t.Errorf("tx.Begin(): %v; want gorm.ErrInvalidTransaction", err)
				}
				if err := insert(tx, "A"); err != nil {
					return err
				}
				nested := tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
					if err := insert(tx2, "B"); err != nil {
						return err
					}
					return errors.New("the nested transaction fails")
				})
				if nested == nil {
					t.Error("the nested transaction succeeded")
				}
				if err := insert(tx.Session(&gorm.Session{PrepareStmt: true}), "D"); err != nil {
					return err
				}
				return insert(tx, "C")
			}, mariadb)
			if _, err := op.Run(t.Context()); err != nil {
				t.Fatalf("first run: %v", err)
			}
			if _, err := op.Run(t.Context()); !errors.Is(err, errLater) {
				t.Fatalf("second run: %v; want %v", err, errLater)
			}
			var keys []string
			if err := db.Raw("SELECT k FROM " + table + " ORDER BY k").Scan(&keys).Error; err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"A", "C", "D"}, keys); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

// InTx and Do given a *gorm.DB already inside a transaction fail with
// gorm.ErrInvalidTransaction, NotRetryable, as documented, and begin
// nothing: the inner write is rolled back with the transaction it was
// written in. With a deadline on ctx the mysql dialector pins a connection
// for the attempt's session limits; that must not begin an independent
// transaction on another connection of the pool. The handle is GORM's own
// db.Transaction's, or the one an outer InTx hands its function.
func TestInTxOnATransactionFailsWithErrInvalidTransaction(t *testing.T) {
	for _, outer := range []string{"gorm.Transaction", "gormdb.InTx"} {
		for _, deadline := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/deadline=%v", outer, deadline), func(t *testing.T) {
				db := liveMySQL(t, nil)
				table := fmt.Sprintf("gormdb_intx_on_tx_%s_%v", strings.ReplaceAll(strings.ToLower(outer), ".", "_"), deadline)
				createTable(t, db, table, "id int PRIMARY KEY")
				ctx := t.Context()
				if deadline {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Minute)
					defer cancel()
				}
				errOuter := errors.New("the outer transaction fails: roll everything back")
				var innerErr error
				inside := func(tx *gorm.DB) error {
					inner := gormdb.Do(tx, func(ctx context.Context, tx2 *gorm.DB) error {
						return tx2.Exec("INSERT INTO " + table + " VALUES (1)").Error
					}, mariadb)
					_, innerErr = inner.Run(ctx)
					return errOuter
				}
				var outerErr error
				if outer == "gorm.Transaction" {
					outerErr = db.WithContext(ctx).Transaction(inside)
				} else {
					_, outerErr = gormdb.Do(db, func(_ context.Context, tx *gorm.DB) error { return inside(tx) }, mariadb).Run(ctx)
				}
				if !errors.Is(outerErr, errOuter) {
					t.Errorf("the outer transaction: %v; want %v", outerErr, errOuter)
				}
				if !errors.Is(innerErr, gorm.ErrInvalidTransaction) || dbop.VerdictOf(innerErr) != dbop.NotRetryable {
					t.Errorf("InTx on a transaction: %v (verdict %v); want gorm.ErrInvalidTransaction, NotRetryable", innerErr, dbop.VerdictOf(innerErr))
				}
				var n int64
				if err := db.Raw("SELECT COUNT(*) FROM " + table).Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d row(s) committed although the transaction they were written in rolled back", n)
				}
			})
		}
	}
}

// GORM's Begin adds gorm.Config.DefaultTransactionTimeout to a context
// without a deadline, which is what InTx begins with (the caller's
// context without its cancellation): database/sql would then roll the
// transaction back by itself when GORM's timer fires, in the middle of the
// function or of its COMMIT, which InTx's detached context is there to
// prevent. A transaction that outlasts the timer (the function sleeps
// longer, once) commits once, at the first attempt.
func TestInTxIgnoresDefaultTransactionTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	db := livePostgres(t, &gorm.Config{DefaultTransactionTimeout: timeout})
	table := "gormdb_default_tx_timeout"
	createTable(t, db, table, "id int PRIMARY KEY")
	runs := 0
	op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		runs++
		if err := tx.Exec("INSERT INTO " + table + " VALUES (1)").Error; err != nil {
			return err
		}
		time.Sleep(timeout + 100*time.Millisecond) // slow work in the application
		return tx.Exec("SELECT 1").Error
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
	var n int64
	if e := db.Raw("SELECT COUNT(*) FROM " + table).Scan(&n).Error; e != nil {
		t.Fatal(e)
	}
	if err != nil || runs != 1 || n != 1 {
		t.Errorf("Run: %v (verdict %v) after %d runs, %d row(s); want success at the first run, one row",
			err, dbop.VerdictOf(err), runs, n)
	}
}

// preparedOverPool is a connection pool that is not a *sql.DB but begins
// transactions on one, as a resolver plugin's does: InTx holds no
// connection of it, and under PrepareStmt GORM's Begin returns a
// *gorm.PreparedStmtTX.
type preparedOverPool struct{ *sql.DB }

// On a pool InTx does not hold a connection of, under PrepareStmt, the
// function's handle runs its statements through gormdb's pool around
// GORM's *gorm.PreparedStmtTX. It still sees the deadlock a nested
// tx.Transaction swallowed (a scripted 1213, on the fake driver) and rolls
// back instead of committing; and the savepoint statements, which MySQL
// cannot prepare, run unprepared, as GORM's SavePoint and RollbackTo run
// them on a bare PreparedStmtTX.
func TestInTxOnAPreparedPoolOfAnotherKind(t *testing.T) {
	f := &fakeDB{}
	sqlDB := sql.OpenDB(f)
	t.Cleanup(func() { sqlDB.Close() })
	db, err := gorm.Open(mysqldialect.New(mysqldialect.Config{Conn: preparedOverPool{sqlDB}, SkipInitializeWithVersion: true}),
		&gorm.Config{PrepareStmt: true, DisableAutomaticPing: true, Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	f.failNext("UPDATE step", &mysql.MySQLError{Number: 1213, Message: "Deadlock found (scripted)"})
	var nested error
	_, err = gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		if _, ok := tx.Statement.ConnPool.(*gorm.PreparedStmtTX); ok {
			t.Error("the function's handle runs on GORM's PreparedStmtTX itself, not through gormdb's pool")
		}
		if err := tx.Exec("INSERT A").Error; err != nil {
			return err
		}
		nested = tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
			return tx2.Exec("UPDATE step").Error
		})
		return tx.Exec("INSERT C").Error
	}, mariadb).Run(t.Context())
	if !isMySQL(nested, 1213) {
		t.Fatalf("the nested transaction returned %v; want the scripted 1213", nested)
	}
	if v := dbop.VerdictOf(err); v != dbop.Ambiguous || !isMySQL(err, 1213) {
		t.Errorf("Run: %v (verdict %v); want an Ambiguous error naming the 1213", err, v)
	}
	log := f.Log()
	var savepoints int
	for _, stmt := range log {
		if strings.HasPrefix(stmt, "PREPARE SAVEPOINT") || strings.HasPrefix(stmt, "PREPARE ROLLBACK TO") {
			t.Errorf("%q: a savepoint statement was prepared", stmt)
		}
		if strings.HasPrefix(stmt, "SAVEPOINT ") || strings.HasPrefix(stmt, "ROLLBACK TO SAVEPOINT ") {
			savepoints++
		}
		if stmt == "COMMIT" {
			t.Errorf("COMMIT was sent; log %q", log)
		}
	}
	if savepoints != 2 || !slices.Contains(log, "PREPARE UPDATE step") || log[len(log)-1] != "ROLLBACK" {
		t.Errorf("log %q; want the step prepared, SAVEPOINT and ROLLBACK TO SAVEPOINT run unprepared, and a final ROLLBACK", log)
	}
}
