package clustertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
)

const (
	// attemptTimeout bounds each attempt of the fault runs' transfers: a
	// node that does not answer within it is left for another.
	attemptTimeout = 2 * time.Second
	// maxElapsed bounds a transfer's retries: long enough to outlast every
	// fault of the suite; maxAttempts is high enough that it is maxElapsed
	// that ends them (hot accounts written from three nodes conflict often).
	maxElapsed  = 40 * time.Second
	maxAttempts = 1000
)

// backoff is the wait between a transfer's attempts.
var backoff = dbop.FullJitter(dbop.Exponential(5*time.Millisecond, 250*time.Millisecond))

// createGaleraBank creates the bank's tables in the test's database, with
// every balance at zero, and waits until every node has them.
func createGaleraBank(t *testing.T, g *galera, accounts int) {
	t.Helper()
	stmts := []string{
		"CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL, version BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB",
		"CREATE TABLE ledger (k VARCHAR(64) PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB",
	}
	var values []string
	for id := range accounts {
		values = append(values, fmt.Sprintf("(%d, 0)", id))
	}
	stmts = append(stmts, "INSERT INTO accounts (id, balance) VALUES "+strings.Join(values, ", "))
	if err := execAll(t.Context(), g.cfgs[0], stmts...); err != nil {
		t.Fatal(err)
	}
	for i := range g.dbs {
		waitFor(t, 30*time.Second, fmt.Sprintf("galera node %d has the accounts", i+1), func(ctx context.Context) error {
			// wsrep_sync_wait: the node has applied everything committed
			// before, this run's CREATE and INSERT included (§7.4).
			var n, sum, ledger int64
			if err := g.dbs[i].QueryRowContext(ctx, "SET STATEMENT wsrep_sync_wait = 1 FOR "+
				"SELECT COUNT(*), COALESCE(SUM(ABS(balance)), 0), (SELECT COUNT(*) FROM ledger) FROM accounts").Scan(&n, &sum, &ledger); err != nil {
				return err
			}
			if n != int64(accounts) || sum != 0 || ledger != 0 {
				return fmt.Errorf("%d accounts, sum of |balance| %d, %d ledger rows; want %d, 0, 0", n, sum, ledger, accounts)
			}
			return nil
		})
	}
}

// relativeTransfer is the bank's transfer on MariaDB: the ledger row, then
// two relative updates, nothing but DML. With idempotent, INSERT IGNORE
// writes the ledger row or finds it, and only the call that wrote it
// updates the balances, so a retry after an ambiguous COMMIT is safe.
func relativeTransfer(tr transfer, idempotent bool) func(ctx context.Context, tx *sql.Tx) error {
	insert := "INSERT INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)"
	if idempotent {
		insert = "INSERT IGNORE INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)"
	}
	// Statement errors are wrapped with the statement, so that the logs
	// tell them from BEGIN's and COMMIT's.
	return func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, insert, tr.key, tr.src, tr.dst, tr.amount)
		if err != nil {
			return fmt.Errorf("insert the ledger row: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // n == 0: applied by an earlier attempt
		}
		for _, u := range tr.legs() {
			res, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ? WHERE id = ?", u.delta, u.id)
			if err != nil {
				return fmt.Errorf("update account %d: %w", u.id, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return dbop.Classify(fmt.Errorf("account %d: updated %d rows (%v)", u.id, n, err), dbop.NotRetryable)
			}
		}
		return nil
	}
}

// galeraWorkers returns the fault runs' transfer: worker w prefers node
// w mod 3, through a NodeSet of its own, whose Failover moves its next
// attempt after a node-level failure; each attempt is bounded by
// attemptTimeout. An idempotent worker's retry is dbop.Idempotent (its
// INSERT IGNORE finds the row of an attempt that did commit); the others
// find out what became of a COMMIT whose answer was lost with
// sqldb.ResolveCommit, and report what stays unknown.
func galeraWorkers(t *testing.T, g *galera, workers int, idempotent func(int) bool, st *retryStats) transferFunc {
	if err := mysqldb.CreateCommitMarkers(t.Context(), g.dbs[0]); err != nil {
		t.Fatal(err)
	}
	sets := make([]*mysqldb.NodeSet, workers)
	for w := range sets {
		sets[w] = mysqldb.Nodes(rotate(g.dbs, w)...)
	}
	return func(ctx context.Context, w int, tr transfer) error {
		nodes := sets[w]
		opts := []dbop.RetryOption{dbop.MaxAttempts(maxAttempts), dbop.MaxElapsed(maxElapsed), nodes.Failover(), dbop.OnRetry(st.onRetry)}
		var txOpts []sqldb.TxOption
		if idempotent(w) {
			opts = append(opts, dbop.Idempotent())
		} else {
			txOpts = append(txOpts, sqldb.ResolveCommit())
		}
		_, err := sqldb.Do(nodes, mysqldb.MariaDB, relativeTransfer(tr, idempotent(w)), txOpts...).With(
			dbop.WithRetry(backoff, opts...),
			dbop.WithTimeout(attemptTimeout),
		).Run(scopes.OnCommitResolved(ctx, st.onResolved))
		return err
	}
}

