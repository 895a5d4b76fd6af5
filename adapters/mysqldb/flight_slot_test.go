package mysqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	_ "github.com/go-sql-driver/mysql"
)

// TestSharedRunDoesNotUseTheStartersFailoverSlot: a read shared by a
// Flight inside a retry with NodeSet.Failover (the order the repo's own
// tests use: WithRetry, WithTimeout, Share). The shared run starts from
// the starting caller's attempt context; were the Failover slot of that
// attempt among its values, the run's BeginTx would store its pinned
// *sql.Conn in it after the starter, gone before, had settled the slot at
// AttemptEnd: nobody would close the connection, checked out of the pool
// for ever (and the store races the starter's settle). The slot is the
// attempt's own (package attempt), and the run does not see it.
func TestSharedRunDoesNotUseTheStartersFailoverSlot(t *testing.T) {
	db := openMySQL(t)
	nodes := mysqldb.Nodes(db)
	var flight dbop.Flight

	read := dbop.Op[int](func(ctx context.Context) (int, error) {
		// e.g. a Bulkhead or rate limiter inside the shared run: the
		// transaction begins after the starter has left.
		time.Sleep(300 * time.Millisecond)
		return sqldb.InTx(nodes, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			var v int
			err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&v)
			return v, err
		}).Run(ctx)
	})
	op := read.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), nodes.Failover()), flight.Share("k"))

	actx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	aDone := make(chan error, 1)
	go func() { _, err := op.Run(actx); aDone <- err }()
	time.Sleep(20 * time.Millisecond)
	v, err := op.Run(t.Context()) // B joins A's run
	if err != nil || v != 1 {
		t.Fatalf("B: %v, %v", v, err)
	}
	if err := <-aDone; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("A, which gives up before the shared run begins its transaction: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if st := db.Stats(); st.InUse != 0 {
		t.Errorf("after both callers returned, %d connection(s) of the node's pool are still in use: the shared run pinned one in the starting caller's Failover slot, which had already been settled (leaked for good)", st.InUse)
	}
}
