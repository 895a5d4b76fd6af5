package mysqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/attempt"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/go-sql-driver/mysql"
)

// nodeCooldown is how long a NodeSet leaves a node alone after a
// node-level failure before it begins transactions there again.
const nodeCooldown = 5 * time.Second

// Nodes returns a [NodeSet] over the nodes of a multi-primary cluster — a
// MariaDB Galera cluster —, one *sql.DB per node, listed in order of
// preference. A NodeSet is a Beginner for sqldb.InTx and sqldb.Do: each
// attempt's transaction begins on the first node that has not failed in the
// last five seconds (the one whose failure is oldest, when all have), and
// the whole transaction runs there.
//
//	nodes := mysqldb.Nodes(db1, db2, db3)
//	transfer := sqldb.Do(nodes, mysqldb.MariaDB, fn)
//	err := transfer.With(
//		dbop.WithRetry(backoff, nodes.Failover()), // a node-level failure moves the next attempt
//		dbop.WithTimeout(2*time.Second),           // each attempt: a node that stalls is a failure
//	).Run(ctx)
//
// The dbs are the caller's: Nodes neither configures nor closes them. It
// panics if there are none or one is nil.
func Nodes(dbs ...*sql.DB) *NodeSet {
	if len(dbs) == 0 {
		panic("mysqldb: Nodes: no *sql.DB given")
	}
	for i, db := range dbs {
		if db == nil {
			panic(fmt.Sprintf("mysqldb: Nodes: node %d is a nil *sql.DB", i))
		}
	}
	return &NodeSet{
		dbs:   append([]*sql.DB(nil), dbs...),
		until: make([]atomic.Int64, len(dbs)),
		epoch: time.Now(),
		ids:   make([]string, len(dbs)),
	}
}

// A NodeSet begins transactions on one node of a cluster at a time and
// moves to another after a node-level failure: a connection refused or
// lost, Galera's 1047 (a node outside the primary component,
// docs/backends.md §7.5), or a node that did not answer before the
// attempt's deadline (a paused or partitioned node, §7.6). Other errors —
// a certification conflict (1213, §7.2), a lock wait timeout — say nothing
// about the node and leave the choice as it is.
//
// A node is left only where a transaction begins, never inside one: moving
// to another node means a new transaction. BeginTx passes over a node that
// refuses the connection or the BEGIN, before anything ran, as pgx does
// with the hosts of a multi-host connection string; a failure later in an
// attempt moves the next attempt, and deciding to run that attempt is the
// owner's retry's. So the safety invariants of github.com/dbop-go/dbop hold
// as they do on one server: a retry never runs again what a COMMIT may
// have applied, for instance, unless it is marked dbop.Idempotent. On
// Galera any node can serve any transaction.
//
// A NodeSet learns of a failure in two ways. An error from BeginTx or Conn
// (connection refused, 1047 answering BEGIN) marks the node at once. An
// error later in the attempt — a statement answered with 1047, a
// connection lost mid-transaction, a per-attempt [dbop.WithTimeout] that
// fired, during BEGIN too — reaches it only through [NodeSet.Failover],
// an option of the retry around the transaction, which watches how each
// attempt ended. Without it, the next attempt begins on the same node and
// fails there again, costing a whole attempt deadline for a node that
// stalls. Give each attempt a deadline ([dbop.WithTimeout]) or the DSN a
// readTimeout: a paused node accepts connections and never answers.
//
// The order of the dbs is a preference: a NodeSet shared by every worker
// sends all transactions to the first healthy node, which avoids
// certification conflicts between nodes altogether; workers with NodeSets
// listing the same dbs in different orders spread the load, and each moves
// on its own when its node fails. The attempts of a [dbop.HotSpot] are the
// exception: every NodeSet over the cluster, in every process, begins them
// on the same node, chosen by the HotSpot and the nodes' identities rather
// than the order of the dbs, so that the hot rows' writers meet where row
// locks order them (see NodeSet.BeginTx). A NodeSet is safe for concurrent
// use.
//
// Writers on several nodes must know one trap. Galera certifies the rows a
// transaction wrote, not the ones it read, and a row lock holds on one node
// only. On MariaDB 10.11 a transaction that holds row locks (after a write,
// or a SELECT … FOR UPDATE) and then runs a SELECT can be aborted by a
// write-set from another node while that SELECT runs, and nothing says so:
// the SELECT answers, the transaction is gone, and the statements after it
// run in autocommit mode, each committing on its own; COMMIT succeeds with
// nothing left to commit (docs/backends.md §7.3). No error reaches dbop, so
// no retry can help. Write such transactions as relative updates with no
// SELECT (SET cents = cents - ?), or read everything first with plain
// SELECTs and then write each row only if it is still as read — a
// compare-and-set whose miss returns a [dbop.RetryTransaction] error (see
// the examples, and docs/clusters.md for the measurements).
type NodeSet struct {
	dbs   []*sql.DB
	until []atomic.Int64 // per node: avoid it until epoch+until (ns); 0 = never failed
	epoch time.Time      // monotonic origin of until

	// ids holds each node's identity (host:port, as the node reports
	// it) once known, and byID the nodes sorted by it once every
	// identity is: the order hot spots route by (hotOrder).
	idMu sync.Mutex
	ids  []string
	byID atomic.Pointer[[]int]
}

