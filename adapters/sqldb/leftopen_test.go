package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/internal/sessionfake"
)

var (
	wsrepNotReady = dboptest.MySQLError(1047, "WSREP has not yet prepared node for application use")
	certFailed    = dboptest.MySQLError(1213, "Deadlock found when trying to get lock; try restarting transaction")
)

// ownBeginner is a Beginner of the caller's over a *sql.DB, which InTx
// leaves to choose and guard its connection.
type ownBeginner struct{ db *sql.DB }

func (b ownBeginner) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return b.db.BeginTx(ctx, opts)
}

// A COMMIT or ROLLBACK answered with 1047 leaves the transaction open on
// its connection (docs/backends.md §7.11). InTx over a *sql.DB on MySQL or
// MariaDB must not let that connection back into the pool, where the next
// BEGIN would commit the leftover: the work, judged not committed and
// retried, would be applied twice. The arm "caller's Beginner" shows the
// hazard the guard removes: there InTx leaves the connection to the
// Beginner, which does not guard it.
func TestInTxLeftOpenTransactionNotPooled(t *testing.T) {
	update := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE")
		return err
	}
	updateThenCheck := func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "CHECK")
		return err
	}
	for _, tc := range []struct {
		name    string
		fn      func(context.Context, *sql.Tx) error
		fault   func(*sessionfake.Server)
		opts    []sqldb.TxOption
		own     bool // through ownBeginner: unguarded
		applied int
	}{
		{name: "COMMIT refused with 1047", fn: update, fault: func(s *sessionfake.Server) { s.EndErrs = []error{wsrepNotReady} }, applied: 1},
		{name: "statement and ROLLBACK refused with 1047", fn: updateThenCheck, fault: func(s *sessionfake.Server) {
			s.StmtErrs["CHECK"] = []error{wsrepNotReady}
			s.EndErrs = []error{wsrepNotReady}
		}, applied: 1},
		{name: "COMMIT refused with 1047, session timeouts", fn: update, fault: func(s *sessionfake.Server) { s.EndErrs = []error{wsrepNotReady} },
			opts: []sqldb.TxOption{sqldb.LockTimeout(2 * time.Second)}, applied: 1},
		{name: "COMMIT refused with 1047, caller's Beginner", fn: update, fault: func(s *sessionfake.Server) { s.EndErrs = []error{wsrepNotReady} },
			own: true, applied: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := sessionfake.New()
			db := sql.OpenDB(srv)
			defer db.Close()
			db.SetMaxIdleConns(1)
			tc.fault(srv)
			var b sqldb.Beginner = db
			if tc.own {
				b = ownBeginner{db}
			}
			op := sqldb.Do(b, mysqldb.MariaDB, tc.fn, tc.opts...).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))
			if _, err := op.Run(t.Context()); err != nil {
				t.Fatalf("the retry failed: %v", err)
			}
			// The node is back: the next transactions take pooled connections.
			for range 2 {
				if _, err := sqldb.Do(b, mysqldb.MariaDB, func(context.Context, *sql.Tx) error { return nil }, tc.opts...).Run(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			log := srv.Log()
			applied, _, closed := srv.Counts()
			leftover := slices.ContainsFunc(log, func(s string) bool { return len(s) > 8 && s[:8] == "implicit" })
			if tc.own {
				if !leftover || applied != 2 {
					t.Fatalf("over the caller's Beginner the leftover should be committed by the next BEGIN (the fake no longer shows the hazard): applied %d, log %q", applied, log)
				}
				return
			}
			if leftover || applied != tc.applied {
				t.Errorf("UPDATE applied %d times, want %d; a BEGIN committed a leftover transaction: %v\nlog %q", applied, tc.applied, leftover, log)
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

// A COMMIT refused by a server error that ends the transaction (MariaDB's
// 1213, §3.2) keeps its connection: the guard asks, and the answer 0 lets
// it back into the pool.
func TestInTxFailedCommitThatEndedKeepsConnection(t *testing.T) {
	srv := sessionfake.New()
	srv.EndErrs, srv.EndsTx = []error{certFailed}, true
	db := sql.OpenDB(srv)
	defer db.Close()
	op := sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE")
		return err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"BEGIN 1", "UPDATE 1", "COMMIT 1: " + certFailed.Error(), "SELECT @@in_transaction 1", "BEGIN 1", "UPDATE 1", "COMMIT 1"}
	if log := srv.Log(); !slices.Equal(log, want) {
		t.Errorf("log %q\nwant %q", log, want)
	}
	if applied, conns, closed := srv.Counts(); applied != 1 || conns != 1 || closed != 0 {
		t.Errorf("applied %d, connections opened %d, closed %d; want 1, 1, 0", applied, conns, closed)
	}
}

// The guard costs nothing when transactions end well: no statement besides
// BEGIN, the work and COMMIT, and one pooled connection serves them all.
// A BEGIN that finds a pooled connection broken takes another, as
// *sql.DB.BeginTx does, without failing the attempt.
func TestInTxGuardSuccessPath(t *testing.T) {
	srv := sessionfake.New()
	db := sql.OpenDB(srv)
	defer db.Close()
	op := sqldb.Do(db, mysqldb.MySQL, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE")
		return err
	})
	for range 3 {
		if _, err := op.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"BEGIN 1", "UPDATE 1", "COMMIT 1", "BEGIN 1", "UPDATE 1", "COMMIT 1", "BEGIN 1", "UPDATE 1", "COMMIT 1"}
	if log := srv.Log(); !slices.Equal(log, want) {
		t.Errorf("log %q\nwant %q", log, want)
	}
	srv.FailBegins(driver.ErrBadConn)
	if _, err := op.Run(t.Context()); err != nil { // no retry around it
		t.Fatalf("a broken pooled connection failed the attempt: %v", err)
	}
	want = []string{"BEGIN 1: " + driver.ErrBadConn.Error(), "BEGIN 2", "UPDATE 2", "COMMIT 2"}
	if log := srv.Log(); !slices.Equal(log, want) {
		t.Errorf("log %q\nwant %q", log, want)
	}
}

// A *sql.Conn of the caller's whose COMMIT left the transaction open is
// closed as well: it is the only way to roll the leftover back, and the
// caller's next BEGIN on it, a retry's included, would commit it. The error
// says so and is not retried; the *sql.Conn then reports sql.ErrConnDone.
func TestInTxCallerConnLeftOpenIsClosed(t *testing.T) {
	srv := sessionfake.New()
	srv.EndErrs = []error{wsrepNotReady}
	db := sql.OpenDB(srv)
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	attempts := 0
	op := sqldb.Do(conn, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		attempts++
		_, err := tx.ExecContext(ctx, "UPDATE")
		return err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
	_, err = op.Run(t.Context())
	if !errors.Is(err, wsrepNotReady) || !final(dbop.VerdictOf(err)) || attempts != 1 {
		t.Fatalf("err = %v (verdict %v) after %d attempts; want the 1047, not retried", err, dbop.VerdictOf(err), attempts)
	}
	if err := conn.PingContext(t.Context()); !errors.Is(err, sql.ErrConnDone) {
		t.Errorf("the caller's connection after the failed COMMIT: %v, want sql.ErrConnDone", err)
	}
	if _, err := sqldb.Do(db, mysqldb.MariaDB, func(context.Context, *sql.Tx) error { return nil }).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if applied, _, closed := srv.Counts(); applied != 0 || closed != 1 {
		t.Errorf("applied %d, connections closed %d; want 0, 1", applied, closed)
	}
}