// syncedReader opens a pool on node i whose every read first waits until
// the node has applied everything the cluster committed (wsrep_sync_wait,
// docs/backends.md §7.4), closed when t ends.
func syncedReader(t *testing.T, g *galera, i int) *sql.DB {
	t.Helper()
	cfg := g.cfgs[i].Clone()
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["wsrep_sync_wait"] = "1"
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// readGalera reads the bank's final state on node i, on a connection of its
// own that first waits until the node has applied everything the cluster
// committed.
func readGalera(t *testing.T, g *galera, i, accounts int) state {
	t.Helper()
	db := syncedReader(t, g, i)
	st := state{ledger: map[string]ledgerRow{}, balances: make([]int64, accounts)}
	read := func(ctx context.Context) error {
		clear(st.ledger)
		rows, err := db.QueryContext(ctx, "SELECT k, src, dst, amount FROM ledger")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var r ledgerRow
			if err := rows.Scan(&k, &r.src, &r.dst, &r.amount); err != nil {
				return err
			}
			st.ledger[k] = r
		}
		if err := rows.Err(); err != nil {
			return err
		}
		brows, err := db.QueryContext(ctx, "SELECT id, balance FROM accounts")
		if err != nil {
			return err
		}
		defer brows.Close()
		for brows.Next() {
			var id int
			var b int64
			if err := brows.Scan(&id, &b); err != nil {
				return err
			}
			st.balances[id] = b
		}
		return brows.Err()
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("galera node %d answers", i+1), read)
	return st
}

// verifyGalera checks the bank on every node, and that the nodes agree.
func verifyGalera(t *testing.T, name string, g *galera, accounts int, outcomes []outcome, rs *retryStats) tally {
	t.Helper()
	first := readGalera(t, g, 0, accounts)
	for i := 1; i < len(g.dbs); i++ {
		st := readGalera(t, g, i, accounts)
		if len(st.ledger) != len(first.ledger) || fmt.Sprint(st.balances) != fmt.Sprint(first.balances) {
			t.Errorf("%s: node %d has %d ledger rows and balances %v; node 1 has %d and %v",
				name, i+1, len(st.ledger), st.balances, len(first.ledger), first.balances)
		}
	}
	return verifyBank(t, name, outcomes, first, rs)
}

// TestGaleraHotSpotOnOneNode checks that the attempts a dbop.HotSpot admits
// begin on one node through every NodeSet, whatever the order of its
// nodes, while other transactions begin on each NodeSet's first node
// (mysqldb.NodeSet.BeginTx): the nodes' identities it sorts by are those
// the live servers report.
func TestGaleraHotSpotOnOneNode(t *testing.T) {
	g := openGalera(t, 2)
	hot := dbop.HotSpot()
	port := func(n *mysqldb.NodeSet, ds ...dbop.Decorator) int64 {
		t.Helper()
		var p int64
		op := sqldb.Do(n, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, "SELECT @@port").Scan(&p)
		})
		if _, err := op.With(append([]dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))}, ds...)...).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := mysqldb.Nodes(g.dbs[0], g.dbs[1], g.dbs[2])
	b := mysqldb.Nodes(g.dbs[2], g.dbs[1], g.dbs[0])
	if pa, pb := port(a), port(b); pa == pb {
		t.Fatalf("without a HotSpot both NodeSets began on port %d; each should begin on its first node", pa)
	}
	for range 5 {
		if pa, pb := port(a, hot), port(b, hot); pa != pb {
			t.Errorf("a HotSpot's attempts began on port %d through one NodeSet and %d through the other", pa, pb)
		}
	}
}

