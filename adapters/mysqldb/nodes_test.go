package mysqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/google/go-cmp/cmp"
)

// cluster is a fake cluster: one database/sql driver per node, which logs
// "BEGIN node2", "UPDATE node2", "COMMIT node2" … in one shared log and
// fails as a test tells each node to.
type cluster struct {
	mu    sync.Mutex
	log   []string
	nodes []*fakeNode
}

// fakeNode is one node's behaviour. Fields are read under cluster.mu.
type fakeNode struct {
	c        *cluster
	name     string
	host     string // what it answers to SELECT @@hostname; its name when empty
	refuse   bool   // Connect fails with "connection refused"
	stall    bool   // BEGIN and statements wait for the context to end
	beginErr error  // BEGIN fails with it
	stmtErr  error  // every statement but BEGIN, COMMIT and ROLLBACK fails with it
	endErr   error  // COMMIT and ROLLBACK fail with it, leaving the transaction open (Galera's 1047)
	closed   int    // driver connections closed
}

// newCluster opens n fake nodes, closed when the test (or synctest bubble)
// function returns through the cleanup it returns.
func newCluster(n int) (*cluster, []*sql.DB, func()) {
	c := &cluster{}
	var dbs []*sql.DB
	for i := range n {
		f := &fakeNode{c: c, name: "node" + string(rune('1'+i))}
		c.nodes = append(c.nodes, f)
		dbs = append(dbs, sql.OpenDB(f))
	}
	return c, dbs, func() {
		for _, db := range dbs {
			db.Close()
		}
	}
}

func (c *cluster) set(i int, f func(*fakeNode)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.nodes[i])
}

// Log returns the statements run so far, each with its node, and clears it.
func (c *cluster) Log() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log
	c.log = nil
	return l
}

// run logs stmt on node f and returns what the node does with it.
func (f *fakeNode) run(ctx context.Context, stmt string) error {
	f.c.mu.Lock()
	f.c.log = append(f.c.log, stmt+" "+f.name)
	stall, beginErr, stmtErr := f.stall, f.beginErr, f.stmtErr
	f.c.mu.Unlock()
	switch {
	case stall:
		<-ctx.Done()
		return ctx.Err()
	case stmt == "BEGIN":
		return beginErr
	case stmt == "COMMIT" || stmt == "ROLLBACK":
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		return f.endErr
	case stmt == "SELECT @@in_transaction":
		return nil
	}
	return stmtErr
}

func (f *fakeNode) Connect(context.Context) (driver.Conn, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.refuse {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	return &fakeNodeConn{f: f}, nil
}

func (f *fakeNode) Driver() driver.Driver { return fakeNodeDriver{} }

type fakeNodeDriver struct{}

func (fakeNodeDriver) Open(string) (driver.Conn, error) { return nil, errors.New("use the connector") }

// fakeNodeConn is one session. inTx is whether a transaction is open on
// it: after BEGIN, until a COMMIT or ROLLBACK that succeeded; a BEGIN while
// one is open commits it first, as MariaDB's START TRANSACTION does.
type fakeNodeConn struct {
	f    *fakeNode
	inTx bool
}

func (c *fakeNodeConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (c *fakeNodeConn) Begin() (driver.Tx, error)           { return nil, errors.New("use BeginTx") }

func (c *fakeNodeConn) Close() error {
	c.f.c.mu.Lock()
	defer c.f.c.mu.Unlock()
	c.f.closed++
	return nil
}

func (c *fakeNodeConn) BeginTx(ctx context.Context, _ driver.TxOptions) (driver.Tx, error) {
	if c.inTx {
		c.f.c.mu.Lock()
		c.f.c.log = append(c.f.c.log, "implicit COMMIT "+c.f.name)
		c.f.c.mu.Unlock()
	}
	if err := c.f.run(ctx, "BEGIN"); err != nil {
		return nil, err
	}
	c.inTx = true
	return fakeNodeTx{c}, nil
}

// QueryContext answers SELECT @@in_transaction, and SELECT @@hostname,
// @@port with the node's host and 3306.
func (c *fakeNodeConn) QueryContext(ctx context.Context, query string, _ []driver.NamedValue) (driver.Rows, error) {
	if query != "SELECT @@in_transaction" && query != identityQuery {
		return nil, errors.New("fake node: only SELECT @@in_transaction and " + identityQuery)
	}
	if err := c.f.run(ctx, query); err != nil {
		return nil, err
	}
	if query == identityQuery {
		c.f.c.mu.Lock()
		host := c.f.host
		if host == "" {
			host = c.f.name
		}
		c.f.c.mu.Unlock()
		return &oneRow{v: []driver.Value{host, int64(3306)}}, nil
	}
	v := int64(0)
	if c.inTx {
		v = 1
	}
	return &oneRow{v: []driver.Value{v}}, nil
}

const identityQuery = "SELECT @@hostname, @@port"

// oneRow is a result of one row.
type oneRow struct {
	v    []driver.Value
	done bool
}

func (r *oneRow) Columns() []string { return []string{"a", "b"}[:len(r.v)] }
func (r *oneRow) Close() error      { return nil }
func (r *oneRow) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	copy(dest, r.v)
	return nil
}

func (c *fakeNodeConn) ExecContext(ctx context.Context, query string, _ []driver.NamedValue) (driver.Result, error) {
	if err := c.f.run(ctx, query); err != nil {
		return nil, err
	}
	return driver.RowsAffected(1), nil
}

type fakeNodeTx struct{ c *fakeNodeConn }

func (t fakeNodeTx) Commit() error   { return t.end("COMMIT") }
func (t fakeNodeTx) Rollback() error { return t.end("ROLLBACK") }

func (t fakeNodeTx) end(stmt string) error {
	err := t.c.f.run(context.Background(), stmt)
	if err == nil {
		t.c.inTx = false
	}
	return err
}

// update is a transaction of one statement.
func update(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "UPDATE")
	return err
}

