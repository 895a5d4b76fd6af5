package benchmarks

// What resolving lost COMMIT answers (ResolveCommit) and deriving
// server-side limits from a deadline cost per transaction, on the live
// servers of DBOP_BENCH_POSTGRES / DBOP_TEST_POSTGRES and DBOP_BENCH_MYSQL
// / DBOP_TEST_MYSQL, and how late a server-side limit fires, which sets
// the margin InTx leaves before the deadline. benchmarks/README.md
// (section 4) and docs/ambiguity.md have the results; the commands:
//
//	go test -run '^$' -bench CommitResolution -count 10 > results/resolve.txt
//	benchstat results/resolve.txt > results/resolve-benchstat.txt
//	go test -run '^$' -bench 'Overshoot|Margin/.*/deadline=(10ms|20ms|50ms|100ms)$' -benchtime 200x
//	go test -run '^$' -bench 'Margin/.*/deadline=1s$' -benchtime 20x
//
// (the last two together in results/resolve-margin.txt).

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func benchPostgresDSN(b *testing.B) string {
	dsn := cmp.Or(os.Getenv("DBOP_BENCH_POSTGRES"), os.Getenv("DBOP_TEST_POSTGRES"))
	if dsn == "" {
		b.Skip("set DBOP_BENCH_POSTGRES or DBOP_TEST_POSTGRES")
	}
	return dsn
}

func benchMySQLDSN(b *testing.B) string {
	dsn := cmp.Or(os.Getenv("DBOP_BENCH_MYSQL"), os.Getenv("DBOP_TEST_MYSQL"))
	if dsn == "" {
		b.Skip("set DBOP_BENCH_MYSQL or DBOP_TEST_MYSQL")
	}
	return dsn
}

// threeStatements is the uncontended transaction measured: a read, an
// update and an insert, one round trip each.
const (
	readSQL   = "SELECT balance FROM %s WHERE id = 1"
	updateSQL = "UPDATE %s SET balance = balance + 1 WHERE id = 1"
	insertSQL = "INSERT INTO %s (amount) VALUES (1)"
)

// BenchmarkCommitResolution measures what ResolveCommit and a deadline on
// the context add to an uncontended three-statement transaction on
// PostgreSQL and MariaDB, one connection, each as a pair (see runPairs):
//
//   - pgx/id-before-commit: pgx's BeginTx, the statements, Commit, against
//     the same plus SELECT pg_current_xact_id_if_assigned() before COMMIT,
//     what ResolveCommit adds;
//   - pgx/id-forced-at-begin: against BEGIN; SELECT pg_current_xact_id()
//     as one BeginQuery, the alternative of forcing the id at BEGIN in the
//     same round trip. pgx discards the result of a BeginQuery, so this
//     variant cannot learn the id: it shows only what the forced
//     assignment costs, a lower bound of that design;
//   - pgxdb: pgx by hand against pgxdb.InTx, the adapter's own cost;
//   - pgxdb/resolve, pgxdb/deadline (a 10 s deadline: the derived SET
//     LOCAL travels with BEGIN): pgxdb.InTx against the same with the
//     option, or the deadline;
//   - pgxdb/share-alone: pgxdb.InTx against the same with ShareCommits and
//     nobody to share with: what a lone attempt pays for it (the lock
//     table's LOCK in the BEGIN round trip, the turn; no savepoint);
//   - sqldb-postgres/resolve, /deadline: sqldb.InTx on pgx's database/sql
//     driver (the derived SET LOCAL needs a round trip of its own there);
//   - sqldb-mariadb: database/sql by hand against sqldb.InTx on MariaDB;
//     /resolve (the commit marker), /deadline (max_statement_time saved
//     and set, then restored, on a pinned connection).
func BenchmarkCommitResolution(b *testing.B) {
	b.Run("postgres", benchPostgresResolution)
	b.Run("mariadb", benchMariaDBResolution)
}