// BeginTx begins a transaction on the node a NodeSet prefers now (see
// [NodeSet]). When that node fails before the transaction began — it
// refuses the connection, or answers BEGIN with 1047 — BeginTx marks it and
// tries the next, as pgx tries the hosts of a multi-host connection string,
// until one begins or every node has failed; then it returns their errors,
// joined. A context that ends stops it at once.
//
// An attempt that a [dbop.HotSpot] admitted while it limits begins on the
// HotSpot's node instead of the preferred one: the nodes sorted by the
// host name and port each reports (asked once per node, bounded by a
// second), rotated by a key of the HotSpot's that every process computes
// alike. Writers of hot rows on several Galera nodes fail each other at
// certification, and no lock orders them, since a row lock holds on one
// node (docs/backends.md §7.2, §7.12); on one node they queue on the row locks,
// and on the HotSpot's own lock (docs/contention.md). A node that failed
// lately is passed over as it is for any transaction.
//
// Under [NodeSet.Failover], BeginTx takes the connection for the
// transaction itself and keeps it until the attempt ends; then Failover
// gives it back to its pool, unless the attempt failed and the connection
// may still be in a transaction, which it closes instead (see
// [NodeSet.Failover]).
func (n *NodeSet) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	s, _ := ctx.Value(slotKey{n}).(*slot)
	if s == nil {
		return first(ctx, n, func(db *sql.DB) (*sql.Tx, error) { return db.BeginTx(ctx, opts) })
	}
	// A transaction begun earlier in this attempt whose context has ended
	// has ended too (one whose setup failed after BEGIN, a step of a Then
	// before this one): settle its connection first. One whose context has
	// not may still run — a sibling in a dbop.All — and keeps its
	// connection until it ends or the attempt does (see slot).
	s.settle(ctx, errors.New("mysqldb: a second BeginTx in one attempt"), true)
	return first(ctx, n, func(db *sql.DB) (*sql.Tx, error) {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		tx, err := conn.BeginTx(ctx, opts)
		if err != nil {
			_ = conn.Close() // START TRANSACTION refused: no transaction is open
			return nil, err
		}
		s.add(conn, ctx)
		return tx, nil
	})
}

// Conn returns a connection of the node a NodeSet prefers now, as
// [sql.DB.Conn] does, passing over nodes that refuse it as [NodeSet.BeginTx]
// does. sqldb.InTx pins one per attempt when the dialect sets session
// timeouts (sqldb.LockTimeout, sqldb.StatementTimeout on MySQL and
// MariaDB), and sqldb.ResolveCommit asks one where a COMMIT's answer was
// lost.
func (n *NodeSet) Conn(ctx context.Context) (*sql.Conn, error) {
	return first(ctx, n, func(db *sql.DB) (*sql.Conn, error) { return db.Conn(ctx) })
}