// TestGaleraSmoke checks that every node is synced in one primary
// component, and that a certification conflict — answered on COMMIT or on
// the next statement (docs/backends.md §7.2) — is classified
// RetryTransaction, judged not committed, and retried whole, through a
// NodeSet, exactly once in effect.
func TestGaleraSmoke(t *testing.T) {
	g := openGalera(t, 4)
	for i, db := range g.dbs {
		status := map[string]string{}
		rows, err := db.QueryContext(t.Context(), "SHOW STATUS WHERE Variable_name IN ('wsrep_local_state_comment', 'wsrep_cluster_status', 'wsrep_cluster_size', 'wsrep_ready')")
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			status[k] = v
		}
		rows.Close()
		want := map[string]string{
			"wsrep_local_state_comment": "Synced",
			"wsrep_cluster_status":      "Primary",
			"wsrep_cluster_size":        strconv.Itoa(len(g.dbs)),
			"wsrep_ready":               "ON",
		}
		if fmt.Sprint(status) != fmt.Sprint(want) {
			t.Fatalf("node %d: %v, want %v", i+1, status, want)
		}
	}
	if err := execAll(t.Context(), g.cfgs[0],
		"CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
		"INSERT INTO counters VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		// next runs after the other node's write committed; nil: COMMIT.
		next func(ctx context.Context, tx *sql.Tx) error
	}{
		{name: "answered on COMMIT"},
		{name: "answered on the next statement", next: func(ctx context.Context, tx *sql.Tx) error {
			// Let node 2's applier reach the row this transaction holds
			// and abort the transaction (a brute-force abort).
			time.Sleep(300 * time.Millisecond)
			_, err := tx.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = 2")
			return err
		}},
	} {
		t.Run("certification conflict "+tc.name, func(t *testing.T) {
			read := func() (n1, n2 int64) {
				t.Helper()
				// wsrep_sync_wait: node 1 has applied node 2's commit (§7.4).
				if err := g.dbs[0].QueryRowContext(t.Context(), "SET STATEMENT wsrep_sync_wait = 1 FOR "+
					"SELECT (SELECT n FROM counters WHERE id = 1), (SELECT n FROM counters WHERE id = 2)").Scan(&n1, &n2); err != nil {
					t.Fatal(err)
				}
				return n1, n2
			}
			before1, before2 := read()
			// Node 2 has applied the rows too: the table and its rows were
			// written on node 1 just before, and an UPDATE on node 2 that
			// found no row would write nothing, and so meet no conflict (a
			// CI run: committed at once, never retried).
			var rows int
			if err := g.dbs[1].QueryRowContext(t.Context(), "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT COUNT(*) FROM counters").Scan(&rows); err != nil || rows != 2 {
				t.Fatalf("node 2 sees %d rows (%v), want 2", rows, err)
			}
			// The transaction runs on node 2; another writer commits
			// the same row on node 1 while it is open.
			nodes := mysqldb.Nodes(g.dbs[1], g.dbs[0])
			var attempts atomic.Int32
			var retried []error
			_, err := sqldb.Do(nodes, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = 1")
				if err != nil {
					return err
				}
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					return fmt.Errorf("the UPDATE changed %d rows (%v), want 1", n, err)
				}
				if attempts.Add(1) > 1 {
					return nil
				}
				if _, err := g.dbs[0].ExecContext(ctx, "UPDATE counters SET n = n + 10 WHERE id = 1"); err != nil {
					return fmt.Errorf("the other writer: %w", err)
				}
				if tc.next != nil {
					return tc.next(ctx, tx)
				}
				return nil
			}).With(dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(3), nodes.Failover(),
				dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) }))).Run(t.Context())
			if err != nil {
				t.Fatalf("the transaction failed: %v", err)
			}
			if len(retried) != 1 {
				t.Fatalf("retried %d times (%v), want once", len(retried), retried)
			}
			me, ok := errors.AsType[*mysql.MySQLError](retried[0])
			if !ok || me.Number != 1213 {
				t.Fatalf("the first attempt failed with %v, want 1213", retried[0])
			}
			if errors.Is(retried[0], scopes.ErrAmbiguousCommit) || dbop.VerdictOf(retried[0]) != dbop.RetryTransaction {
				t.Errorf("the 1213 was judged %v (ambiguous: %v), want a not-committed retry-transaction",
					dbop.VerdictOf(retried[0]), errors.Is(retried[0], scopes.ErrAmbiguousCommit))
			}
			n1, n2 := read()
			if n1-before1 != 11 || n2 != before2 {
				t.Errorf("counters moved by %d and %d, want 11 (the other writer's 10, this transaction's 1, once) and 0", n1-before1, n2-before2)
			}
		})
	}
}

