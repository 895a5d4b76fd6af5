package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// fakeDB is a database/sql driver that records the statements it receives,
// answers queries from a table, and fails the statements a test scripts. It
// lets the unit tests watch exactly what InTx sends, with no server.
type fakeDB struct {
	mu      sync.Mutex
	log     []string
	fail    map[string][]error        // statement prefix → errors of its next runs (nil: succeeds)
	answers map[string][]driver.Value // query → its one row
	conns   int                       // connections opened
	closed  int                       // connections closed
}

// openFake returns a *sql.DB over a new fakeDB, closed when t ends.
func openFake(t *testing.T) (*sql.DB, *fakeDB) {
	t.Helper()
	f := &fakeDB{fail: map[string][]error{}, answers: map[string][]driver.Value{}}
	db := sql.OpenDB(f)
	t.Cleanup(func() { db.Close() })
	return db, f
}

// failNext scripts the next runs of statements starting with prefix: the
// n-th run returns errs[n-1].
func (f *fakeDB) failNext(prefix string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[prefix] = append(f.fail[prefix], errs...)
}

// answer makes query return one row of values.
func (f *fakeDB) answer(query string, values ...driver.Value) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[query] = values
}

// Log returns the statements run so far.
func (f *fakeDB) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// run records stmt and returns its scripted error.
func (f *fakeDB) run(stmt string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, stmt)
	for prefix, errs := range f.fail {
		if strings.HasPrefix(stmt, prefix) && len(errs) > 0 {
			f.fail[prefix] = errs[1:]
			return errs[0]
		}
	}
	return nil
}

func (f *fakeDB) Connect(context.Context) (driver.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns++
	return &fakeConn{f: f}, nil
}

func (f *fakeDB) Driver() driver.Driver { return fakeDriver{} }

func (f *fakeDB) openConns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns - f.closed
}

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("fake: use the connector")
}

type fakeConn struct{ f *fakeDB }

func (c *fakeConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("fake: no prepare") }
func (c *fakeConn) Begin() (driver.Tx, error)           { return nil, errors.New("fake: use BeginTx") }

func (c *fakeConn) Close() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.closed++
	return nil
}

func (c *fakeConn) BeginTx(_ context.Context, opts driver.TxOptions) (driver.Tx, error) {
	stmt := "BEGIN"
	if opts.ReadOnly {
		stmt += " READ ONLY"
	}
	if opts.Isolation != driver.IsolationLevel(sql.LevelDefault) {
		stmt += " ISOLATION " + sql.IsolationLevel(opts.Isolation).String()
	}
	if err := c.f.run(stmt); err != nil {
		return nil, err
	}
	return fakeTx{c.f}, nil
}

func (c *fakeConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if len(args) > 0 {
		query += fmt.Sprint(" ", args[0].Value)
	}
	if err := c.f.run(query); err != nil {
		return nil, err
	}
	return driver.RowsAffected(1), nil
}

func (c *fakeConn) QueryContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Rows, error) {
	if err := c.f.run(query); err != nil {
		return nil, err
	}
	c.f.mu.Lock()
	row, ok := c.f.answers[query]
	c.f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake: no answer for %q", query)
	}
	return &fakeRows{row: row}, nil
}

type fakeTx struct{ f *fakeDB }

func (t fakeTx) Commit() error   { return t.f.run("COMMIT") }
func (t fakeTx) Rollback() error { return t.f.run("ROLLBACK") }

type fakeRows struct {
	row  []driver.Value
	done bool
}

func (r *fakeRows) Columns() []string {
	cols := make([]string, len(r.row))
	for i := range cols {
		cols[i] = fmt.Sprint("c", i)
	}
	return cols
}

func (r *fakeRows) Close() error { return nil }

func (r *fakeRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	copy(dest, r.row)
	return nil
}
