package gormdb_test

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

	mysqldialect "gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// fakeDB is a database/sql driver, for tests without a server, that logs
// every statement it receives ("BEGIN", "COMMIT", the SQL text of Exec and
// Query, "PREPARE " + text), fails the statements scripted with failNext
// and holds those scripted with blockNext. It is safe for concurrent use.
type fakeDB struct {
	mu    sync.Mutex
	log   []string
	fail  map[string][]error
	block map[string][]chan struct{}
}

// failNext makes the next len(errs) runs of stmt fail with errs in turn.
func (f *fakeDB) failNext(stmt string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string][]error{}
	}
	f.fail[stmt] = append(f.fail[stmt], errs...)
}

// blockNext makes the next run of stmt wait until release is called, or,
// for a statement run with a context (Exec and Query, not BEGIN, COMMIT or
// ROLLBACK, whose driver calls have none), until that context ends, as a
// driver does with a server that does not answer.
func (f *fakeDB) blockNext(stmt string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.block == nil {
		f.block = map[string][]chan struct{}{}
	}
	ch := make(chan struct{})
	f.block[stmt] = append(f.block[stmt], ch)
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// record logs stmt, waits if it is scripted to block, and returns the error
// scripted for it, if any.
func (f *fakeDB) record(ctx context.Context, stmt string) error {
	f.mu.Lock()
	f.log = append(f.log, stmt)
	var wait chan struct{}
	if chs := f.block[stmt]; len(chs) > 0 {
		wait, f.block[stmt] = chs[0], chs[1:]
	}
	var err error
	if errs := f.fail[stmt]; len(errs) > 0 {
		err, f.fail[stmt] = errs[0], errs[1:]
	}
	f.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// Log returns the statements run so far and clears the log.
func (f *fakeDB) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

func (f *fakeDB) Connect(context.Context) (driver.Conn, error) { return &fakeConn{db: f}, nil }
func (f *fakeDB) Driver() driver.Driver                        { return fakeDriver{f} }

type fakeDriver struct{ db *fakeDB }

func (d fakeDriver) Open(string) (driver.Conn, error) { return &fakeConn{db: d.db}, nil }

type fakeConn struct{ db *fakeDB }

func (c *fakeConn) Prepare(query string) (driver.Stmt, error) {
	if err := c.db.record(context.Background(), "PREPARE "+query); err != nil {
		return nil, err
	}
	return &fakeStmt{conn: c, query: query}, nil
}

func (c *fakeConn) Close() error { return nil }
func (c *fakeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *fakeConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	stmt := "BEGIN"
	if opts.ReadOnly {
		stmt += " READ ONLY"
	}
	if level := sql.IsolationLevel(opts.Isolation); level != sql.LevelDefault {
		stmt += " ISOLATION LEVEL " + strings.ToUpper(level.String())
	}
	if err := c.db.record(ctx, stmt); err != nil {
		return nil, err
	}
	return fakeTx{c.db}, nil
}

func (c *fakeConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.db.record(ctx, withArgs(query, args)); err != nil {
		return nil, err
	}
	return driver.RowsAffected(1), nil
}

func (c *fakeConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.db.record(ctx, withArgs(query, args)); err != nil {
		return nil, err
	}
	return fakeRows{}, nil
}

// withArgs appends the arguments to a statement's text, as " [a b]".
func withArgs(query string, args []driver.NamedValue) string {
	if len(args) == 0 {
		return query
	}
	vs := make([]string, len(args))
	for i, a := range args {
		vs[i] = fmt.Sprint(a.Value)
	}
	return query + " [" + strings.Join(vs, " ") + "]"
}

type fakeStmt struct {
	conn  *fakeConn
	query string
}

func (s *fakeStmt) Close() error  { return nil }
func (s *fakeStmt) NumInput() int { return -1 }
func (s *fakeStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.conn.ExecContext(context.Background(), s.query, named(args))
}
func (s *fakeStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.conn.QueryContext(context.Background(), s.query, named(args))
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

type fakeTx struct{ db *fakeDB }

// Commit and Rollback have no context, as database/sql's driver.Tx has none.
func (t fakeTx) Commit() error   { return t.db.record(context.Background(), "COMMIT") }
func (t fakeTx) Rollback() error { return t.db.record(context.Background(), "ROLLBACK") }

// fakeRows is an empty result.
type fakeRows struct{}

func (fakeRows) Columns() []string         { return nil }
func (fakeRows) Close() error              { return nil }
func (fakeRows) Next([]driver.Value) error { return io.EOF }

// fakeGORM opens GORM with the named dialector over a new fakeDB: GORM's
// "postgres" or "mysql" dialector, or, for any other name ("sqlite",
// "sqlserver"), the postgres dialector under that name. Neither dialector
// talks to the server when it opens with an existing connection pool (and,
// for mysql, SkipInitializeWithVersion).
func fakeGORM(t *testing.T, dialector string, cfg *gorm.Config) (*gorm.DB, *fakeDB) {
	t.Helper()
	f := &fakeDB{}
	sqlDB := sql.OpenDB(f)
	t.Cleanup(func() { sqlDB.Close() })
	var d gorm.Dialector
	switch dialector {
	case "postgres":
		d = postgres.New(postgres.Config{Conn: sqlDB})
	case "mysql":
		d = mysqldialect.New(mysqldialect.Config{Conn: sqlDB, SkipInitializeWithVersion: true})
	default:
		d = namedDialector{postgres.New(postgres.Config{Conn: sqlDB}), dialector}
	}
	if cfg == nil {
		cfg = &gorm.Config{}
	}
	cfg.Logger = logger.Discard
	db, err := gorm.Open(d, cfg)
	if err != nil {
		t.Fatalf("gorm.Open over the fake driver: %v", err)
	}
	return db, f
}

// errScripted is a failure with no meaning to any classifier.
var errScripted = errors.New("scripted failure")

// namedDialector is a dialector under another name, for the dialectors
// this module does not depend on (the sqlite one needs cgo) and for those
// gormdb does not know.
type namedDialector struct {
	gorm.Dialector
	name string
}

func (d namedDialector) Name() string { return d.name }