// first calls open on the preferred node and, after a node-level failure,
// on the next untried one, until one succeeds. Each node tried is recorded
// for Failover, so that an attempt that ends while a node keeps it waiting
// (its deadline fired) marks that node.
func first[T any](ctx context.Context, n *NodeSet, open func(*sql.DB) (T, error)) (T, error) {
	tried := make([]bool, len(n.dbs))
	s, _ := ctx.Value(slotKey{n}).(*slot)
	order := n.hotOrder(ctx)
	var errs []error
	for {
		i := n.pick(tried, order)
		if s != nil {
			s.node.Store(int32(i) + 1)
		}
		v, err := open(n.dbs[i])
		if err == nil {
			return v, nil
		}
		n.failed(i, err)
		tried[i] = true
		errs = append(errs, err)
		if !nodeFailure(err) || ctx.Err() != nil || !slices.Contains(tried, false) {
			if len(errs) == 1 {
				return v, err
			}
			return v, errors.Join(errs...)
		}
	}
}

// Failover is an option of the [dbop.WithRetry] around transactions begun
// on n: it watches each attempt, and when one ends with a node-level error
// it marks the node that attempt began on, so that the next attempt begins
// on another. It changes neither the attempt's error nor the retry's
// decision. It is an observer ([dbop.Observe]), so it sits in the retry
// whose attempts it watches and cannot be listed in the wrong place.
//
// It also guards the connection each attempt's transaction ran on. A
// Galera node outside the primary component answers COMMIT and ROLLBACK
// with 1047 without ending the transaction, and database/sql then returns
// the connection to its pool with the transaction still open: the next
// BEGIN on that connection commits it, long after the attempt was judged
// not committed and retried elsewhere (docs/backends.md §7.11). So when an
// attempt fails, Failover asks the connection SELECT @@in_transaction
// (answered even outside the primary component), bounded by a second, and
// closes the connection, rolling back whatever it held, unless the answer
// is 0; after a node-level failure it closes it without asking. An attempt
// that succeeded gives back to the pool the connection of a transaction
// whose COMMIT or ROLLBACK sqldb saw succeed, and asks the others as after
// a failure: a dbop.Fallback listed after the retry makes an attempt whose
// COMMIT failed a success. The connection is
// held until the attempt ends, so an attempt whose COMMIT answer is lost
// and resolved (sqldb.ResolveCommit) uses two connections at once: size
// the pools for it. Transactions that sqldb begins on a connection it pins
// itself (session timeouts such as sqldb.LockTimeout) are guarded by sqldb.
func (n *NodeSet) Failover() dbop.RetryOption {
	return dbop.Observe(failover{n})
}

// pick returns the node to begin on: the first untried one that has not
// failed lately, else the untried one whose failure is oldest. Nodes are
// taken in the order of preference, or in order when it is not nil.
func (n *NodeSet) pick(tried []bool, order []int) int {
	now := int64(time.Since(n.epoch))
	best, bestUntil := -1, int64(0)
	for j := range n.until {
		i := j
		if order != nil {
			i = order[j]
		}
		if tried[i] {
			continue
		}
		u := n.until[i].Load()
		if u <= now {
			return i
		}
		if best < 0 || u < bestUntil {
			best, bestUntil = i, u
		}
	}
	return best
}

// identityTimeout bounds the question that learns a node's identity, so
// that a node that accepts connections and never answers (a paused one)
// delays a hot spot's attempt by at most this, once per cooldown.
const identityTimeout = time.Second

// hotOrder returns the order in which the attempts of a dbop.HotSpot try
// the nodes, or nil when ctx is not such an attempt (hotlock.Spot). Every
// process that runs the same HotSpot over the same cluster computes the
// same order, whatever the order of its dbs: the nodes sorted by identity
// (the host name and port each reports, learnt once per node), rotated by
// the HotSpot's key. So the hot spot's writers of every process meet on one
// node, whose row locks order them and the HotSpot's lock among them,
// where writers on several nodes would fail each other at certification
// (docs/backends.md §7.2, §7.12). Different hot spots spread over the
// nodes. A node that failed
// lately is passed over as in any begin, and every process passes over it
// alike once it has seen it fail. A node whose identity is not known yet
// (it failed when asked) comes after the others.
func (n *NodeSet) hotOrder(ctx context.Context) []int {
	key, ok := hotlock.Spot(ctx)
	if !ok || len(n.dbs) == 1 {
		return nil
	}
	sorted := n.sortedByID(ctx)
	order := make([]int, 0, len(n.dbs))
	if m := len(sorted); m > 0 {
		r := int(uint64(key) % uint64(m))
		order = append(append(order, sorted[r:]...), sorted[:r]...)
	}
	for i := range n.dbs {
		if !slices.Contains(order, i) {
			order = append(order, i)
		}
	}
	return order
}

