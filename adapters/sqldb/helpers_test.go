package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// execer is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func mustExec(t testing.TB, db execer, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// scalar returns the single value query selects.
func scalar[T any](t testing.TB, db execer, query string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

// openSQL opens a pool for driver and dsn, closed when t ends.
func openSQL(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatalf("%s: %v", driver, err)
	}
	return db
}

// openMariaDB opens a pool on the MariaDB of DBOP_TEST_MYSQL, or skips.
func openMariaDB(t testing.TB) *sql.DB {
	t.Helper()
	return openSQL(t, "mysql", testdb.MySQL(t))
}

// mariaDBVia returns the DSN of DBOP_TEST_MYSQL with its address replaced.
func mariaDBVia(t testing.TB, addr string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = addr
	return cfg.FormatDSN()
}

// openPostgres opens a pool on the PostgreSQL of DBOP_TEST_POSTGRES through
// the pgx stdlib driver, or skips. params are added to the connection
// string as run-time parameters.
func openPostgres(t testing.TB, params ...string) *sql.DB {
	t.Helper()
	dsn := testdb.Postgres(t)
	for _, p := range params {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + p
	}
	return openSQL(t, "pgx", dsn)
}

// openSQLite opens a pool on the SQLite file at path.
func openSQLite(t testing.TB, path string, opts ...sqldb.SQLiteOption) *sql.DB {
	t.Helper()
	return openSQL(t, "sqlite", sqldb.SQLiteDSN(path, opts...))
}

// table creates the table name with the given columns and drops it when t
// ends. Names start with sqldb_ and are unique per test: other packages'
// tests use the same databases at the same time.
func table(t testing.TB, db *sql.DB, name, columns string) string {
	t.Helper()
	if !strings.HasPrefix(name, "sqldb_") {
		t.Fatalf("table %s: names start with sqldb_", name)
	}
	mustExec(t, db, "DROP TABLE IF EXISTS "+name)
	mustExec(t, db, "CREATE TABLE "+name+" "+columns)
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return name
}

// conn pins a connection of db, closed when t ends.
func conn(t testing.TB, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond, a few hundred times over at most 10s, until it
// holds. It waits for the server to reach a state the test forced (a
// COMMIT in flight landing); it never makes a race likely.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// barrier lets n goroutines wait until all have arrived.
type barrier struct {
	arrived chan struct{}
	all     chan struct{}
	n       int
}

func newBarrier(n int) *barrier {
	b := &barrier{arrived: make(chan struct{}, n), all: make(chan struct{}), n: n}
	go func() {
		for range n {
			<-b.arrived
		}
		close(b.all)
	}()
	return b
}

// wait arrives and waits for the others, or for ctx to end.
func (b *barrier) wait(ctx context.Context) error {
	b.arrived <- struct{}{}
	select {
	case <-b.all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("barrier: %w", ctx.Err())
	}
}

// mysqlNumber returns the server error number in err, or 0.
func mysqlNumber(err error) uint16 {
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		return me.Number
	}
	return 0
}
