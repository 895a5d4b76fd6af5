// Package sessionfake is a database/sql driver whose sessions keep their
// transaction as a MySQL-family server's do, for the tests of the adapters
// that must never return such a session to the pool with a transaction
// open (docs/backends.md §7.11).
package sessionfake

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
)

// A Server is a fake MySQL-family server whose sessions keep their
// transaction as MariaDB's do: a COMMIT or ROLLBACK that fails leaves it
// open (Galera's 1047, docs/backends.md §7.11), a BEGIN while one is open
// commits it first, and closing the session rolls it back. It counts the
// UPDATEs committed, so that a test sees work applied twice.
type Server struct {
	mu        sync.Mutex
	log       []string
	BeginErrs []error // errors of the next BEGINs (nil: succeeds)
	StmtErrs  map[string][]error
	EndErrs   []error // errors of the next COMMITs and ROLLBACKs, which leave the transaction open
	EndsTx    bool    // a failed COMMIT or ROLLBACK ends the transaction all the same (MariaDB's 1213)
	applied   int     // UPDATEs committed
	conns     int
	closed    int
}

// New returns a Server with no fault scripted. Open a *sql.DB over it with
// sql.OpenDB: it is its own driver.Connector. Script faults in its
// exported fields before the first session, and with FailBegins after.
func New() *Server { return &Server{StmtErrs: map[string][]error{}} }

func (s *Server) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf(format, args...))
}

// Log returns the statements run so far, each with its session, and clears it.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	s.log = nil
	return l
}

// Counts returns the UPDATEs committed, the sessions opened and the
// sessions closed.
func (s *Server) Counts() (applied, conns, closed int) {
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

func (s *Server) Connect(context.Context) (driver.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns++
	return &session{s: s, id: s.conns}, nil
}

func (s *Server) Driver() driver.Driver { return noOpen{} }

// noOpen is the Server's driver.Driver: sql.OpenDB uses the Server itself.
type noOpen struct{}

func (noOpen) Open(string) (driver.Conn, error) {
	return nil, errors.New("sessionfake: open the Server with sql.OpenDB")
}

// FailBegins scripts the errors of the next BEGINs, while sessions may be
// in use.
func (s *Server) FailBegins(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.BeginErrs = append(s.BeginErrs, errs...)
}

// session is one connection. pending is the number of UPDATEs of its open
// transaction; inTx whether one is open.
type session struct {
	s       *Server
	id      int
	inTx    bool
	pending int
	closed  bool
}

func (c *session) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("sessionfake: no prepare")
}
func (c *session) Begin() (driver.Tx, error) { return nil, errors.New("sessionfake: use BeginTx") }

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
	if err := next(&c.s.BeginErrs); err != nil {
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
	if errs := c.s.StmtErrs[query]; len(errs) > 0 {
		c.s.StmtErrs[query] = errs[1:]
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
		return nil, fmt.Errorf("sessionfake: no answer for %q", query)
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
	if err := next(&s.EndErrs); err != nil {
		s.logf("%s %d: %v", stmt, t.c.id, err)
		if s.EndsTx {
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
