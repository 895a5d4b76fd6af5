package gormdb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
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

// ownMySQLDatabase creates a database of the test's own, with the commit
// marker table, dropped when t ends, and returns its name.
func ownMySQLDatabase(t *testing.T) string {
	t.Helper()
	admin := liveMySQL(t, nil)
	name := fmt.Sprintf("gormdb_resolve_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	exec(t, admin, "CREATE DATABASE `"+name+"`")
	t.Cleanup(func() { _ = admin.Exec("DROP DATABASE IF EXISTS `" + name + "`").Error })
	exec(t, admin, "CREATE TABLE `"+name+"`.gormdb_items (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	exec(t, admin, "INSERT INTO `"+name+"`.gormdb_items VALUES (1, 0)")
	sqlDB, err := admin.DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "USE `"+name+"`"); err != nil {
		t.Fatal(err)
	}
	if err := mysqldb.CreateCommitMarkers(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	_, _ = conn.ExecContext(t.Context(), "USE `"+mustDBName(t)+"`")
	return name
}

func mustDBName(t *testing.T) string {
	mc, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	return mc.DBName
}

// The connection is cut right after COMMIT was forwarded (committed: fn's
// value), right before (aborted: retried, without Idempotent), or by a
// partition right before (the old session stays in its transaction until
// the resolver ends it; aborted). The row is updated exactly once.
func TestResolveCommit(t *testing.T) {
	cuts := []struct {
		name     string
		arm      func(p *faultproxy.Proxy, pattern []byte)
		want     scopes.Resolution
		wantRuns int
	}{
		{"cut after", (*faultproxy.Proxy).CutAfter, scopes.Committed, 1},
		{"cut before", (*faultproxy.Proxy).CutBefore, scopes.Aborted, 2},
		{"partition before", (*faultproxy.Proxy).PartitionBefore, scopes.Aborted, 2},
	}
	backends := []struct {
		name    string
		open    func(t *testing.T) (p *faultproxy.Proxy, db *gorm.DB, table string)
		commit  string // COMMIT as the driver sends it
		options []gormdb.TxOption
	}{
		{
			name: "postgres",
			open: func(t *testing.T) (*faultproxy.Proxy, *gorm.DB, string) {
				p, db := proxiedPostgres(t)
				table := fmt.Sprintf("gormdb_resolve_%d", os.Getpid())
				createTable(t, livePostgres(t, nil), table, "id int PRIMARY KEY, n int NOT NULL")
				exec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")
				return p, db, table
			},
			commit: "commit",
		},
		{
			name: "mariadb",
			open: func(t *testing.T) (*faultproxy.Proxy, *gorm.DB, string) {
				name := ownMySQLDatabase(t)
				mc, err := mysql.ParseDSN(testdb.MySQL(t))
				if err != nil {
					t.Fatal(err)
				}
				p := faultproxy.Start(t, mc.Addr)
				mc.Addr, mc.DBName, mc.TLSConfig = p.Addr(), name, ""
				mc.Logger = &mysql.NopLogger{}
				return p, openMySQL(t, mc, nil), "gormdb_items"
			},
			commit:  "COMMIT",
			options: []gormdb.TxOption{mariadb},
		},
	}
	for _, be := range backends {
		for _, c := range cuts {
			t.Run(be.name+"/"+c.name, func(t *testing.T) {
				p, db, table := be.open(t)
				var runs int
				op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					runs++
					err := tx.Exec("UPDATE " + table + " SET n = n + 1 WHERE id = 1").Error
					if runs == 1 {
						c.arm(p, []byte(be.commit))
					}
					return 42, err
				}, append(be.options, gormdb.ResolveCommit())...)
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
				var n int
				if err := db.Raw("SELECT n FROM " + table + " WHERE id = 1").Scan(&n).Error; err != nil || n != 1 {
					t.Errorf("n = %d, %v; want 1: applied exactly once", n, err)
				}
			})
		}
	}
}