var (
	refused  = func(n *fakeNode) { n.refuse = true }
	healthy  = func(n *fakeNode) { *n = fakeNode{c: n.c, name: n.name, host: n.host} }
	stalls   = func(n *fakeNode) { n.stall = true }
	fails    = func(err error) func(*fakeNode) { return func(n *fakeNode) { n.stmtErr = err } }
	refuses  = func(err error) func(*fakeNode) { return func(n *fakeNode) { n.beginErr = err } }
	keepsTx  = func(err error) func(*fakeNode) { return func(n *fakeNode) { n.endErr = err } }
	wsrep    = dboptest.MySQLError(1047, "WSREP has not yet prepared node for application use")
	conflict = dboptest.MySQLError(1213, "Deadlock found when trying to get lock; try restarting transaction")
	// commitFailed is Galera's 1180 answering a COMMIT on a node that lost the primary component
	// (docs/backends.md §7.10): not a node-level error for NodeSet, and not retried.
	commitFailed = dboptest.MySQLError(1180, "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)")
)

// Each attempt begins on the first node that has not failed; a node-level
// failure moves the next attempt, at BEGIN, to another node, and the whole
// transaction runs there. Failures that are not the node's leave the choice
// alone.
func TestNodesFailover(t *testing.T) {
	tests := []struct {
		name     string
		fault    func(*fakeNode) // applied to node 1
		failover bool            // the retry carries nodes.Failover()
		want     []string
	}{
		{
			name: "healthy: the first node",
			want: []string{"BEGIN node1", "UPDATE node1", "COMMIT node1"},
		},
		{
			name:  "connection refused: passed over at BEGIN, even without Failover",
			fault: refused,
			want:  []string{"BEGIN node2", "UPDATE node2", "COMMIT node2"},
		},
		{
			name:  "1047 answering BEGIN: passed over, even without Failover",
			fault: refuses(wsrep),
			want:  []string{"BEGIN node1", "BEGIN node2", "UPDATE node2", "COMMIT node2"},
		},
		{
			name:     "1047 answering a statement: rolled back, the next attempt on node 2",
			fault:    fails(wsrep),
			failover: true,
			want:     []string{"BEGIN node1", "UPDATE node1", "ROLLBACK node1", "BEGIN node2", "UPDATE node2", "COMMIT node2"},
		},
		{
			name:  "1047 without Failover: the node is learned only at its next BEGIN",
			fault: fails(wsrep),
			want: []string{
				"BEGIN node1", "UPDATE node1", "ROLLBACK node1",
				"BEGIN node1", "UPDATE node1", "ROLLBACK node1",
				"BEGIN node1", "UPDATE node1", "ROLLBACK node1",
			},
		},
		{
			name:     "a certification conflict (1213) is not the node's: the next attempt stays",
			fault:    fails(conflict),
			failover: true,
			// After each failed attempt the guard asks whether the
			// connection is still in a transaction (it is not).
			want: []string{
				"BEGIN node1", "UPDATE node1", "ROLLBACK node1", "SELECT @@in_transaction node1",
				"BEGIN node1", "UPDATE node1", "ROLLBACK node1", "SELECT @@in_transaction node1",
				"BEGIN node1", "UPDATE node1", "ROLLBACK node1", "SELECT @@in_transaction node1",
			},
		},
		{
			name:     "a node that does not answer within the attempt's deadline",
			fault:    stalls,
			failover: true,
			want:     []string{"BEGIN node1", "BEGIN node2", "UPDATE node2", "COMMIT node2"},
		},
	}
	// Each case's first attempt: only a failure after BEGIN costs an
	// attempt.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, dbs, closeAll := newCluster(3)
				defer closeAll()
				if tt.fault != nil {
					c.set(0, tt.fault)
				}
				nodes := mysqldb.Nodes(dbs...)
				opts := []dbop.RetryOption{dbop.MaxAttempts(3)}
				if tt.failover {
					opts = append(opts, nodes.Failover())
				}
				_, _ = sqldb.Do(nodes, mysqldb.MariaDB, update).With(
					dbop.WithRetry(dbop.Constant(10*time.Millisecond), opts...),
					dbop.WithTimeout(time.Second),
				).Run(t.Context())
				if diff := cmp.Diff(tt.want, c.Log()); diff != "" {
					t.Errorf("statements (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// A Galera node outside the primary component answers COMMIT and ROLLBACK
// with 1047 and keeps the transaction open (docs/backends.md §7.11): under
// Failover the connection is closed, not pooled, so that the next BEGIN on
// it cannot commit what the attempt left; the retry runs elsewhere. Without
// Failover, database/sql pools the connection and the next BEGIN on it
// commits the leftover: the hazard the guard removes.
func TestNodesLeftOpenTransaction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*fakeNode)
		ask   bool // not a node-level error: the guard asks the connection first
	}{
		{"COMMIT refused with 1047", keepsTx(wsrep), false},
		{"statement and ROLLBACK refused with 1047", func(n *fakeNode) { fails(wsrep)(n); keepsTx(wsrep)(n) }, false},
		{"COMMIT refused with 1180", keepsTx(commitFailed), true},
	} {
		for _, failover := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, Failover %v", tc.name, failover), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c, dbs, closeAll := newCluster(2)
					defer closeAll()
					dbs[0].SetMaxIdleConns(1)
					c.set(0, tc.fault)
					nodes := mysqldb.Nodes(dbs...)
					opts := []dbop.RetryOption{dbop.MaxAttempts(2)}
					if failover {
						opts = append(opts, nodes.Failover())
					}
					op := sqldb.Do(nodes, mysqldb.MariaDB, update).With(dbop.WithRetry(dbop.Constant(0), opts...))
					_, err := op.Run(t.Context())
					if failover && !tc.ask && err != nil {
						t.Fatalf("the retry on node 2 failed: %v", err)
					}
					if asked := slices.Contains(c.Log(), "SELECT @@in_transaction node1"); failover && asked != tc.ask {
						t.Errorf("the guard asked the connection: %v, want %v", asked, tc.ask)
					}
					c.mu.Lock()
					closed := c.nodes[0].closed
					c.mu.Unlock()
					if failover && closed != 1 {
						t.Errorf("node 1's connections closed: %d, want 1 (the one left in a transaction)", closed)
					}
					// Node 1 is back; once its cooldown is over, the next
					// transaction begins there again.
					c.set(0, healthy)
					time.Sleep(6 * time.Second)
					c.Log()
					if _, err := sqldb.Do(nodes, mysqldb.MariaDB, update).Run(t.Context()); err != nil {
						t.Fatal(err)
					}
					log := c.Log()
					leftover := slices.Contains(log, "implicit COMMIT node1")
					if failover && leftover {
						t.Errorf("the failed attempt's transaction was committed by the next BEGIN on its connection: %v", log)
					}
					if !failover && !leftover {
						t.Errorf("without Failover the pooled connection should carry the open transaction (the fake no longer shows the hazard): %v", log)
					}
				})
			})
		}
	}
}