// trapTransfer is a transfer written in one of the ways the trap test
// compares.
type trapTransfer func(tr transfer) func(ctx context.Context, tx *sql.Tx) error

// readThenWrite reads each balance with SELECT … FOR UPDATE and writes the
// new value back: correct on one server, where the row lock holds until
// COMMIT.
func readThenWrite(tr transfer) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)", tr.key, tr.src, tr.dst, tr.amount); err != nil {
			return err
		}
		for _, u := range [2]struct {
			id    int
			delta int64
		}{{tr.src, -tr.amount}, {tr.dst, tr.amount}} {
			var balance int64
			if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE id = ? FOR UPDATE", u.id).Scan(&balance); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = ? WHERE id = ?", balance+u.delta, u.id); err != nil {
				return err
			}
		}
		return nil
	}
}

// errStale says a compare-and-set found the row changed since it was read.
var errStale = errors.New("the row changed since it was read")

// compareAndSet reads both balances first, with plain SELECTs, before any
// write, and then writes each only if its version is still the one read;
// a row that changed meanwhile makes the attempt fail with a
// RetryTransaction verdict, so the retry reads again.
func compareAndSet(tr transfer) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		ids := [2]int{tr.src, tr.dst}
		deltas := [2]int64{-tr.amount, tr.amount}
		var balance, version [2]int64
		for i, id := range ids {
			if err := tx.QueryRowContext(ctx, "SELECT balance, version FROM accounts WHERE id = ?", id).Scan(&balance[i], &version[i]); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)", tr.key, tr.src, tr.dst, tr.amount); err != nil {
			return err
		}
		for i, id := range ids {
			res, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = ?, version = version + 1 WHERE id = ? AND version = ?",
				balance[i]+deltas[i], id, version[i])
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n != 1 {
				return dbop.Classify(fmt.Errorf("account %d: %w", id, errStale), dbop.RetryTransaction)
			}
		}
		return nil
	}
}

// relative is relativeTransfer, not idempotent.
func relative(tr transfer) func(ctx context.Context, tx *sql.Tx) error {
	return relativeTransfer(tr, false)
}

