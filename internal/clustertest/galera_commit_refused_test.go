package clustertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
)

// TestGaleraCommitRefusedIsNotCommitted checks the server fact mysqldb's
// COMMIT rules rest on for Galera's 1180 (docs/backends.md §7.10): a
// COMMIT answered with 1180 ("Error while appending streaming replication
// fragment (provider status: Not connected to Primary Component)") by a
// node that lost the primary component did not commit, on that node or on
// any other. Many transactions commit on node 1 at once while it is
// stopped with SIGSTOP past the group's suspect timeout, several times;
// then every row whose COMMIT was refused with 1180 must be missing on
// every node, and every acknowledged row present. The fault must have
// fired: some COMMIT was answered with 1180. A long run.
func TestGaleraCommitRefusedIsNotCommitted(t *testing.T) {
	skipUnlessLong(t)
	script := testdb.ClusterScript(t)
	wholeAround(t, script, "galera")
	const committers, cycles = 32, 4
	g := openGalera(t, committers)
	if err := execAll(t.Context(), g.cfgs[0], "CREATE TABLE refused (k BIGINT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	suspect := suspectTimeout(t, g.dbs[0])

	type outcome struct {
		k   int64
		err error
	}
	var (
		next atomic.Int64
		mu   sync.Mutex
		outs []outcome
		wg   sync.WaitGroup
	)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	for range committers {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := next.Add(1)
				// No context on the transaction: go-sql-driver would close
				// the connection when it ends, and the COMMIT's answer is
				// what this test is about.
				tx, err := g.dbs[0].Begin()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if _, err := tx.Exec("INSERT INTO refused VALUES (?)", k); err != nil {
					_ = tx.Rollback()
					time.Sleep(50 * time.Millisecond)
					continue
				}
				err = tx.Commit()
				mu.Lock()
				outs = append(outs, outcome{k, err})
				mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	for c := range cycles {
		time.Sleep(2 * time.Second)
		if _, err := clusterScript(t.Context(), script, "node", "galera", "1", "pause"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(suspect + 3*time.Second)
		if _, err := clusterScript(t.Context(), script, "node", "galera", "1", "resume"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, fmt.Sprintf("node 1 back and synced after pause %d", c+1), func(ctx context.Context) error {
			return node1Rejoined(ctx, script)
		})
	}
	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()

	// Every node, once it has applied everything the cluster committed
	// (wsrep_sync_wait, §7.4).
	readers := make([]*sql.DB, len(g.cfgs))
	for i := range g.cfgs {
		readers[i] = syncedReader(t, g, i)
	}
	present := func(node int, k int64) bool {
		var n int
		if err := readers[node].QueryRowContext(t.Context(), "SELECT COUNT(*) FROM refused WHERE k = ?", k).Scan(&n); err != nil {
			t.Fatalf("node %d: %v", node+1, err)
		}
		return n > 0
	}
	refused, other := 0, map[string]int{}
	for _, o := range outs {
		if o.err == nil {
			for node := range readers {
				if !present(node, o.k) {
					t.Errorf("row %d: COMMIT acknowledged, missing on node %d", o.k, node+1)
				}
			}
			continue
		}
		me, ok := errors.AsType[*mysql.MySQLError](o.err)
		if !ok || me.Number != 1180 {
			other[o.err.Error()]++
			continue
		}
		refused++
		for node := range readers {
			if present(node, o.k) {
				t.Errorf("row %d: COMMIT answered %v, yet committed on node %d", o.k, o.err, node+1)
			}
		}
	}
	t.Logf("%d COMMITs on node 1 over %d pauses of %v; %d answered 1180, none of them committed anywhere; other errors: %v",
		len(outs), cycles, suspect+3*time.Second, refused, other)
	if refused == 0 {
		t.Fatalf("no COMMIT was answered with 1180: the fault did not fire (other errors: %v)", other)
	}
}
