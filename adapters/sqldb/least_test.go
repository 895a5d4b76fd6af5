package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// leastBackend is a server whose statement limit a default can set for
// every connection of a pool, for the tests of limits derived from a
// deadline against a default in force.
type leastBackend struct {
	name string
	// open opens a pool of one connection whose sessions have the
	// statement limit def in force.
	open  func(t *testing.T, def time.Duration) *sql.DB
	d     sqldb.Dialect
	sleep string // a statement that runs a second
	// limit reads the statement limit in force, in seconds.
	limit string
	// check reports whether err is the server's statement limit firing.
	check func(err error) bool
}

func leastBackends() []leastBackend {
	return []leastBackend{
		{
			name: "mariadb", d: mysqldb.MariaDB,
			open: func(t *testing.T, def time.Duration) *sql.DB {
				// go-sql-driver sends a DSN parameter it does not know as
				// SET when it connects (docs/backends.md §4.9).
				cfg, err := mysql.ParseDSN(testdb.MySQL(t))
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Params == nil {
					cfg.Params = map[string]string{}
				}
				cfg.Params["max_statement_time"] = strconv.FormatFloat(def.Seconds(), 'f', -1, 64)
				return onePool(openSQL(t, "mysql", cfg.FormatDSN()))
			},
			sleep: "SELECT SLEEP(1)", limit: "SELECT @@SESSION.max_statement_time",
			check: func(err error) bool { return mysqlNumber(err) == 1969 },
		},
		{
			name: "postgres", d: sqldb.Postgres,
			open: func(t *testing.T, def time.Duration) *sql.DB {
				// pgx sends a connection string's unknown parameters as
				// run-time parameters of the session.
				return onePool(openPostgres(t, "statement_timeout="+strconv.FormatInt(def.Milliseconds(), 10)+"ms"))
			},
			sleep: "SELECT pg_sleep(1)", limit: "SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'statement_timeout'",
			check: func(err error) bool {
				pe, ok := errors.AsType[*pgconn.PgError](err)
				return ok && pe.Code == "57014" && strings.Contains(pe.Message, "statement timeout")
			},
		},
	}
}

// onePool limits db to one connection, kept.
func onePool(db *sql.DB) *sql.DB {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db
}

// A limit derived from a deadline never raises a lower one in force: with
// a default statement limit of 150ms for every session of the pool and 30s
// left on the context, the attempt runs with 150ms, and the server ends a
// 1s statement at 150ms, not at the 29.95s the deadline would allow. The
// session keeps its default after the attempt. A StatementTimeout given is
// set as given, over the default.
func TestDerivedLimitKeepsALowerDefault(t *testing.T) {
	for _, be := range leastBackends() {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t, 150*time.Millisecond)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()

			var limit float64
			var took time.Duration
			op := sqldb.InTx(db, be.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
				limit = scalar[float64](t, tx, be.limit)
				start := time.Now()
				var x any
				err := tx.QueryRowContext(ctx, be.sleep).Scan(&x)
				took = time.Since(start)
				return 1, err
			})
			_, err := op.Run(ctx)
			if !be.check(err) {
				t.Fatalf("Run = %v; want the server's statement limit, the 150ms default", err)
			}
			if limit != 0.15 {
				t.Errorf("statement limit in force = %vs, want the 0.15s default: a derived limit must not raise it", limit)
			}
			if took >= 900*time.Millisecond {
				t.Errorf("the 1s statement ran %v, want it ended at the 150ms default", took)
			}

			op = sqldb.InTx(db, be.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
				limit = scalar[float64](t, tx, be.limit)
				return 1, nil
			}, sqldb.StatementTimeout(2*time.Second))
			if _, err := op.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if limit != 2 {
				t.Errorf("statement limit in force with StatementTimeout(2s) = %vs, want 2s, over the default", limit)
			}
			if got := scalar[float64](t, db, be.limit); got != 0.15 {
				t.Errorf("statement limit after the attempts = %vs, want the default 0.15s", got)
			}
		})
	}
}

// A derived limit still lowers a higher default: with a default of 10s and
// 1s left on the context, the attempt runs with the derived 950ms (or a
// little less), and the server ends a longer statement there.
func TestDerivedLimitLowersAHigherDefault(t *testing.T) {
	for _, be := range leastBackends() {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t, 10*time.Second)
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			var limit float64
			var took time.Duration
			op := sqldb.InTx(db, be.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
				limit = scalar[float64](t, tx, be.limit)
				start := time.Now()
				var x any
				err := tx.QueryRowContext(ctx, strings.Replace(be.sleep, "1", "3", 1)).Scan(&x)
				took = time.Since(start)
				return 1, err
			})
			_, err := op.Run(ctx)
			if !be.check(err) {
				t.Fatalf("Run = %v; want the server's statement limit", err)
			}
			if limit < 0.7 || limit > 0.95 {
				t.Errorf("statement limit in force = %vs, want the derived 0.95s or a little less, below the 10s default", limit)
			}
			if took < 600*time.Millisecond || took >= 2*time.Second {
				t.Errorf("the 3s statement ran %v, want it ended at the derived limit, about 950ms", took)
			}
			if got := scalar[float64](t, db, be.limit); got != 10 {
				t.Errorf("statement limit after the attempt = %vs, want the default 10s", got)
			}
		})
	}
}

// A deadline more than about 24.8 days away derives a limit above 2^31-1
// ms, the most statement_timeout takes: on PostgreSQL (pgx's stdlib
// driver) the attempt runs with 2^31-1 ms where 0 ("no limit") is in
// force, instead of BEGIN's statement failing with 22023
// (docs/backends.md §1.18; found by a review).
func TestDerivedLimitOfAFarDeadline(t *testing.T) {
	be := leastBackends()[1]
	db := onePool(openPostgres(t))
	ctx, cancel := context.WithTimeout(t.Context(), 30*24*time.Hour)
	defer cancel()
	var stmt, lock float64
	op := sqldb.InTx(db, be.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
		stmt = scalar[float64](t, tx, be.limit)
		lock = scalar[float64](t, tx, "SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'lock_timeout'")
		return 1, nil
	})
	if _, err := op.Run(ctx); err != nil {
		t.Fatalf("Run with 30 days left = %v; want the attempt to run", err)
	}
	if stmt != 2147483.647 || lock != 2147483.647 {
		t.Errorf("statement_timeout, lock_timeout in force = %vs, %vs; want 2147483.647s, the most they take (0 was in force)", stmt, lock)
	}
}