// A per-attempt deadline shorter than a slow statement ends in the
// server's statement timeout (57014; MariaDB's 1969, through
// max_statement_time on a pinned connection), the one pooled connection
// survives, the session keeps its own settings, and the retry commits.
func TestDeadlineBecomesServerTimeout(t *testing.T) {
	backends := []struct {
		name            string
		open            func(t *testing.T) *gorm.DB
		opts            []gormdb.TxOption
		sleep, id, show string
		check           func(error) bool
	}{
		{
			name: "postgres", open: func(t *testing.T) *gorm.DB { return livePostgres(t, nil) },
			sleep: "SELECT pg_sleep(10)", id: "SELECT pg_backend_pid()", show: "SHOW statement_timeout",
			check: func(err error) bool {
				pe, ok := errors.AsType[*pgconn.PgError](err)
				return ok && pe.Code == "57014" && strings.Contains(pe.Message, "statement timeout")
			},
		},
		{
			name: "mariadb", open: func(t *testing.T) *gorm.DB { return liveMySQL(t, nil) }, opts: []gormdb.TxOption{mariadb},
			sleep: "SELECT SLEEP(10)", id: "SELECT CONNECTION_ID()", show: "SELECT @@SESSION.max_statement_time",
			check: func(err error) bool {
				me, ok := errors.AsType[*mysql.MySQLError](err)
				return ok && me.Number == 1969
			},
		},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t)
			sqlDB, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			sqlDB.SetMaxOpenConns(1)
			sqlDB.SetMaxIdleConns(1)
			table := fmt.Sprintf("gormdb_deadline_%d", os.Getpid())
			createTable(t, db, table, "id int PRIMARY KEY")
			scan := func(q string) (v string) {
				t.Helper()
				if err := db.Raw(q).Row().Scan(&v); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				return v
			}
			id0, show0 := scan(be.id), scan(be.show)

			var runs int
			var ids []string
			op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				runs++
				var id string
				if err := tx.Raw(be.id).Row().Scan(&id); err != nil {
					return 0, err
				}
				ids = append(ids, id)
				if runs == 1 {
					var x any
					return 0, tx.Raw(be.sleep).Row().Scan(&x)
				}
				return 1, tx.Exec("INSERT INTO " + table + " VALUES (1)").Error
			}, be.opts...)
			var retried []error
			_, err = op.With(
				dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) })),
				dbop.WithTimeout(time.Second), // the server's limit is 950ms: a 50ms margin
			).Run(t.Context())
			if err != nil {
				t.Fatalf("Run = %v; want the retry to commit", err)
			}
			if len(retried) != 1 || !be.check(retried[0]) {
				t.Fatalf("retried %v, want the server's statement timeout", retried)
			}
			if len(ids) != 2 || ids[0] != id0 || ids[1] != id0 || scan(be.id) != id0 {
				t.Errorf("connections %v, want every attempt on the pool's one connection %s", ids, id0)
			}
			if st := sqlDB.Stats(); st.OpenConnections != 1 {
				t.Errorf("pool %+v, want one connection open", st)
			}
			if s := scan(be.show); s != show0 {
				t.Errorf("session setting after the run = %q, want %q as before", s, show0)
			}
		})
	}
}

// fn swallows a statement's error (a unique violation) and returns nil: the
// transaction is aborted, and its COMMIT only rolls back (docs/backends.md
// §1.1, §1.2). ResolveCommit's read before COMMIT then fails with 25P02;
// that says nothing of the read or of the server's version, and the caller
// gets what it gets without the option: on the postgres dialector over
// pgx's driver, an ambiguous commit of pgx.ErrTxCommitRollback, which the
// dialect cannot tell from a lost answer (§11), retried only when
// Idempotent. With ResolveCommit it stays one, retried alike, its reason
// naming the failed transaction.
func TestResolveCommitKeepsTheErrorOfASwallowedStatement(t *testing.T) {
	db := livePostgres(t, nil)
	table := fmt.Sprintf("gormdb_resolve_swallowed_%d", os.Getpid())
	createTable(t, db, table, "id int PRIMARY KEY")
	exec(t, db, "INSERT INTO "+table+" VALUES (1)")
	run := func(idempotent bool, opts ...gormdb.TxOption) (runs int, err error) {
		op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
			runs++
			_ = tx.Exec("INSERT INTO " + table + " VALUES (1)").Error // 23505, swallowed
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
			resolvedRuns, resolved := run(idempotent, gormdb.ResolveCommit())
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
	var n int
	if err := db.Raw("SELECT count(*) FROM " + table).Scan(&n).Error; err != nil || n != 1 {
		t.Errorf("count: %d, %v; want 1 row", n, err)
	}
}
