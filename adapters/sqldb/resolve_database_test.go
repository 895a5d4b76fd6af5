package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
)

// tenantDBs creates two databases of the test's own, each migrated with
// the commit marker table (as a schema-per-tenant application migrates
// every tenant's database), dropped when t ends; a has a ledger.
func tenantDBs(t *testing.T) (a, b string) {
	t.Helper()
	admin := openMariaDB(t)
	a = fmt.Sprintf("dbop_tenant_a_%d", os.Getpid())
	b = fmt.Sprintf("dbop_tenant_b_%d", os.Getpid())
	for _, name := range []string{a, b} {
		mustExec(t, admin, "DROP DATABASE IF EXISTS `"+name+"`")
		mustExec(t, admin, "CREATE DATABASE `"+name+"`")
		t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`") })
		mustExec(t, admin, "USE `"+name+"`")
		if err := mysqldb.CreateCommitMarkers(t.Context(), admin); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, admin, "CREATE TABLE `"+a+"`.ledger (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(20)) ENGINE=InnoDB")
	return a, b
}

// The commit marker is written in the transaction connection's current
// database and read on another connection, whose current database need
// not be the same: the transaction ran USE (schema-per-tenant code), or
// the resolver's pooled connection was left in another database by an
// earlier USE. Not found in the resolver's table then proves nothing.
// Before, it was taken for a rollback on the transaction's own server: a
// committed transaction was reported aborted, run again without
// Idempotent, and applied twice. Now the marker names its database too, a
// resolution that cannot read it is unresolved, and the operation ends
// Ambiguous, applied once.
func TestResolveCommitMariaDBMarkerInAnotherDatabase(t *testing.T) {
	for _, c := range []struct {
		name string
		inTx func(ctx context.Context, tx *sql.Tx, a, b string) error
		// prep readies the pool before the transaction; release runs
		// just before its COMMIT.
		prep func(t *testing.T, db *sql.DB, b string) (release func())
	}{
		{
			name: "USE inside the transaction",
			inTx: func(ctx context.Context, tx *sql.Tx, a, b string) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO `"+a+"`.ledger (what) VALUES ('transfer')"); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "USE `"+b+"`") // the next tenant's work follows
				return err
			},
		},
		{
			name: "the resolver's pooled connection in another database",
			inTx: func(ctx context.Context, tx *sql.Tx, a, b string) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO `"+a+"`.ledger (what) VALUES ('transfer')")
				return err
			},
			prep: func(t *testing.T, db *sql.DB, b string) func() {
				// Earlier code ran USE on a pooled connection: busy while
				// the transaction begins, idle when the resolver asks.
				c, err := db.Conn(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, c, "USE `"+b+"`")
				return func() { c.Close() }
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := tenantDBs(t)
			direct := openMariaDB(t)
			p := faultproxy.Start(t, mysqlAddr(t))
			cfg, err := mysql.ParseDSN(testdb.MySQL(t))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DBName, cfg.Addr = a, p.Addr()
			db := openSQL(t, "mysql", cfg.FormatDSN())
			db.SetMaxIdleConns(4)
			release := func() {}
			if c.prep != nil {
				release = c.prep(t, db, b)
			}
			runs := 0
			op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				if err := c.inTx(ctx, tx, a, b); err != nil {
					return 0, err
				}
				if runs == 1 {
					p.CutAfter([]byte("COMMIT")) // the server commits; the answer is lost
					release()
				}
				return 42, nil
			}, sqldb.ResolveCommit())
			var res resolutions
			got, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).
				Run(scopes.OnCommitResolved(t.Context(), res.record))
			t.Logf("Run = %d, %v; resolutions %v; fn ran %d times; cuts %d", got, err, res.list(), runs, p.Cuts())
			if p.Cuts() != 1 {
				t.Fatalf("%d cuts, want 1: the fault never fired", p.Cuts())
			}
			if n := scalar[int](t, direct, "SELECT COUNT(*) FROM `"+a+"`.ledger"); n != 1 {
				t.Errorf("the ledger has %d rows, want 1", n)
			}
			if r := res.list(); len(r) != 1 || r[0] != scopes.Unresolved {
				t.Errorf("resolutions %v, want [unresolved]: the resolver's connection cannot read the marker's table", r)
			}
			if !errors.Is(err, scopes.ErrAmbiguousCommit) || runs != 1 {
				t.Errorf("Run = %d, %v after %d runs; want the ambiguous COMMIT, not run again", got, err, runs)
			}
		})
	}
}
