package sqldb_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
)

// The pool's sessions run under READ UNCOMMITTED (the DSN sets it; a
// server default or a SET SESSION left on a pooled connection does the
// same), where a plain read sees the commit marker of a transaction still
// open. The transaction's COMMIT never reaches the server (a partition):
// its marker is there, uncommitted, when the resolution looks. The
// resolution must decide by the locking read, which waits for the
// transaction's end whatever the isolation level: the old connection is
// killed, the marker is gone, the COMMIT is resolved aborted and the work
// runs again, committed once. The test checks that the sessions do run
// under READ UNCOMMITTED and that the partition fired.
func TestResolveCommitMariaDBUnderReadUncommitted(t *testing.T) {
	dbName, direct := mariaDBResolveDB(t)
	mustExec(t, direct, "CREATE TABLE sqldb_items (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	mustExec(t, direct, "INSERT INTO sqldb_items VALUES (1, 0)")
	p := faultproxy.Start(t, mysqlAddr(t))
	cfg, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName, cfg.Addr = dbName, p.Addr()
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["tx_isolation"] = "'READ-UNCOMMITTED'"
	db := openSQL(t, "mysql", cfg.FormatDSN())
	if iso := scalar[string](t, db, "SELECT @@tx_isolation"); iso != "READ-UNCOMMITTED" {
		t.Fatalf("the pool's sessions run under %s, want READ-UNCOMMITTED", iso)
	}

	var runs int
	op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		runs++
		_, err := tx.ExecContext(ctx, "UPDATE sqldb_items SET n = n + 1 WHERE id = 1")
		if runs == 1 {
			p.PartitionBefore([]byte("COMMIT")) // COMMIT never reaches the server
		}
		return 42, err
	}, sqldb.ResolveCommit(), sqldb.Isolation(sql.LevelRepeatableRead))
	var res resolutions
	got, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(scopes.OnCommitResolved(t.Context(), res.record))
	n := scalar[int](t, direct, "SELECT n FROM sqldb_items WHERE id = 1")
	t.Logf("Run = %d, %v after %d runs; cuts %d; resolutions %v; n = %d", got, err, runs, p.Cuts(), res.list(), n)
	if p.Cuts() != 1 {
		t.Fatalf("cuts %d, want the partition before COMMIT once", p.Cuts())
	}
	if err != nil || got != 42 || runs != 2 || n != 1 || !slices.Equal(res.list(), []scopes.Resolution{scopes.Aborted}) {
		t.Errorf("Run = %d, %v after %d runs, resolutions %v, n = %d; want 42, nil after 2 runs, [aborted], n = 1",
			got, err, runs, res.list(), n)
	}
}