func benchPostgresResolution(b *testing.B) {
	dsn := benchPostgresDSN(b)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	accounts, ledger := fmt.Sprintf("bench_resolve_accounts_%d", os.Getpid()), fmt.Sprintf("bench_resolve_ledger_%d", os.Getpid())
	for _, s := range []string{
		"DROP TABLE IF EXISTS " + accounts + ", " + ledger,
		"CREATE TABLE " + accounts + " (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE " + ledger + " (id bigserial PRIMARY KEY, amount bigint NOT NULL)",
		"INSERT INTO " + accounts + " VALUES (1, 0)",
	} {
		if _, err := pool.Exec(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	defer pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+accounts+", "+ledger)
	read, update, insert := fmt.Sprintf(readSQL, accounts), fmt.Sprintf(updateSQL, accounts), fmt.Sprintf(insertSQL, ledger)
	work := func(ctx context.Context, tx pgx.Tx) (int64, error) {
		var bal int64
		if err := tx.QueryRow(ctx, read).Scan(&bal); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, update); err != nil {
			return 0, err
		}
		_, err := tx.Exec(ctx, insert)
		return bal, err
	}
	raw := func(opts pgx.TxOptions, beforeCommit string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			tx, err := pool.BeginTx(ctx, opts)
			if err != nil {
				return err
			}
			if _, err := work(ctx, tx); err != nil {
				_ = tx.Rollback(ctx)
				return err
			}
			if beforeCommit != "" {
				var id string
				if err := tx.QueryRow(ctx, beforeCommit, pgx.QueryExecModeSimpleProtocol).Scan(&id); err != nil {
					_ = tx.Rollback(ctx)
					return err
				}
			}
			return tx.Commit(ctx)
		}
	}
	plain := pgxdb.InTx(pool, work)
	resolving := pgxdb.InTx(pool, work, pgxdb.ResolveCommit())
	if err := pgxdb.CreateHotSpotLocks(ctx, pool); err != nil {
		b.Fatal(err)
	}
	alone := pgxdb.InTx(pool, work, pgxdb.ShareCommits()) // no one to share with: its lock table in BEGIN, no savepoint

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	sqlWork := func(ctx context.Context, tx *sql.Tx) (int64, error) {
		var bal int64
		if err := tx.QueryRowContext(ctx, read).Scan(&bal); err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, update); err != nil {
			return 0, err
		}
		_, err := tx.ExecContext(ctx, insert)
		return bal, err
	}
	sqlPlain := sqldb.InTx(db, sqldb.Postgres, sqlWork)
	sqlResolving := sqldb.InTx(db, sqldb.Postgres, sqlWork, sqldb.ResolveCommit())

	pgxRaw := raw(pgx.TxOptions{}, "")
	runPairs(b, []pair{
		{name: "pgx/id-before-commit", base: pgxRaw, variant: raw(pgx.TxOptions{}, "SELECT COALESCE(pg_current_xact_id_if_assigned()::text, '')")},
		{name: "pgx/id-forced-at-begin", base: pgxRaw, variant: raw(pgx.TxOptions{BeginQuery: "begin; SELECT pg_current_xact_id()"}, "")},
		{name: "pgxdb", base: pgxRaw, variant: opRun(plain)},
		{name: "pgxdb/resolve", base: opRun(plain), variant: opRun(resolving)},
		{name: "pgxdb/deadline", base: opRun(plain), variant: withDeadline(opRun(plain))},
		{name: "pgxdb/share-alone", base: opRun(plain), variant: opRun(alone)},
		{name: "sqldb-postgres/resolve", base: opRun(sqlPlain), variant: opRun(sqlResolving)},
		{name: "sqldb-postgres/deadline", base: opRun(sqlPlain), variant: withDeadline(opRun(sqlPlain))},
	})
}

func benchMariaDBResolution(b *testing.B) {
	dsn := benchMySQLDSN(b)
	ctx := context.Background()
	base, err := mysql.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	admin, err := sql.Open("mysql", base.FormatDSN())
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	dbName := fmt.Sprintf("bench_resolve_%d", os.Getpid())
	for _, s := range []string{"DROP DATABASE IF EXISTS " + dbName, "CREATE DATABASE " + dbName} {
		if _, err := admin.ExecContext(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	defer admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+dbName)
	cfg := base.Clone()
	cfg.DBName = dbName
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(2) // the transaction's connection, and a spare
	for _, s := range []string{
		"CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, amount BIGINT NOT NULL) ENGINE=InnoDB",
		"INSERT INTO accounts VALUES (1, 0)",
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	if err := mysqldb.CreateCommitMarkers(ctx, db); err != nil {
		b.Fatal(err)
	}
	read, update, insert := fmt.Sprintf(readSQL, "accounts"), fmt.Sprintf(updateSQL, "accounts"), fmt.Sprintf(insertSQL, "ledger")
	work := func(ctx context.Context, tx *sql.Tx) (int64, error) {
		var bal int64
		if err := tx.QueryRowContext(ctx, read).Scan(&bal); err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, update); err != nil {
			return 0, err
		}
		_, err := tx.ExecContext(ctx, insert)
		return bal, err
	}
	rawTx := func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := work(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	plain := sqldb.InTx(db, mysqldb.MariaDB, work)
	resolving := sqldb.InTx(db, mysqldb.MariaDB, work, sqldb.ResolveCommit())
	runPairs(b, []pair{
		{name: "sqldb-mariadb", base: rawTx, variant: opRun(plain)},
		{name: "sqldb-mariadb/resolve", base: opRun(plain), variant: opRun(resolving)},
		{name: "sqldb-mariadb/deadline", base: opRun(plain), variant: withDeadline(opRun(plain))},
	})
}

// opRun adapts an operation to the benchmark loop.
func opRun[T any](op dbop.Op[T]) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := op.Run(ctx)
		return err
	}
}

// withDeadline runs run under a 10-second context deadline, as a
// per-attempt dbop.WithTimeout would.
func withDeadline(run func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return run(ctx)
	}
}

