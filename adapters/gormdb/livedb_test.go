package gormdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	mysqldialect "gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Integration tests of other packages run at the same time on the same
// databases: every table here is named gormdb_<test>, created at the start
// and dropped when the test ends.

// mariadb is the Dialect the scopes on the mysql dialector are given: the
// MySQL-family server the tests run against is MariaDB.
var mariadb = gormdb.Dialect(mysqldb.MariaDB)

// livePostgres opens GORM's postgres dialector on the test database, or
// skips the test (see testdb). cfg may be nil.
func livePostgres(t *testing.T, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", testdb.PostgresEnv, err)
	}
	return openPostgres(t, cc, cfg)
}

func openPostgres(t *testing.T, cc *pgx.ConnConfig, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	sqlDB := stdlib.OpenDB(*cc)
	t.Cleanup(func() { sqlDB.Close() })
	return openGORM(t, postgres.New(postgres.Config{Conn: sqlDB}), cfg)
}

// liveMySQL opens GORM's mysql dialector on the test database (MariaDB in
// CI), or skips the test. cfg may be nil.
func liveMySQL(t *testing.T, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	mc, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", testdb.MySQLEnv, err)
	}
	return openMySQL(t, mc, cfg)
}

func openMySQL(t *testing.T, mc *mysql.Config, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB := sql.OpenDB(connector)
	t.Cleanup(func() { sqlDB.Close() })
	return openGORM(t, mysqldialect.New(mysqldialect.Config{Conn: sqlDB}), cfg)
}

func openGORM(t *testing.T, d gorm.Dialector, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	if cfg == nil {
		cfg = &gorm.Config{}
	}
	cfg.Logger = logger.Discard
	db, err := gorm.Open(d, cfg)
	if err != nil {
		t.Fatalf("gorm.Open: %v", err)
	}
	return db
}

// createTable creates table with the given columns, dropping a leftover
// of an interrupted run first, and drops it when the test ends.
func createTable(t *testing.T, db *gorm.DB, table, columns string) {
	t.Helper()
	if !strings.HasPrefix(table, "gormdb_") {
		t.Fatalf("table %q: tables of this package are named gormdb_<test>", table)
	}
	exec(t, db, "DROP TABLE IF EXISTS "+table)
	exec(t, db, fmt.Sprintf("CREATE TABLE %s (%s)", table, columns))
	t.Cleanup(func() {
		if err := db.Exec("DROP TABLE IF EXISTS " + table).Error; err != nil {
			t.Errorf("dropping %s: %v", table, err)
		}
	})
}

// exec runs a statement outside any transaction, failing the test on error.
func exec(t *testing.T, db *gorm.DB, stmt string, args ...any) {
	t.Helper()
	if err := db.Exec(stmt, args...).Error; err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// queryRows returns the rows of table as "id:n" strings, in id order.
func queryRows(t *testing.T, db *gorm.DB, table string) []string {
	t.Helper()
	var rows []struct{ ID, N int }
	if err := db.Raw("SELECT id, n FROM " + table + " ORDER BY id").Scan(&rows).Error; err != nil {
		t.Fatalf("reading %s: %v", table, err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%d:%d", r.ID, r.N)
	}
	return out
}

// barrier lets n goroutines wait for one another. It is a watchdog, not a
// timer that makes a race likely: after a minute it gives up, so that a
// broken test fails instead of hanging.
type barrier struct {
	wg   sync.WaitGroup
	done chan struct{}
	once sync.Once
}

func newBarrier(n int) *barrier {
	b := &barrier{done: make(chan struct{})}
	b.wg.Add(n)
	go func() { b.wg.Wait(); b.once.Do(func() { close(b.done) }) }()
	return b
}

// arrive marks the caller arrived and waits for the others.
func (b *barrier) arrive(ctx context.Context) error {
	b.wg.Done()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return fmt.Errorf("barrier: the other goroutines did not arrive")
	}
}

// proxiedPostgres starts a fault proxy in front of the test PostgreSQL and
// returns it with a GORM whose connections go through it.
func proxiedPostgres(t *testing.T) (*faultproxy.Proxy, *gorm.DB) {
	t.Helper()
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	if cc.Host == "" || cc.Host[0] == '/' {
		t.Fatalf("the fault proxy needs a TCP address; the connection string names %q", cc.Host)
	}
	p := faultproxy.Start(t, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))))
	port, err := strconv.ParseUint(p.Port(), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	cc.Host, cc.Port = p.Host(), uint16(port)
	cc.Fallbacks = nil
	cc.TLSConfig = nil // the proxy must see the statements
	return p, openPostgres(t, cc, nil)
}

// proxiedMySQL is proxiedPostgres for MySQL/MariaDB.
func proxiedMySQL(t *testing.T) (*faultproxy.Proxy, *gorm.DB) {
	t.Helper()
	mc, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	if mc.Net != "tcp" {
		t.Fatalf("the fault proxy needs a TCP address; the DSN names %s(%s)", mc.Net, mc.Addr)
	}
	p := faultproxy.Start(t, mc.Addr)
	mc.Addr = p.Addr()
	mc.TLSConfig = ""
	mc.Logger = &mysql.NopLogger{} // the cuts are on purpose: no "unexpected EOF" on stderr
	return p, openMySQL(t, mc, nil)
}
