package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
)

// sessionServer is a fake MySQL-family server whose sessions keep their
// transaction as MariaDB's do: a COMMIT or ROLLBACK that fails leaves it
// open (Galera's 1047, docs/backends.md §7.11), a BEGIN while one is open
// commits it first, and closing the session rolls it back. It counts the
// UPDATEs committed, so that a test sees work applied twice.
type sessionServer struct {
	mu        sync.Mutex
	log       []string
	beginErrs []error // errors of the next BEGINs (nil: succeeds)
	stmtErrs  map[string][]error
	endErrs   []error // errors of the next COMMITs and ROLLBACKs, which leave the transaction open
	endsTx    bool    // a failed COMMIT or ROLLBACK ends the transaction all the same (MariaDB's 1213)
	applied   int     // UPDATEs committed
	conns     int
	closed    int
}

func newSessionServer() *sessionServer { return &sessionServer{stmtErrs: map[string][]error{}} }

func (s *sessionServer) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf(format, args...))
}

// Log returns the statements run so far, each with its session, and clears it.
func (s *sessionServer) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	s.log = nil
	return l
}

func (s *sessionServer) counts() (applied, conns, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied, s.conns, s.closed
}

func next(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (s *sessionServer) Connect(context.Context) (driver.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns++
	return &session{s: s, id: s.conns}, nil
}

func (s *sessionServer) Driver() driver.Driver { return fakeDriver{} }

// session is one connection. pending is the number of UPDATEs of its open
// transaction; inTx whether one is open.
type session struct {
	s       *sessionServer
	id      int
	inTx    bool
	pending int
	closed  bool
}

func (c *session) Prepare(string) (driver.Stmt, error) { return nil, errors.New("fake: no prepare") }
func (c *session) Begin() (driver.Tx, error)           { return nil, errors.New("fake: use BeginTx") }

func (c *session) Close() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.closed++
	c.closed = true
	c.inTx, c.pending = false, 0 // the server rolls back the session's transaction
	return nil
}

// ResetSession and IsValid are go-sql-driver's: neither looks at the
// server's transaction status (docs/backends.md §7.11).
func (c *session) ResetSession(context.Context) error { return nil }
func (c *session) IsValid() bool                      { return !c.closed }

func (c *session) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if err := next(&c.s.beginErrs); err != nil {
		c.s.logf("BEGIN %d: %v", c.id, err)
		return nil, err
	}
	if c.inTx {
		c.s.logf("implicit COMMIT %d", c.id)
		c.s.applied += c.pending
	}
	c.s.logf("BEGIN %d", c.id)
	c.inTx, c.pending = true, 0
	return sessionTx{c}, nil
}

func (c *session) ExecContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Result, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.logf("%s %d", query, c.id)
	if errs := c.s.stmtErrs[query]; len(errs) > 0 {
		c.s.stmtErrs[query] = errs[1:]
		return nil, errs[0]
	}
	if query == "UPDATE" {
		if c.inTx {
			c.pending++
		} else {
			c.s.applied++
		}
	}
	return driver.RowsAffected(1), nil
}

func (c *session) QueryContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Rows, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.logf("%s %d", query, c.id)
	if query != "SELECT @@in_transaction" {
		return nil, fmt.Errorf("fake: no answer for %q", query)
	}
	v := int64(0)
	if c.inTx {
		v = 1
	}
	return &oneValue{v: v}, nil
}

type sessionTx struct{ c *session }

func (t sessionTx) Commit() error   { return t.end("COMMIT", true) }
func (t sessionTx) Rollback() error { return t.end("ROLLBACK", false) }

func (t sessionTx) end(stmt string, commit bool) error {
	s := t.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := next(&s.endErrs); err != nil {
		s.logf("%s %d: %v", stmt, t.c.id, err)
		if s.endsTx {
			t.c.inTx, t.c.pending = false, 0
		}
		return err
	}
	s.logf("%s %d", stmt, t.c.id)
	if commit {
		s.applied += t.c.pending
	}
	t.c.inTx, t.c.pending = false, 0
	return nil
}

type oneValue struct {
	v    int64
	done bool
}

func (r *oneValue) Columns() []string { return []string{"@@in_transaction"} }
func (r *oneValue) Close() error      { return nil }
func (r *oneValue) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done, dest[0] = true, r.v
	return nil
}

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
		fault   func(*sessionServer)
		opts    []sqldb.TxOption
		own     bool // through ownBeginner: unguarded
		applied int
	}{
		{name: "COMMIT refused with 1047", fn: update, fault: func(s *sessionServer) { s.endErrs = []error{wsrepNotReady} }, applied: 1},
		{name: "statement and ROLLBACK refused with 1047", fn: updateThenCheck, fault: func(s *sessionServer) {
			s.stmtErrs["CHECK"] = []error{wsrepNotReady}
			s.endErrs = []error{wsrepNotReady}
		}, applied: 1},
		{name: "COMMIT refused with 1047, session timeouts", fn: update, fault: func(s *sessionServer) { s.endErrs = []error{wsrepNotReady} },
			opts: []sqldb.TxOption{sqldb.LockTimeout(2 * time.Second)}, applied: 1},
		{name: "COMMIT refused with 1047, caller's Beginner", fn: update, fault: func(s *sessionServer) { s.endErrs = []error{wsrepNotReady} },
			own: true, applied: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSessionServer()
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
			applied, _, closed := srv.counts()
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
	srv := newSessionServer()
	srv.endErrs, srv.endsTx = []error{certFailed}, true
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
	if applied, conns, closed := srv.counts(); applied != 1 || conns != 1 || closed != 0 {
		t.Errorf("applied %d, connections opened %d, closed %d; want 1, 1, 0", applied, conns, closed)
	}
}

// The guard costs nothing when transactions end well: no statement besides
// BEGIN, the work and COMMIT, and one pooled connection serves them all.
// A BEGIN that finds a pooled connection broken takes another, as
// *sql.DB.BeginTx does, without failing the attempt.
func TestInTxGuardSuccessPath(t *testing.T) {
	srv := newSessionServer()
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
	srv.mu.Lock()
	srv.beginErrs = []error{driver.ErrBadConn}
	srv.mu.Unlock()
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
	srv := newSessionServer()
	srv.endErrs = []error{wsrepNotReady}
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
	if applied, _, closed := srv.counts(); applied != 0 || closed != 1 {
		t.Errorf("applied %d, connections closed %d; want 0, 1", applied, closed)
	}
}