// A node that failed is left alone for five seconds, then tried again; a
// node that fails at BEGIN is passed over for the next in the same call;
// when every node has failed lately, the one whose failure is oldest is
// tried first.
func TestNodesCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, dbs, closeAll := newCluster(3)
		defer closeAll()
		nodes := mysqldb.Nodes(dbs...)
		type step struct {
			at    time.Duration // since the start
			fault map[int]func(*fakeNode)
			want  []string
		}
		steps := []step{
			{0, map[int]func(*fakeNode){0: refused}, []string{"BEGIN node2"}},                                     // node 1 avoided until 5 s
			{time.Second, map[int]func(*fakeNode){0: healthy}, []string{"BEGIN node2"}},                           // still cooling
			{5500 * time.Millisecond, nil, []string{"BEGIN node1"}},                                               // cooled
			{6 * time.Second, map[int]func(*fakeNode){0: refuses(wsrep)}, []string{"BEGIN node1", "BEGIN node2"}}, // node 1 until 11 s
			{7 * time.Second, map[int]func(*fakeNode){1: refuses(wsrep)}, []string{"BEGIN node2", "BEGIN node3"}}, // node 2 until 12 s
			// Node 3 fails too: every node failed lately, node 1's
			// failure is the oldest.
			{8 * time.Second, map[int]func(*fakeNode){0: healthy, 2: refuses(wsrep)}, []string{"BEGIN node3", "BEGIN node1"}},
			{9 * time.Second, map[int]func(*fakeNode){1: healthy, 2: healthy}, []string{"BEGIN node1"}},
			{12500 * time.Millisecond, nil, []string{"BEGIN node1"}},
		}
		start := time.Now()
		for i, st := range steps {
			time.Sleep(st.at - time.Since(start))
			for n, f := range st.fault {
				c.set(n, f)
			}
			tx, err := nodes.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatalf("step %d at %v: %v", i, st.at, err)
			}
			_ = tx.Rollback()
			got := slices.DeleteFunc(c.Log(), func(s string) bool { return strings.HasPrefix(s, "ROLLBACK") })
			if diff := cmp.Diff(st.want, got); diff != "" {
				t.Errorf("step %d at %v (-want +got):\n%s", i, st.at, diff)
			}
		}
	})
}

