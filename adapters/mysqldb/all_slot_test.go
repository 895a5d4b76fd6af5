package mysqldb_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	_ "github.com/go-sql-driver/mysql"
)

// TestFailoverSlotWithAllSiblings: two transactions run side by side by a
// dbop.All inside one attempt of a retry with NodeSet.Failover. The second
// one's BeginTx settled the first's connection while the first still ran
// on it — SELECT @@in_transaction sent beside the first's statement broke
// it ("invalid connection", a node-level failure that also sent the next
// attempt away from a healthy node, every attempt alike) — or, when the
// first had not yet stored its connection, replaced it in the slot, and
// nobody gave it back (leaked for good).
func TestFailoverSlotWithAllSiblings(t *testing.T) {
	db := openMySQL(t)
	nodes := mysqldb.Nodes(db)
	step := func(sleep string) func(ctx context.Context, tx *sql.Tx) (int, error) {
		return func(ctx context.Context, tx *sql.Tx) (int, error) {
			var v int
			if err := tx.QueryRowContext(ctx, "SELECT SLEEP("+sleep+")").Scan(&v); err != nil {
				return 0, err
			}
			var open int
			err := tx.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&open)
			return open, err
		}
	}
	for _, tc := range []struct {
		name  string
		delay time.Duration // before the second sibling begins
	}{{"together", 0}, {"staggered", 50 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			a := sqldb.InTx(nodes, mysqldb.MariaDB, step("0.3"))
			b := sqldb.InTx(nodes, mysqldb.MariaDB, step("0.05"))
			later := dbop.Op[int](func(ctx context.Context) (int, error) {
				time.Sleep(tc.delay)
				return b(ctx)
			})
			op := dbop.All(0, a, later).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1), nodes.Failover()))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			vs, err := op.Run(ctx)
			if err != nil {
				t.Fatalf("All of two transactions on a healthy node under Failover: %v", err)
			}
			if vs[0] != 1 || vs[1] != 1 {
				t.Errorf("@@in_transaction inside each transaction = %v, want [1 1]", vs)
			}
			time.Sleep(100 * time.Millisecond)
			if st := db.Stats(); st.InUse != 0 {
				t.Errorf("%d connection(s) of the node's pool still in use after the operation returned", st.InUse)
			}
		})
	}
}