// pair is a measurement of what variant adds to base.
type pair struct {
	name          string
	base, variant func(ctx context.Context) error
}

// runPairs measures each pair as a sub-benchmark: every iteration runs
// base and variant once each, in turn, on the same connection, and the
// benchmark reports the medians of both (base-µs, variant-µs), the median
// of the per-iteration differences (extra-µs) and that as a share of
// base's median (extra-%). Alternating the two keeps a machine whose load
// drifts from biasing one of them, and the median of paired differences
// ignores the iterations a neighbour's burst slowed down; ns/op is the
// pair's, and says little.
func runPairs(b *testing.B, pairs []pair) {
	for _, p := range pairs {
		b.Run(p.name, func(b *testing.B) {
			ctx := context.Background()
			var base, variant, diff []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := p.base(ctx); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := p.variant(ctx); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				base, variant, diff = append(base, t1.Sub(t0)), append(variant, t2.Sub(t1)), append(diff, t2.Sub(t1)-t1.Sub(t0))
			}
			mb, mv, md := median(base), median(variant), median(diff)
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(us(mb), "base-µs")
			b.ReportMetric(us(mv), "variant-µs")
			b.ReportMetric(us(md), "extra-µs")
			b.ReportMetric(100*float64(md)/float64(mb), "extra-%")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkServerTimeoutOvershoot measures how late a server-side limit
// fires, seen from the client: the time from sending a statement that
// sleeps a second, under a 20 ms limit (PostgreSQL's statement_timeout,
// MariaDB's max_statement_time), to receiving its error, less 20 ms. The
// margin InTx keeps before a deadline must cover it. It reports the
// median, the 99th percentile and the maximum, in microseconds.
func BenchmarkServerTimeoutOvershoot(b *testing.B) {
	const limit = 20 * time.Millisecond
	b.Run("postgres", func(b *testing.B) {
		conn, err := pgx.Connect(context.Background(), benchPostgresDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "SET statement_timeout = 20"); err != nil {
			b.Fatal(err)
		}
		overshoot(b, limit, func() error {
			_, err := conn.Exec(context.Background(), "SELECT pg_sleep(1)")
			return err
		})
	})
	b.Run("mariadb", func(b *testing.B) {
		db, err := sql.Open("mysql", benchMySQLDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(context.Background(), "SET SESSION max_statement_time = 0.02"); err != nil {
			b.Fatal(err)
		}
		overshoot(b, limit, func() error {
			var x int
			return db.QueryRowContext(context.Background(), "SELECT SLEEP(1)").Scan(&x)
		})
	})
}

func overshoot(b *testing.B, limit time.Duration, stmt func() error) {
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		err := stmt()
		took := time.Since(start)
		if err == nil {
			b.Fatal("the statement was not stopped by the server's limit")
		}
		samples = append(samples, took-limit)
	}
	slices.Sort(samples)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(samples[len(samples)/2]), "p50-µs")
	b.ReportMetric(us(samples[len(samples)*99/100]), "p99-µs")
	b.ReportMetric(us(samples[len(samples)-1]), "max-µs")
}

// BenchmarkDeadlineMargin runs a transaction whose statement sleeps past a
// per-attempt deadline of 10 ms to 1 s, through pgxdb and sqldb on
// MariaDB, and reports the share of attempts the context ended rather than
// the server (context-won). InTx's margin (the smaller of 10 % and 50 ms)
// is meant to keep it near 0; on a loaded machine the server's answer can
// arrive later than the margin, and short deadlines lose more often
// (results/resolve-margin.txt, docs/ambiguity.md).
func BenchmarkDeadlineMargin(b *testing.B) {
	deadlines := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, time.Second}
	b.Run("postgres", func(b *testing.B) {
		cfg, err := pgxpool.ParseConfig(benchPostgresDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			_, err := tx.Exec(ctx, "SELECT pg_sleep(10)")
			return 0, err
		})
		for _, d := range deadlines {
			b.Run(fmt.Sprint("deadline=", d), func(b *testing.B) { margin(b, d, op) })
		}
	})
	b.Run("mariadb", func(b *testing.B) {
		db, err := sql.Open("mysql", benchMySQLDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			var x int
			return 0, tx.QueryRowContext(ctx, "SELECT SLEEP(10)").Scan(&x)
		})
		for _, d := range deadlines {
			b.Run(fmt.Sprint("deadline=", d), func(b *testing.B) { margin(b, d, op) })
		}
	})
}

func margin(b *testing.B, d time.Duration, op dbop.Op[int]) {
	var contextWon int
	for b.Loop() {
		_, err := op.With(dbop.WithTimeout(d)).Run(context.Background())
		var te *dbop.TimeoutError
		if errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) {
			contextWon++
		} else if err == nil {
			b.Fatal("the slow statement succeeded")
		}
	}
	b.ReportMetric(float64(contextWon)/float64(b.N), "context-won/op")
}
