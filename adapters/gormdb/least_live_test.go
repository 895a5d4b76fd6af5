package gormdb_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// leastBackend is a server whose statement limit a default can set for
// every connection of a pool, for the tests of limits derived from a
// deadline against a default in force.
type leastBackend struct {
	name string
	// open opens a pool of one connection whose sessions have the
	// statement limit def in force.
	open  func(t *testing.T, def time.Duration) *gorm.DB
	opts  []gormdb.TxOption
	sleep string // a statement that runs three seconds
	// limit reads the statement limit in force, in seconds.
	limit string
	// check reports whether err is the server's statement limit firing.
	check func(err error) bool
}

func leastBackends() []leastBackend {
	return []leastBackend{
		{
			name: "mariadb", opts: []gormdb.TxOption{mariadb},
			open: func(t *testing.T, def time.Duration) *gorm.DB {
				// go-sql-driver sends a DSN parameter it does not know as
				// SET when it connects (docs/backends.md §4.9).
				mc, err := mysql.ParseDSN(testdb.MySQL(t))
				if err != nil {
					t.Fatal(err)
				}
				if mc.Params == nil {
					mc.Params = map[string]string{}
				}
				mc.Params["max_statement_time"] = strconv.FormatFloat(def.Seconds(), 'f', -1, 64)
				return onePool(t, openMySQL(t, mc, nil))
			},
			sleep: "SELECT SLEEP(3)", limit: "SELECT @@SESSION.max_statement_time",
			check: func(err error) bool {
				me, ok := errors.AsType[*mysql.MySQLError](err)
				return ok && me.Number == 1969
			},
		},
		{
			name: "postgres",
			open: func(t *testing.T, def time.Duration) *gorm.DB {
				cc, err := pgx.ParseConfig(testdb.Postgres(t))
				if err != nil {
					t.Fatal(err)
				}
				cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(def.Milliseconds(), 10) + "ms"
				return onePool(t, openPostgres(t, cc, nil))
			},
			sleep: "SELECT pg_sleep(3)", limit: "SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'statement_timeout'",
			check: func(err error) bool {
				pe, ok := errors.AsType[*pgconn.PgError](err)
				return ok && pe.Code == "57014" && strings.Contains(pe.Message, "statement timeout")
			},
		},
	}
}

// onePool limits db's pool to one connection, kept.
func onePool(t *testing.T, db *gorm.DB) *gorm.DB {
	t.Helper()
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	return db
}

// limitIn returns the statement limit in force on db, in seconds.
func limitIn(t *testing.T, db *gorm.DB, query string) float64 {
	t.Helper()
	var v float64
	if err := db.Raw(query).Row().Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

// A limit derived from a deadline never raises a lower one in force: with
// a default statement limit of 150ms for every session of the pool and 30s
// left on the context, the attempt runs with 150ms, and the server ends a
// 3s statement at 150ms, not at the 29.95s the deadline would allow. The
// session keeps its default after the attempt.
func TestLiveDerivedLimitKeepsALowerDefault(t *testing.T) {
	for _, be := range leastBackends() {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t, 150*time.Millisecond)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var limit float64
			var took time.Duration
			_, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				limit = limitIn(t, tx, be.limit)
				start := time.Now()
				var x any
				err := tx.Raw(be.sleep).Row().Scan(&x)
				took = time.Since(start)
				return 1, err
			}, be.opts...).Run(ctx)
			if !be.check(err) {
				t.Fatalf("Run = %v; want the server's statement limit, the 150ms default", err)
			}
			if limit != 0.15 {
				t.Errorf("statement limit in force = %vs, want the 0.15s default: a derived limit must not raise it", limit)
			}
			if took >= 2*time.Second {
				t.Errorf("the 3s statement ran %v, want it ended at the 150ms default", took)
			}
			if got := limitIn(t, db, be.limit); got != 0.15 {
				t.Errorf("statement limit after the attempt = %vs, want the default 0.15s", got)
			}
		})
	}
}

// A derived limit still lowers a higher default: with a default of 10s and
// 1s left on the context, the attempt runs with the derived 950ms (or a
// little less), and the server ends a 3s statement there.
func TestLiveDerivedLimitLowersAHigherDefault(t *testing.T) {
	for _, be := range leastBackends() {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t, 10*time.Second)
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			var limit float64
			var took time.Duration
			_, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				limit = limitIn(t, tx, be.limit)
				start := time.Now()
				var x any
				err := tx.Raw(be.sleep).Row().Scan(&x)
				took = time.Since(start)
				return 1, err
			}, be.opts...).Run(ctx)
			if !be.check(err) {
				t.Fatalf("Run = %v; want the server's statement limit", err)
			}
			if limit < 0.7 || limit > 0.95 {
				t.Errorf("statement limit in force = %vs, want the derived 0.95s or a little less, below the 10s default", limit)
			}
			if took < 600*time.Millisecond || took >= 2*time.Second {
				t.Errorf("the 3s statement ran %v, want it ended at the derived limit, about 950ms", took)
			}
			if got := limitIn(t, db, be.limit); got != 10 {
				t.Errorf("statement limit after the attempt = %vs, want the default 10s", got)
			}
		})
	}
}

// A StatementTimeout given is set as given, over a lower default, and the
// derived limit is then not needed to reach it.
func TestLivePostgresGivenLimitOverTheDefault(t *testing.T) {
	be := leastBackends()[1]
	db := be.open(t, 150*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var limit float64
	if _, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		limit = limitIn(t, tx, be.limit)
		return 1, nil
	}, gormdb.StatementTimeout(2*time.Second)).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if limit != 2 {
		t.Errorf("statement limit in force = %vs, want the 2s given", limit)
	}
}

// A deadline more than about 24.8 days away derives a limit above 2^31-1
// ms, the most statement_timeout takes: on PostgreSQL the attempt runs
// with 2^31-1 ms where 0 ("no limit") is in force, instead of the
// set_config after BEGIN failing with 22023 (docs/backends.md §1.18;
// found by a review).
func TestLivePostgresDerivedLimitOfAFarDeadline(t *testing.T) {
	be := leastBackends()[1]
	db := onePool(t, livePostgres(t, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 30*24*time.Hour)
	defer cancel()
	var stmt, lock float64
	if _, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		stmt = limitIn(t, tx, be.limit)
		lock = limitIn(t, tx, "SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'lock_timeout'")
		return 1, nil
	}).Run(ctx); err != nil {
		t.Fatalf("Run with 30 days left = %v; want the attempt to run", err)
	}
	if stmt != 2147483.647 || lock != 2147483.647 {
		t.Errorf("statement_timeout, lock_timeout in force = %vs, %vs; want 2147483.647s, the most they take (0 was in force)", stmt, lock)
	}
}
