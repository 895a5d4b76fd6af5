package mysqldb_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// TestNodesLeftOpenTransactionUnderAFallback: a Fallback listed after the
// retry (allowed: it applies to each attempt) turns an attempt whose COMMIT
// a Galera node answered with 1047 — the transaction still open on the
// connection (docs/backends.md §7.11) — into a success. Failover used to
// take the attempt's success for its transaction's and give the connection
// back to the pool as it was: the next BEGIN on it committed the work the
// caller had been told failed (it got the fallback's value instead). A
// connection now goes back unasked only when sqldb said its transaction's
// COMMIT or ROLLBACK succeeded.
func TestNodesLeftOpenTransactionUnderAFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, dbs, closeAll := newCluster(2)
		defer closeAll()
		dbs[0].SetMaxIdleConns(1)
		c.set(0, keepsTx(wsrep))
		nodes := mysqldb.Nodes(dbs...)
		fellBack := false
		op := sqldb.Do(nodes, mysqldb.MariaDB, update).With(
			dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), nodes.Failover()),
			dbop.Fallback(func(context.Context, error) (struct{}, error) {
				fellBack = true
				return struct{}{}, nil
			}),
		)
		if _, err := op.Run(t.Context()); err != nil || !fellBack {
			t.Fatalf("Run: %v, fell back %v; want the fallback's value", err, fellBack)
		}
		if log := c.Log(); !slices.Contains(log, "SELECT @@in_transaction node1") {
			t.Errorf("the connection whose COMMIT failed was not asked whether a transaction is still open on it: %v", log)
		}
		// Node 1 is back; after its cooldown the next transaction may
		// take the pooled connection.
		c.set(0, healthy)
		time.Sleep(6 * time.Second)
		if _, err := sqldb.Do(nodes, mysqldb.MariaDB, update).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if log := c.Log(); slices.Contains(log, "implicit COMMIT node1") {
			t.Errorf("the transaction the fallback stood for was committed by the next BEGIN on its pooled connection: %v", log)
		}
	})
}