// sortedByID returns the nodes whose identity is known, sorted by it,
// asking the nodes not asked yet (and not failed lately) first.
func (n *NodeSet) sortedByID(ctx context.Context) []int {
	if p := n.byID.Load(); p != nil {
		return *p
	}
	n.idMu.Lock()
	defer n.idMu.Unlock()
	if p := n.byID.Load(); p != nil {
		return *p
	}
	now := int64(time.Since(n.epoch))
	var known []int
	for i, db := range n.dbs {
		if n.ids[i] == "" && n.until[i].Load() <= now {
			qctx, cancel := context.WithTimeout(ctx, identityTimeout)
			var host string
			var port int64
			err := db.QueryRowContext(qctx, "SELECT @@hostname, @@port").Scan(&host, &port)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				n.until[i].Store(int64(time.Since(n.epoch) + nodeCooldown))
				continue
			}
			n.ids[i] = host + ":" + strconv.FormatInt(port, 10)
		}
		if n.ids[i] != "" {
			known = append(known, i)
		}
	}
	slices.SortStableFunc(known, func(a, b int) int { return strings.Compare(n.ids[a], n.ids[b]) })
	if len(known) == len(n.dbs) {
		n.byID.Store(&known)
	}
	return known
}

// failed marks node i when err is a node-level failure.
func (n *NodeSet) failed(i int, err error) {
	if nodeFailure(err) {
		n.until[i].Store(int64(time.Since(n.epoch) + nodeCooldown))
	}
}