// TestGaleraLostUpdateTrap reproduces the trap of docs/clusters.md: on
// Galera, transfers that read a balance with SELECT … FOR UPDATE and write
// the new value back break the bank's invariants once writers use
// different nodes, while the same code on one node, relative updates, and
// a compare-and-set that reads before it writes keep them.
//
// The cause, measured here: a transaction holding row locks is aborted by
// a replicated write-set (a brute-force abort) while it runs a SELECT; the
// SELECT answers normally, nothing reports the 1213, the transaction is
// gone, and the statements after it run in autocommit mode and commit one
// by one (docs/backends.md §7.3).
func TestGaleraLostUpdateTrap(t *testing.T) {
	const workers, accounts = 12, 4
	g := openGalera(t, workers)
	run := func(t *testing.T, name string, fn trapTransfer, dbs []*sql.DB, d time.Duration) []string {
		t.Helper()
		if err := execAll(t.Context(), g.cfgs[0], "DROP TABLE IF EXISTS accounts, ledger"); err != nil {
			t.Fatal(err)
		}
		createGaleraBank(t, g, accounts)
		st := newRetryStats()
		res := bankRun{
			name: name, workers: workers, accounts: accounts,
			idempotent: func(int) bool { return false },
			transfer: func(ctx context.Context, w int, tr transfer) error {
				_, err := sqldb.Do(dbs[w%len(dbs)], mysqldb.MariaDB, fn(tr)).With(
					dbop.WithRetry(backoff, dbop.MaxAttempts(100), dbop.OnRetry(st.onRetry)),
				).Run(ctx)
				return err
			},
			before: d,
			fault:  func(context.Context, *marks) error { return nil },
			stats:  st,
		}.run(t)
		tl, violations := check(res.outcomes, readGalera(t, g, 0, accounts))
		t.Logf("%s: %d transfers acknowledged in %v, %d failed, %d retries (%s); %d invariant violations",
			name, tl.acked, d, tl.failed, st.retries, faultgen.Counts(st.causes), len(violations))
		for i, v := range violations {
			if i == 5 {
				t.Logf("%s: … %d more", name, len(violations)-i)
				break
			}
			t.Logf("%s: %s", name, v)
		}
		return violations
	}

	t.Run("read then write, writers on three nodes: updates lost", func(t *testing.T) {
		// The trap shows in the first round of 2 s most often, and has
		// taken more than five (a CI run on 2026-12-05, the cluster on the
		// 2 cores beside the other servers): up to 15 rounds, so that the
		// test fails only when the trap is gone, not when it is rare.
		for round := 1; ; round++ {
			if v := run(t, "read then write, three nodes", readThenWrite, g.dbs, 2*time.Second); len(v) > 0 {
				t.Logf("the trap showed in round %d", round)
				return
			}
			if round == 15 {
				t.Fatalf("in %d rounds of 2 s the trap did not show: docs/clusters.md and docs/backends.md §7.3 need a new measurement", round)
			}
		}
	})
	for _, tc := range []struct {
		name string
		fn   trapTransfer
		dbs  []*sql.DB
	}{
		{"read then write, one node", readThenWrite, g.dbs[:1]},
		{"relative updates, three nodes", relative, g.dbs},
		{"compare-and-set after reads, three nodes", compareAndSet, g.dbs},
	} {
		t.Run(tc.name+": invariants hold", func(t *testing.T) {
			if v := run(t, tc.name, tc.fn, tc.dbs, 3*time.Second); len(v) > 0 {
				t.Errorf("%s: %d invariant violations, the first: %s", tc.name, len(v), v[0])
			}
		})
	}
}

// galeraFaultRun runs the bank on the cluster while fault runs, then
// verifies it on every node and reports its goodput.
func galeraFaultRun(t *testing.T, name string, warmup, before, after time.Duration, f fault) {
	t.Helper()
	const workers, accounts = 9, 8
	g := openGalera(t, workers)
	createGaleraBank(t, g, accounts)
	st := newRetryStats()
	idempotent := func(w int) bool { return w%2 == 1 }
	res := bankRun{
		name: name, workers: workers, accounts: accounts,
		transfer:   galeraWorkers(t, g, workers, idempotent, st),
		idempotent: idempotent,
		warmup:     warmup, before: before, after: after,
		fault: f,
		stats: st,
	}.run(t)
	tl := verifyGalera(t, name, g, accounts, res.outcomes, st)
	report(t, name, res, measure(res, warmup), tl, st)
}

// rejoinedBy extracts how the script said a node rejoined: IST, SST, or
// none when the cluster committed nothing while it was away.
var rejoinedBy = regexp.MustCompile(`rejoined by (IST|SST|none)`)

// TestGaleraKill kills a Galera node with kill -9 in the middle of the
// bank workload and restarts it once the group has evicted it; it rejoins
// by IST. The long run adds a restart at once, before the eviction.
func TestGaleraKill(t *testing.T) {
	script := testdb.ClusterScript(t)
	type variant struct {
		name                        string
		warmup, before, down, after time.Duration
	}
	variants := []variant{{"galera: kill -9 node 2, restart after 8 s", time.Second, 4 * time.Second, 8 * time.Second, 4 * time.Second}}
	if long() {
		variants = []variant{
			{"galera: kill -9 node 2, restart after 10 s", 2 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second},
			{"galera: kill -9 node 2, restart at once", 2 * time.Second, 10 * time.Second, 0, 10 * time.Second},
		}
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			wholeAround(t, script, "galera")
			galeraFaultRun(t, v.name, v.warmup, v.before, v.after, func(ctx context.Context, m *marks) error {
				m.inject("kill -9 node 2")
				if _, err := clusterScript(ctx, script, "node", "galera", "2", "kill"); err != nil {
					return err
				}
				time.Sleep(v.down)
				m.note("restart node 2")
				out, err := clusterScript(ctx, script, "node", "galera", "2", "start")
				if err != nil {
					return err
				}
				how := "?"
				if mm := rejoinedBy.FindStringSubmatch(out); mm != nil {
					how = mm[1]
				}
				m.end("node 2 synced, rejoined by " + how)
				if how != "IST" && how != "none" {
					t.Errorf("node 2 rejoined by %s, want IST, or no transfer at all (%q)", how, out)
				}
				return nil
			})
		})
	}
}

