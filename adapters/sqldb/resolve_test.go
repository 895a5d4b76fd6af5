package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"github.com/dbop-go/dbop/internal/resolve"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// resolutions collects what scopes.OnCommitResolved reports.
type resolutions struct {
	mu  sync.Mutex
	got []scopes.Resolution
}

func (r *resolutions) record(_ context.Context, rc scopes.ResolvedCommit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rc.Resolution)
}

func (r *resolutions) list() []scopes.Resolution {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]scopes.Resolution(nil), r.got...)
}

// cut is one way of cutting the connection around COMMIT, and what
// ResolveCommit must find out after it.
type cut struct {
	name     string
	arm      func(p *faultproxy.Proxy, pattern []byte)
	want     scopes.Resolution
	wantRuns int
}

// cuts: right after COMMIT was forwarded (the server committed); right
// before (the server never received it, and saw the client go); a
// partition right before (the server never received it and was not told:
// the old session sits in its transaction until the resolver ends it).
var cuts = []cut{
	{"cut after", (*faultproxy.Proxy).CutAfter, scopes.Committed, 1},
	{"cut before", (*faultproxy.Proxy).CutBefore, scopes.Aborted, 2},
	{"partition before", (*faultproxy.Proxy).PartitionBefore, scopes.Aborted, 2},
}