// nodeFailure reports whether err says that the node, rather than the
// transaction, failed, so that another node may serve the next attempt
// (docs/backends.md):
//
//	1047 WSREP not ready         the node is outside the primary component (§7.5)
//	1040 too many connections    the node refuses new sessions (§3.11)
//	1053 server shutdown         the node is stopping (§3.11)
//	connection refused, reset,   the node is down or was killed (§7.7, §4.3, §4.4)
//	lost (driver.ErrBadConn,
//	mysql.ErrInvalidConn, EOF),
//	any net.Error
//	context.DeadlineExceeded     the node did not answer within the attempt's
//	                             deadline, as a paused node does (§7.6)
//
// Anything else, a certification conflict (1213) included, is not. The
// judgement is about where to begin next, not about retrying: the verdict
// of err is the classifier's.
func nodeFailure(err error) bool {
	if err == nil {
		return false
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch me.Number {
		case 1047, 1040, 1053:
			return true
		}
		return false
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// slotKey is the context key of an attempt's slot; it names its NodeSet,
// so that two NodeSets in one pipeline keep their own.
type slotKey struct{ n *NodeSet }

// AttemptScoped marks the slot as the attempt's own (package attempt): a
// dbop.Flight's shared run, started in one caller's attempt, must not pin
// its connection into that attempt's slot.
func (slotKey) AttemptScoped() {}

var _ attempt.Scoped = slotKey{}

// slot records the node an attempt began on (its index + 1, 0 before
// BeginTx) and the connections of the transactions BeginTx began in the
// attempt, until each is settled. An attempt may run several transactions
// at once — the ops of a dbop.All, each through sqldb.InTx — so a BeginTx
// must not settle the connection of another transaction of the attempt
// that still runs: asking it SELECT @@in_transaction while the other's
// statement or result set is on it breaks that transaction (go-sql-driver
// answers "invalid connection"), and a connection replaced in the slot
// would never be given back. A transaction is known to have ended when
// the context it was begun with has: sqldb cancels it once COMMIT or
// ROLLBACK returned, and database/sql rolls the transaction back when it
// ends (docs/backends.md §10.3). The others are settled when the attempt
// ends, by which time an All has waited for all its ops.
//
// The attempt's outcome does not say how each of its transactions ended:
// a dbop.Fallback listed after the retry turns a failed attempt into a
// success, one whose COMMIT a Galera node answered with 1047, leaving the
// transaction open (docs/backends.md §7.11). So a connection goes back to
// the pool without a question only when sqldb said that its transaction's
// COMMIT or ROLLBACK succeeded (txmark.ErrEndedCleanly, the cause of that
// context); otherwise settling asks it SELECT @@in_transaction, as after a
// failed attempt.
type slot struct {
	node  atomic.Int32
	mu    sync.Mutex
	conns []slotConn
}

// slotConn is a connection a transaction of the attempt runs on, and the
// context that transaction was begun with.
type slotConn struct {
	conn *sql.Conn
	ctx  context.Context
}

// add records conn, whose transaction was begun with ctx.
func (s *slot) add(conn *sql.Conn, ctx context.Context) {
	s.mu.Lock()
	s.conns = append(s.conns, slotConn{conn, ctx})
	s.mu.Unlock()
}

// errNotClean is what settling a connection after an attempt that
// succeeded goes by when nothing said that the connection's transaction
// ended cleanly (see slot).
var errNotClean = errors.New("mysqldb: the attempt succeeded, but nothing said how its transaction on this connection ended")

// guardTimeout bounds the question that decides whether a failed attempt's
// connection may go back to its pool.
const guardTimeout = time.Second

// settle gives back the connections of the slot's transactions — only
// those whose transaction has ended when endedOnly is set, all of them
// otherwise (the attempt has ended) — to the pool after a success (err
// nil) or when the server says no transaction is open on them; otherwise
// it closes them, so that nothing the attempt left open can be committed
// later (see NodeSet.Failover).
func (s *slot) settle(ctx context.Context, err error, endedOnly bool) {
	s.mu.Lock()
	var done []slotConn
	kept := s.conns[:0]
	for _, c := range s.conns {
		if endedOnly && c.ctx.Err() == nil {
			kept = append(kept, c)
			continue
		}
		done = append(done, c)
	}
	clear(s.conns[len(kept):])
	s.conns = kept
	s.mu.Unlock()
	for _, c := range done {
		switch {
		case err != nil:
			settleConn(ctx, c.conn, err)
		case txmark.Clean(c.ctx):
			settleConn(ctx, c.conn, nil)
		default:
			settleConn(ctx, c.conn, errNotClean)
		}
	}
}

// settleConn gives back conn, whose transaction has ended, to the pool
// when err is nil or the server says no transaction is open on it, and
// closes it otherwise (see NodeSet.Failover).
func settleConn(ctx context.Context, conn *sql.Conn, err error) {
	if err == nil {
		_ = conn.Close()
		return
	}
	if !nodeFailure(err) {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), guardTimeout)
		var open int64
		qerr := conn.QueryRowContext(qctx, "SELECT @@in_transaction").Scan(&open)
		cancel()
		if qerr == nil && open == 0 {
			_ = conn.Close()
			return
		}
	}
	// Conn.Raw hands driver.ErrBadConn to database/sql, which closes the
	// driver connection instead of pooling it (docs/backends.md §10.6).
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// failover is the dbop.Observer of Failover.
type failover struct{ n *NodeSet }

func (failover) OperationStart(ctx context.Context, _ string) context.Context { return ctx }

func (f failover) AttemptStart(ctx context.Context, _ int) context.Context {
	return context.WithValue(ctx, slotKey(f), new(slot))
}

func (f failover) AttemptEnd(ctx context.Context, e dbop.AttemptEvent) {
	s, ok := ctx.Value(slotKey(f)).(*slot)
	if !ok {
		return
	}
	s.settle(ctx, e.Err, false)
	if e.Err == nil {
		return
	}
	if i := int(s.node.Load()) - 1; i >= 0 {
		f.n.failed(i, e.Err)
	}
}

func (failover) OperationEnd(context.Context, dbop.OperationEvent) {}