// suspectTimeout reads evs.suspect_timeout from the provider's options.
func suspectTimeout(t *testing.T, db *sql.DB) time.Duration {
	t.Helper()
	var name, opts string
	if err := db.QueryRowContext(t.Context(), "SHOW VARIABLES LIKE 'wsrep_provider_options'").Scan(&name, &opts); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`evs\.suspect_timeout = PT([0-9.]+)S`).FindStringSubmatch(opts)
	if m == nil {
		t.Fatalf("no evs.suspect_timeout in %q", opts)
	}
	s, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(s * float64(time.Second))
}

// TestGaleraPause stops a Galera node with SIGSTOP for longer than the
// group's suspect timeout, then resumes it, in the middle of the bank
// workload. A long run.
func TestGaleraPause(t *testing.T) {
	skipUnlessLong(t)
	script := testdb.ClusterScript(t)
	wholeAround(t, script, "galera")
	probe := openGalera(t, 1)
	suspect := suspectTimeout(t, probe.dbs[0])
	pause := suspect + 3*time.Second
	t.Logf("evs.suspect_timeout %v: node 1 paused for %v", suspect, pause)
	galeraFaultRun(t, "galera: SIGSTOP node 1", 2*time.Second, 10*time.Second, 10*time.Second, func(ctx context.Context, m *marks) error {
		m.inject(fmt.Sprintf("SIGSTOP node 1 (for %v)", pause))
		if _, err := clusterScript(ctx, script, "node", "galera", "1", "pause"); err != nil {
			return err
		}
		// The fault must have fired: the group evicts node 1 (node 2
		// counts two members) before it is resumed.
		paused := time.Now()
		evicted := false
		for time.Since(paused) < pause {
			if size, err := clusterScript(ctx, script, "node", "galera", "2", "size"); err == nil && size == "2" {
				if !evicted {
					m.note("node 1 evicted: node 2 counts 2 members")
				}
				evicted = true
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !evicted {
			_, _ = clusterScript(ctx, script, "node", "galera", "1", "resume")
			return fmt.Errorf("node 1 was paused for %v and the group never evicted it: the fault did not fire", pause)
		}
		m.note("SIGCONT node 1")
		if _, err := clusterScript(ctx, script, "node", "galera", "1", "resume"); err != nil {
			return err
		}
		for {
			if err := node1Rejoined(ctx, script); err == nil {
				break
			} else if errors.Is(err, errScript) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		m.end("node 1 back in the cluster and synced")
		return nil
	})
}

// errScript marks an error of scripts/clusters.sh itself in node1Rejoined.
var errScript = errors.New("clusters.sh")

// node1Rejoined reports, as a nil error, whether node 1, paused and
// resumed, is back in the cluster. Right after SIGCONT it still reports
// its old view; it has rejoined when node 2 counts three members again
// and node 1 is synced.
func node1Rejoined(ctx context.Context, script string) error {
	size, err := clusterScript(ctx, script, "node", "galera", "2", "size")
	if err != nil {
		return fmt.Errorf("%w: %w", errScript, err)
	}
	state, err := clusterScript(ctx, script, "node", "galera", "1", "state")
	if err != nil {
		return fmt.Errorf("%w: %w", errScript, err)
	}
	if size != "3" || state != "Synced" {
		return fmt.Errorf("node 2 counts %s members, node 1 is %s", size, state)
	}
	return nil
}

// TestGaleraLeftOpenTransaction shows the hazard of docs/backends.md
// §7.11 and the guard of mysqldb.NodeSet's Failover: on a node outside
// the primary component (nodes 1 and 2 stopped with SIGSTOP, so node 3
// loses quorum) a COMMIT is answered with 1047 and the transaction stays
// open. Without the guard, database/sql pools the connection, and once
// the node is back the next BEGIN on it commits the row that the failed
// attempt was judged not to have committed; with it, the connection is
// closed and the row never appears. A long run.
func TestGaleraLeftOpenTransaction(t *testing.T) {
	skipUnlessLong(t)
	script := testdb.ClusterScript(t)
	wholeAround(t, script, "galera")
	g := openGalera(t, 1)
	if err := execAll(t.Context(), g.cfgs[0], "CREATE TABLE leftover (id INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "node 3 has the table", func(ctx context.Context) error {
		_, err := g.dbs[2].ExecContext(ctx, "SELECT COUNT(*) FROM leftover")
		return err
	})
	g.dbs[2].SetMaxIdleConns(1)
	g.dbs[2].SetMaxOpenConns(1) // one connection: the BEGIN after the fault runs on the same one
	probe, err := sql.Open("mysql", g.cfgs[2].FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	quorumLost := func(ctx context.Context) error {
		var name, status string
		if err := probe.QueryRowContext(ctx, "SHOW STATUS LIKE 'wsrep_cluster_status'").Scan(&name, &status); err != nil {
			return err
		}
		if status == "Primary" {
			return errors.New("node 3 is still in the primary component")
		}
		return nil
	}
	for _, guarded := range []bool{false, true} {
		t.Run(fmt.Sprintf("Failover %v", guarded), func(t *testing.T) {
			id := 1
			if guarded {
				id = 2
			}
			nodes := mysqldb.Nodes(g.dbs[2]) // node 3 only
			opts := []dbop.RetryOption{dbop.MaxAttempts(1)}
			if guarded {
				opts = append(opts, nodes.Failover())
			}
			var commitErr error
			_, err := sqldb.Do(nodes, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO leftover VALUES (?)", id); err != nil {
					return err
				}
				// Quorum goes while the transaction is open: COMMIT is
				// answered with 1047.
				for _, n := range []string{"1", "2"} {
					if _, err := clusterScript(ctx, script, "node", "galera", n, "pause"); err != nil {
						return err
					}
				}
				waitFor(t, 30*time.Second, "node 3 loses quorum", quorumLost)
				return nil
			}).With(dbop.WithRetry(dbop.Constant(0), opts...)).Run(t.Context())
			commitErr = err
			for _, n := range []string{"1", "2"} {
				if _, err := clusterScript(t.Context(), script, "node", "galera", n, "resume"); err != nil {
					t.Fatal(err)
				}
			}
			if me, ok := errors.AsType[*mysql.MySQLError](commitErr); !ok || me.Number != 1047 {
				t.Fatalf("the transaction ended with %v, want 1047 answering COMMIT: the fault did not fire", commitErr)
			}
			if dbop.VerdictOf(commitErr) != dbop.RetryTransaction {
				t.Errorf("1047 at COMMIT judged %v, want retry-transaction (not committed)", dbop.VerdictOf(commitErr))
			}
			waitFor(t, 60*time.Second, "node 3 is back in the primary component", func(ctx context.Context) error {
				if quorumLost(ctx) == nil {
					return errors.New("not yet")
				}
				return nil
			})
			// The next transaction on node 3's only connection.
			if _, err := sqldb.Do(g.dbs[2], mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "SELECT 1")
				return err
			}).Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := g.dbs[0].QueryRowContext(t.Context(), "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT COUNT(*) FROM leftover WHERE id = ?", id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			t.Logf("Failover %v: COMMIT answered %v; after the node came back and began again, row %d present: %v", guarded, commitErr, id, n == 1)
			switch {
			case guarded && n != 0:
				t.Errorf("with Failover the failed attempt's row was committed later: the guard did not close the connection")
			case !guarded && n != 1:
				t.Logf("without Failover the leftover was not committed this time (the hazard did not show)")
			}
		})
	}
}