// mariaDBResolveDB creates a database of the test's own with the commit
// marker table, dropped when t ends, and returns its name and a pool on it.
func mariaDBResolveDB(t *testing.T) (string, *sql.DB) {
	t.Helper()
	admin := openMariaDB(t)
	name := fmt.Sprintf("sqldb_resolve_%d_%s", os.Getpid(), strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())))
	if len(name) > 64 {
		name = name[:64]
	}
	mustExec(t, admin, "DROP DATABASE IF EXISTS `"+name+"`")
	mustExec(t, admin, "CREATE DATABASE `"+name+"`")
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`") })
	cfg, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	db := openSQL(t, "mysql", cfg.FormatDSN())
	if err := mysqldb.CreateCommitMarkers(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return name, db
}

// On MariaDB, the commit marker tells: found → committed and fn's value
// returned; not found once the old connection is gone → aborted, and
// retried without Idempotent. The partition leaves the old connection in
// its transaction, holding the row's lock, until the resolver kills it.
// The row is updated exactly once every time.
func TestResolveCommitMariaDB(t *testing.T) {
	for _, c := range cuts {
		t.Run(c.name, func(t *testing.T) {
			dbName, direct := mariaDBResolveDB(t)
			mustExec(t, direct, "CREATE TABLE sqldb_items (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
			mustExec(t, direct, "INSERT INTO sqldb_items VALUES (1, 0)")
			p := faultproxy.Start(t, mysqlAddr(t))
			cfg, _ := mysql.ParseDSN(testdb.MySQL(t))
			cfg.DBName, cfg.Addr = dbName, p.Addr()
			db := openSQL(t, "mysql", cfg.FormatDSN())

			var runs int
			op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				_, err := tx.ExecContext(ctx, "UPDATE sqldb_items SET n = n + 1 WHERE id = 1")
				if runs == 1 {
					c.arm(p, []byte("COMMIT"))
				}
				return 42, err
			}, sqldb.ResolveCommit())
			var res resolutions
			got, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(scopes.OnCommitResolved(t.Context(), res.record))
			if err != nil || got != 42 {
				t.Fatalf("Run = %d, %v; want 42, nil", got, err)
			}
			if runs != c.wantRuns || p.Cuts() != 1 {
				t.Errorf("fn ran %d times after %d cuts, want %d after 1", runs, p.Cuts(), c.wantRuns)
			}
			if r := res.list(); len(r) != 1 || r[0] != c.want {
				t.Errorf("resolutions %v, want [%v]", r, c.want)
			}
			if n := scalar[int](t, direct, "SELECT n FROM sqldb_items WHERE id = 1"); n != 1 {
				t.Errorf("n = %d, want 1: applied exactly once", n)
			}
			if n := scalar[int](t, direct, "SELECT COUNT(*) FROM "+mysqldb.CommitMarkerTable); n != 1 {
				t.Errorf("%d markers, want 1: the committed transaction's", n)
			}
		})
	}
}

// On PostgreSQL through database/sql (pgx's driver), pg_xact_status tells,
// as in pgxdb.
func TestResolveCommitPostgres(t *testing.T) {
	for i, c := range cuts {
		t.Run(c.name, func(t *testing.T) {
			direct := openPostgres(t)
			tbl := table(t, direct, fmt.Sprintf("sqldb_resolve_%d_%d", os.Getpid(), i), "(id INT PRIMARY KEY, n INT NOT NULL)")
			mustExec(t, direct, "INSERT INTO "+tbl+" VALUES (1, 0)")
			pcfg, err := pgx.ParseConfig(testdb.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			p := faultproxy.Start(t, net.JoinHostPort(pcfg.Host, strconv.Itoa(int(pcfg.Port))))
			db := openSQL(t, "pgx", fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pcfg.User, p.Addr(), pcfg.Database))

			var runs int
			op := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = 1")
				if runs == 1 {
					c.arm(p, []byte("commit")) // pgx sends COMMIT in lower case
				}
				return 42, err
			}, sqldb.ResolveCommit())
			var res resolutions
			got, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(scopes.OnCommitResolved(t.Context(), res.record))
			if err != nil || got != 42 {
				t.Fatalf("Run = %d, %v; want 42, nil", got, err)
			}
			if runs != c.wantRuns || p.Cuts() != 1 {
				t.Errorf("fn ran %d times after %d cuts, want %d after 1", runs, p.Cuts(), c.wantRuns)
			}
			if r := res.list(); len(r) != 1 || r[0] != c.want {
				t.Errorf("resolutions %v, want [%v]", r, c.want)
			}
			eventually(t, "the cut transaction's backend ends", func() bool {
				return scalar[int](t, direct, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND query LIKE '%"+tbl+"%'") == 0
			})
			if n := scalar[int](t, direct, "SELECT n FROM "+tbl+" WHERE id = 1"); n != 1 {
				t.Errorf("n = %d, want 1: applied exactly once", n)
			}
		})
	}
}

// Without the marker table, the first read-write transaction fails with
// ErrNoCommitMarkers, which names the call that creates it, and is not
// retried; nothing is committed.
func TestResolveCommitMariaDBWithoutMarkerTable(t *testing.T) {
	_, db := mariaDBResolveDB(t)
	mustExec(t, db, "DROP TABLE "+mysqldb.CommitMarkerTable)
	mustExec(t, db, "CREATE TABLE sqldb_items (id INT PRIMARY KEY) ENGINE=InnoDB")
	var runs int
	op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		runs++
		_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_items VALUES (1)")
		return 1, err
	}, sqldb.ResolveCommit())
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
	if !errors.Is(err, mysqldb.ErrNoCommitMarkers) || !strings.Contains(err.Error(), "mysqldb.CreateCommitMarkers") {
		t.Fatalf("err = %v, want ErrNoCommitMarkers naming mysqldb.CreateCommitMarkers", err)
	}
	if mysqlNumber(err) != 1146 {
		t.Errorf("the driver's error (1146) is lost: %v", err)
	}
	if runs != 1 {
		t.Errorf("fn ran %d times, want 1: not retried", runs)
	}
	if n := scalar[int](t, db, "SELECT COUNT(*) FROM sqldb_items"); n != 0 {
		t.Errorf("%d rows, want 0: rolled back", n)
	}
	// A read-only transaction writes no marker, so it needs no table.
	if _, err := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		return scalar[int](t, tx, "SELECT COUNT(*) FROM sqldb_items"), nil
	}, sqldb.ResolveCommit(), sqldb.ReadOnly()).Run(t.Context()); err != nil {
		t.Errorf("a read-only transaction failed: %v", err)
	}
}

// Markers are written one per read-write transaction, none for a
// read-only one; DeleteCommitMarkers deletes those older than it is told.
func TestResolveCommitMariaDBMarkers(t *testing.T) {
	_, db := mariaDBResolveDB(t)
	mustExec(t, db, "CREATE TABLE sqldb_items (id INT PRIMARY KEY) ENGINE=InnoDB")
	for i := range 3 {
		if _, err := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_items VALUES (?)", i)
			return 1, err
		}, sqldb.ResolveCommit()).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		return scalar[int](t, tx, "SELECT COUNT(*) FROM sqldb_items"), nil
	}, sqldb.ResolveCommit(), sqldb.ReadOnly()).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := scalar[int](t, db, "SELECT COUNT(*) FROM "+mysqldb.CommitMarkerTable); n != 3 {
		t.Fatalf("%d markers, want 3", n)
	}
	var own int64
	if err := db.QueryRowContext(t.Context(), "SELECT CONNECTION_ID()").Scan(&own); err != nil {
		t.Fatal(err)
	}
	// Each marker names a connection of this server in its low 32 bits.
	if n := scalar[int](t, db, "SELECT COUNT(*) FROM "+mysqldb.CommitMarkerTable+" WHERE conn >> 32 = CRC32(CONCAT(@@hostname, ':', @@port, '/', DATABASE()))"); n != 3 {
		t.Errorf("%d markers name this server, want 3", n)
	}
	mustExec(t, db, "UPDATE "+mysqldb.CommitMarkerTable+" SET created = NOW(6) - INTERVAL 2 HOUR LIMIT 2")
	n, err := mysqldb.DeleteCommitMarkers(t.Context(), db, time.Hour)
	if err != nil || n != 2 {
		t.Errorf("DeleteCommitMarkers = %d, %v; want 2, nil", n, err)
	}
	if got := mustPanic(t, func() { _, _ = mysqldb.DeleteCommitMarkers(t.Context(), db, time.Second) }); got == nil {
		t.Error("DeleteCommitMarkers(1s) did not panic")
	}
}

// ResolveCommit needs another connection: a *sql.Conn cannot give one.
func TestResolveCommitNeedsAPool(t *testing.T) {
	db, _ := openFake(t)
	c, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fn := func(context.Context, *sql.Tx) (int, error) { return 0, nil }
	got := mustPanic(t, func() { sqldb.InTx(c, sqldb.Postgres, fn, sqldb.ResolveCommit()) })
	if s, _ := got.(string); !strings.Contains(s, "ResolveCommit asks on another connection: pass a *sql.DB") {
		t.Errorf("panic %q", got)
	}
	// SQLite needs none, and takes the option as a no-op.
	sqldb.InTx(c, sqldb.SQLite, fn, sqldb.ResolveCommit())
}

// The statement ResolveCommit runs before COMMIT fails: COMMIT is not
// sent, the transaction is rolled back, and the error is classified as
// any other (here a lost connection: retry-transaction), not ambiguous.
func TestResolveCommitReadFailsBeforeCommit(t *testing.T) {
	db, f := openFake(t)
	const read = resolve.PGTxSQL
	f.answer(read, "", int64(7), "1/2", "on")
	f.failNext(read, driver.ErrBadConn)
	runs := 0
	var retried recorder
	if _, err := insertOp(db, sqldb.Postgres, &runs, sqldb.ResolveCommit()).With(
		dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), retried.option())).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	errs := retried.all()
	if len(errs) != 1 || dbop.VerdictOf(errs[0]) != dbop.RetryTransaction || errors.Is(errs[0], scopes.ErrAmbiguousCommit) {
		t.Errorf("retried %v, want one retry-transaction error, not ambiguous", errs)
	}
	checkLog(t, []string{"BEGIN", "INSERT a", read, "ROLLBACK", "BEGIN", "INSERT a", read, "COMMIT"}, f)
}

// fn swallows a statement's error (a unique violation) and returns nil: the
// transaction is aborted, and its COMMIT only rolls back (docs/backends.md
// §1.1, §1.2). ResolveCommit's read before COMMIT then fails with 25P02;
// that says nothing of the read or of the server's version, and the caller
// gets what it gets without the option. On pgx's driver that is pgx's
// ErrTxCommitRollback, which the Postgres dialect cannot tell from a lost
// answer (§11): an ambiguous commit, retried only when Idempotent. With
// ResolveCommit it stays one, retried alike, its reason naming the failed
// transaction.
func TestResolveCommitKeepsTheErrorOfASwallowedStatement(t *testing.T) {
	db := openPostgres(t)
	tbl := table(t, db, fmt.Sprintf("sqldb_resolve_swallowed_%d", os.Getpid()), "(id INT PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1)")
	run := func(idempotent bool, opts ...sqldb.TxOption) (runs int, err error) {
		op := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
			runs++
			_, _ = tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (1)") // 23505, swallowed
			return 1, nil
		}, opts...)
		retry := []dbop.RetryOption{dbop.MaxAttempts(2)}
		if idempotent {
			retry = append(retry, dbop.Idempotent())
		}
		_, err = op.With(dbop.WithRetry(dbop.Constant(0), retry...)).Run(t.Context())
		return runs, err
	}
	for _, idempotent := range []bool{false, true} {
		t.Run(fmt.Sprintf("idempotent=%t", idempotent), func(t *testing.T) {
			plainRuns, plain := run(idempotent)
			resolvedRuns, resolved := run(idempotent, sqldb.ResolveCommit())
			if !errors.Is(plain, pgx.ErrTxCommitRollback) || !errors.Is(plain, scopes.ErrAmbiguousCommit) {
				t.Fatalf("without ResolveCommit: %v; want an ambiguous commit of pgx.ErrTxCommitRollback", plain)
			}
			if !errors.Is(resolved, pgx.ErrTxCommitRollback) || !errors.Is(resolved, scopes.ErrAmbiguousCommit) {
				t.Errorf("with ResolveCommit: %v; want the error without it: %v", resolved, plain)
			}
			if v, want := dbop.VerdictOf(resolved), dbop.VerdictOf(plain); v != want || resolvedRuns != plainRuns {
				t.Errorf("with ResolveCommit: verdict %v after %d runs; want %v after %d, as without it", v, resolvedRuns, want, plainRuns)
			}
			var ace *scopes.AmbiguousCommitError
			if !errors.As(resolved, &ace) || !errors.Is(ace.Resolve, resolve.ErrFailedBeforeCommit) || !strings.Contains(resolved.Error(), "not returned by fn") {
				t.Errorf("with ResolveCommit: %v; want the reason to say that the transaction had failed before COMMIT", resolved)
			}
		})
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM "+tbl); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}