// When every node fails at BEGIN, BeginTx returns all their errors.
func TestNodesAllFail(t *testing.T) {
	c, dbs, closeAll := newCluster(3)
	defer closeAll()
	c.set(0, refused)
	c.set(1, refuses(wsrep))
	c.set(2, refused)
	_, err := mysqldb.Nodes(dbs...).BeginTx(t.Context(), nil)
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, wsrep) {
		t.Errorf("BeginTx: %v, want connection refused and 1047 joined", err)
	}
	if diff := cmp.Diff([]string{"BEGIN node2"}, c.Log()); diff != "" {
		t.Errorf("statements (-want +got):\n%s", diff)
	}
}

// Conn, which sqldb.InTx pins for session timeouts and sqldb.ResolveCommit
// asks, passes over a refusing node and marks it as BeginTx does.
func TestNodesConn(t *testing.T) {
	c, dbs, closeAll := newCluster(2)
	defer closeAll()
	c.set(0, refused)
	nodes := mysqldb.Nodes(dbs...)
	for range 2 {
		conn, err := nodes.Conn(t.Context())
		if err != nil {
			t.Fatalf("Conn: %v", err)
		}
		if _, err := conn.ExecContext(t.Context(), "UPDATE"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		c.set(0, healthy) // still cooling: the next Conn stays on node 2
	}
	if diff := cmp.Diff([]string{"UPDATE node2", "UPDATE node2"}, c.Log()); diff != "" {
		t.Errorf("statements (-want +got):\n%s", diff)
	}
}

// Two NodeSets over the same pools keep their own view: a worker's failure
// moves only its own attempts.
func TestNodesIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, dbs, closeAll := newCluster(2)
		defer closeAll()
		a, b := mysqldb.Nodes(dbs...), mysqldb.Nodes(dbs...)
		c.set(0, fails(wsrep))
		_, _ = sqldb.Do(a, mysqldb.MariaDB, update).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1), a.Failover())).Run(t.Context())
		c.set(0, healthy)
		c.Log()
		for _, n := range []*mysqldb.NodeSet{a, b} {
			if _, err := sqldb.Do(n, mysqldb.MariaDB, update).Run(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"BEGIN node2", "UPDATE node2", "COMMIT node2", "BEGIN node1", "UPDATE node1", "COMMIT node1"}
		if diff := cmp.Diff(want, c.Log()); diff != "" {
			t.Errorf("statements (-want +got):\n%s", diff)
		}
	})
}

func TestNodesPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"no node":  func() { mysqldb.Nodes() },
		"nil node": func() { mysqldb.Nodes(sql.OpenDB(&fakeNode{c: &cluster{}}), nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Nodes did not panic")
				}
			}()
			f()
		})
	}
}

// The attempts of a dbop.HotSpot (hotlock.Spot) begin on the node every
// NodeSet over the cluster chooses for the HotSpot's key, whatever the
// order of its dbs: the nodes sorted by the identity each reports, rotated
// by the key. A node that failed lately is passed over alike, and one that
// could not be asked its identity comes last until it can.
func TestNodesRouteAHotSpot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, dbs, closeAll := newCluster(3)
		defer closeAll()
		// Sorted by identity: node2 (db-a), node3 (db-b), node1 (db-c).
		for i, h := range []string{"db-c", "db-a", "db-b"} {
			c.set(i, func(f *fakeNode) { f.host = h })
		}
		a := mysqldb.Nodes(dbs[0], dbs[1], dbs[2])
		b := mysqldb.Nodes(dbs[2], dbs[0], dbs[1])
		begin := func(n *mysqldb.NodeSet, ctx context.Context) string {
			t.Helper()
			tx, err := n.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = tx.Rollback()
			var begun []string
			for _, s := range c.Log() {
				if strings.HasPrefix(s, "BEGIN ") {
					begun = append(begun, strings.TrimPrefix(s, "BEGIN "))
				}
			}
			return strings.Join(begun, ",")
		}
		if got := begin(a, t.Context()) + " " + begin(b, t.Context()); got != "node1 node3" {
			t.Errorf("outside a hot spot, the NodeSets began on %s, want each on its first node (node1 node3)", got)
		}
		for key, want := range map[int64]string{0: "node2", 1: "node3", 2: "node1", 3: "node2", -1: "node2"} {
			ctx := hotlock.WithSpot(t.Context(), key)
			if got := begin(a, ctx); got != want {
				t.Errorf("hot spot %d: NodeSet a began on %s, want %s", key, got, want)
			}
			if got := begin(b, ctx); got != want {
				t.Errorf("hot spot %d: NodeSet b began on %s, want %s", key, got, want)
			}
		}
		// A lock request carries its hot spot too.
		if got := begin(b, hotlock.With(t.Context(), &hotlock.Request{Key: 1})); got != "node3" {
			t.Errorf("a lock request for hot spot 1: began on %s, want node3", got)
		}
		// The hot spot's node refuses: both go on to the next in the
		// sorted order, not to their own preference.
		c.set(1, refuses(wsrep))
		ctx := hotlock.WithSpot(t.Context(), 0)
		if got := begin(a, ctx); got != "node2,node3" {
			t.Errorf("node2 refusing: NodeSet a tried %s, want node2,node3", got)
		}
		if got := begin(b, ctx); got != "node2,node3" {
			t.Errorf("node2 refusing: NodeSet b tried %s, want node2,node3", got)
		}
		if got := begin(a, ctx); got != "node3" {
			t.Errorf("node2 cooling: NodeSet a began on %s, want node3", got)
		}
		c.set(1, healthy)

		// Each node is asked its identity once per NodeSet.
		fresh := mysqldb.Nodes(dbs...)
		c.set(2, fails(wsrep))
		ctx = hotlock.WithSpot(t.Context(), 1)
		tx, err := fresh.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()
		log := c.Log()
		if n := countPrefix(log, identityQuery); n != 3 {
			t.Errorf("asked %d nodes their identity, want 3 (node3 fails to answer): %q", n, log)
		}
		// Known: node2 (db-a), node1 (db-c); key 1 picks node1, node3 last.
		if got := slices.DeleteFunc(log, func(s string) bool { return !strings.HasPrefix(s, "BEGIN") }); !slices.Equal(got, []string{"BEGIN node1"}) {
			t.Errorf("with node3 unknown, hot spot 1 began: %q, want node1", got)
		}
		c.set(2, healthy)
		time.Sleep(6 * time.Second) // node3's cooldown ends
		if got := begin(fresh, ctx); got != "node3" {
			t.Errorf("node3 known again: hot spot 1 began on %s, want node3", got)
		}
		for range 3 {
			begin(fresh, ctx)
		}
		tx, err = fresh.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()
		if n := countPrefix(c.Log(), identityQuery); n != 0 {
			t.Errorf("asked %d more identities once every node was known", n)
		}
	})
}

func countPrefix(log []string, prefix string) int {
	n := 0
	for _, s := range log {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