// TestGaleraBruteForceVictimInALockWait: a transaction that waits for
// another local transaction's lock while a replicated write-set needs a row
// it wrote is the write-set's brute-force victim (docs/backends.md §7.13).
// The abort wakes it with 1213, and sqldb retries it whole, with or without
// a deadline on the attempt: each write lands once — the victim's rolled
// back, node 2's applied, the retry's applied. A victim the abort did not
// wake would wait until its innodb_lock_wait_timeout (1205), or the
// max_statement_time of its deadline (1969), and fail the test.
func TestGaleraBruteForceVictimInALockWait(t *testing.T) {
	g := openGalera(t, 4)
	if err := execAll(t.Context(), g.cfgs[0],
		"CREATE TABLE bf_rows (id INT PRIMARY KEY, c INT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE bf_gate (id INT PRIMARY KEY) ENGINE=InnoDB",
		"INSERT INTO bf_rows VALUES (1, 0)",
		"INSERT INTO bf_gate VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "node 2 has the rows", func(ctx context.Context) error {
		var c int
		return g.dbs[1].QueryRowContext(ctx, "SELECT c FROM bf_rows WHERE id = 1").Scan(&c)
	})
	const rounds, lockWait = 5, 3 // lockWait: the victim's innodb_lock_wait_timeout, seconds
	for _, c := range []struct {
		name     string
		deadline time.Duration // 0: none
	}{
		{"no deadline", 0},
		{"WithTimeout(2s)", 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			for round := range rounds {
				took, first := bruteForceVictim(t, g, lockWait, c.deadline)
				if me, ok := errors.AsType[*mysql.MySQLError](first); !ok || me.Number != 1213 {
					t.Errorf("round %d: the victim's attempt ended with %v after the operation's %v, want 1213: the abort did not wake it (docs/backends.md §7.13)", round+1, first, took)
				}
			}
		})
	}
}

