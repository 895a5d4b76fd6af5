package sqldb_test

// Live on MariaDB: OrDefault around
// sqldb.InTx whose Then of savepoint steps fails with a duplicate key
// (1062) after the first step's savepoint was released. The transaction
// rolls back; nothing took effect; the default should be returned.

import (
	"context"
	"database/sql"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

func TestOrDefaultAroundARolledBackInTxOfReleasedStepsMariaDB(t *testing.T) {
	db := openMariaDB(t)
	tbl := table(t, db, "sqldb_frame_rows", "(name varchar(10) primary key)")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES ('dup')")
	v, err := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		ins := func(name string) dbop.Op[int] {
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				_, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (?)", name)
				return 1, err
			}).With(sqldb.InSavepoint(tx, mysqldb.MariaDB))
		}
		return dbop.Then(ins("A"), func(ctx context.Context, _ int) (int, error) { return ins("dup").Run(ctx) }).Run(ctx)
	}).With(dbop.OrDefault(-1)).Run(t.Context())
	if n := scalar[int](t, db, "SELECT count(*) FROM "+tbl); n != 1 {
		t.Fatalf("%d rows, want 1 (rolled back)", n)
	}
	if err != nil || v != -1 {
		t.Errorf("Run: %d, %v; want the default -1: the transaction rolled back, nothing took effect", v, err)
	}
}
