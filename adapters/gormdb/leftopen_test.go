package gormdb_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/internal/sessionfake"
	mysqldialect "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

var (
	wsrepNotReady = dboptest.MySQLError(1047, "WSREP has not yet prepared node for application use")
	certFailed    = dboptest.MySQLError(1213, "Deadlock found when trying to get lock; try restarting transaction")
)

// sessionGORM opens GORM's mysql dialector over srv.
func sessionGORM(t *testing.T, srv *sessionfake.Server, prepare bool) (*gorm.DB, *sql.DB) {
	t.Helper()
	sqlDB := sql.OpenDB(srv)
	t.Cleanup(func() { sqlDB.Close() })
	sqlDB.SetMaxIdleConns(1)
	db, err := gorm.Open(mysqldialect.New(mysqldialect.Config{Conn: sqlDB, SkipInitializeWithVersion: true}),
		&gorm.Config{Logger: logger.Discard, PrepareStmt: prepare, SkipDefaultTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	return db, sqlDB
}

func gormUpdate(ctx context.Context, tx *gorm.DB) error { return tx.Exec("UPDATE").Error }

// A COMMIT or ROLLBACK answered with 1047 leaves the transaction open on
// its connection (docs/backends.md §7.11). InTx on MySQL or MariaDB must
// not let that connection back into the pool, where the next BEGIN would
// commit the leftover: the work, judged not committed and retried, would
// be applied twice.
func TestInTxLeftOpenTransactionNotPooled(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fn      func(context.Context, *gorm.DB) error
		fault   func(*sessionfake.Server)
		prepare bool
	}{
		{name: "COMMIT refused with 1047", fn: gormUpdate, fault: func(s *sessionfake.Server) { s.EndErrs = []error{wsrepNotReady} }},
		{name: "COMMIT refused with 1047, PrepareStmt", fn: gormUpdate, fault: func(s *sessionfake.Server) { s.EndErrs = []error{wsrepNotReady} }, prepare: true},
		{name: "statement and ROLLBACK refused with 1047", fn: func(ctx context.Context, tx *gorm.DB) error {
			if err := tx.Exec("UPDATE").Error; err != nil {
				return err
			}
			return tx.Exec("CHECK").Error
		}, fault: func(s *sessionfake.Server) {
			s.StmtErrs["CHECK"] = []error{wsrepNotReady}
			s.EndErrs = []error{wsrepNotReady}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := sessionfake.New()
			db, _ := sessionGORM(t, srv, tc.prepare)
			tc.fault(srv)
			op := gormdb.Do(db, tc.fn, gormdb.Dialect(mysqldb.MariaDB)).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))
			if _, err := op.Run(t.Context()); err != nil {
				t.Fatalf("the retry failed: %v", err)
			}
			for range 2 { // the node is back: the next transactions take pooled connections
				if _, err := gormdb.Do(db, func(context.Context, *gorm.DB) error { return nil }, gormdb.Dialect(mysqldb.MariaDB)).Run(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			log := srv.Log()
			applied, _, closed := srv.Counts()
			leftover := slices.ContainsFunc(log, func(s string) bool { return strings.HasPrefix(s, "implicit") })
			if leftover || applied != 1 {
				t.Errorf("UPDATE applied %d times, want 1; a BEGIN committed a leftover transaction: %v\nlog %q", applied, leftover, log)
			}
			if !slices.Contains(log, "SELECT @@in_transaction 1") {
				t.Errorf("the guard did not ask the connection: %q", log)
			}
			if closed != 1 {
				t.Errorf("connections closed: %d, want 1 (the one left in a transaction)", closed)
			}
		})
	}
}

// A COMMIT refused by a server error that ends the transaction (1213) keeps
// its connection; a transaction that ends well sends nothing more.
func TestInTxGuardKeepsConnection(t *testing.T) {
	srv := sessionfake.New()
	srv.EndErrs, srv.EndsTx = []error{certFailed}, true
	db, _ := sessionGORM(t, srv, false)
	op := gormdb.Do(db, gormUpdate, gormdb.Dialect(mysqldb.MariaDB)).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"BEGIN 1", "UPDATE 1", "COMMIT 1: " + certFailed.Error(), "SELECT @@in_transaction 1",
		"BEGIN 1", "UPDATE 1", "COMMIT 1", "BEGIN 1", "UPDATE 1", "COMMIT 1"}
	if log := srv.Log(); !slices.Equal(log, want) {
		t.Errorf("log %q\nwant %q", log, want)
	}
	if applied, conns, closed := srv.Counts(); applied != 2 || conns != 1 || closed != 0 {
		t.Errorf("applied %d, connections opened %d, closed %d; want 2, 1, 0", applied, conns, closed)
	}
}

// A connection of the caller's (db.Connection) whose COMMIT left the
// transaction open is closed: its next BEGIN, a retry's included, would
// commit the leftover. The error says so and is not retried.
func TestInTxCallerConnLeftOpenIsClosed(t *testing.T) {
	srv := sessionfake.New()
	srv.EndErrs = []error{wsrepNotReady}
	db, _ := sessionGORM(t, srv, false)
	attempts := 0
	var runErr, after error
	err := db.Connection(func(c *gorm.DB) error {
		op := gormdb.Do(c, func(ctx context.Context, tx *gorm.DB) error {
			attempts++
			return tx.Exec("UPDATE").Error
		}, gormdb.Dialect(mysqldb.MariaDB)).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
		_, runErr = op.Run(t.Context())
		after = c.Exec("SELECT 1").Error
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(runErr, wsrepNotReady) || dbop.VerdictOf(runErr) == dbop.RetryTransaction || attempts != 1 {
		t.Fatalf("err = %v (verdict %v) after %d attempts; want the 1047, not retried", runErr, dbop.VerdictOf(runErr), attempts)
	}
	if !errors.Is(after, sql.ErrConnDone) {
		t.Errorf("the caller's connection after the failed COMMIT: %v, want sql.ErrConnDone", after)
	}
	if applied, _, closed := srv.Counts(); applied != 0 || closed != 1 {
		t.Errorf("applied %d, connections closed %d; want 0, 1", applied, closed)
	}
}