// gateQuery locks the gate row.
const gateQuery = "SELECT id FROM bf_gate WHERE id = 1 FOR UPDATE"

// bruteForceVictim runs one operation through sqldb on node 1 whose first
// attempt writes a row, then waits for a gate row another transaction
// holds, while node 2 writes the same row; it checks that the row changed
// once by each, and returns how long the operation took and how its first
// attempt ended.
func bruteForceVictim(t *testing.T, g *galera, lockWait int, deadline time.Duration) (took time.Duration, first error) {
	t.Helper()
	ctx := t.Context()
	var before int
	if err := g.dbs[0].QueryRowContext(ctx, "SELECT c FROM bf_rows WHERE id = 1").Scan(&before); err != nil {
		t.Fatal(err)
	}
	holder, err := g.dbs[0].BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, gateQuery); err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	op := sqldb.Do(g.dbs[0], mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		if attempts.Add(1) > 1 {
			_, err := tx.ExecContext(ctx, "UPDATE bf_rows SET c = c + 1 WHERE id = 1")
			return err
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET SESSION innodb_lock_wait_timeout = %d", lockWait)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE bf_rows SET c = c + 1 WHERE id = 1"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, gateQuery)
		return err
	})
	// The retry may itself lose to node 2's write-set, not yet applied on
	// node 1 when it updates the row (a certification conflict, 1213
	// again): seen once in CI while a node was rejoining. A third attempt
	// is allowed for that; the first must still be the abort's victim.
	ds := []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(ctx context.Context, ev dbop.AttemptEvent) {
		if first == nil {
			first = ev.Err
		}
	}))}
	if deadline > 0 {
		ds = append(ds, dbop.WithTimeout(deadline))
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := op.With(ds...).Run(ctx)
		done <- err
	}()
	// The victim's gate statement is running: it waits for the holder.
	// (Not information_schema.innodb_trx's LOCK WAIT: InnoDB refreshes that
	// table only once it has gone unread for 0.1 s, and a poll can read
	// stale rows for good; adapters/sqldb/mariadb_deadlock_test.go.)
	waitFor(t, 10*time.Second, "the victim waits for the gate", func(ctx context.Context) error {
		var n int
		if err := g.dbs[0].QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE db = DATABASE() AND info = ?", gateQuery).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errors.New("no transaction waits for a lock")
		}
		return nil
	})
	if _, err := g.dbs[1].ExecContext(ctx, "UPDATE bf_rows SET c = c + 10 WHERE id = 1"); err != nil {
		t.Fatalf("node 2's write: %v", err)
	}
	err = <-done
	took = time.Since(start)
	if err != nil {
		t.Fatalf("the operation failed after %v: %v", took, err)
	}
	if n := attempts.Load(); n != 2 && n != 3 {
		t.Fatalf("%d attempts, want 2 (3 if the retry lost to the write-set being applied): the first the abort's victim", n)
	}
	var after int
	if err := g.dbs[0].QueryRowContext(ctx, "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT c FROM bf_rows WHERE id = 1").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before+11 {
		t.Errorf("the row went from %d to %d, want +11: node 2's write once and the operation's once", before, after)
	}
	return took, first
}
