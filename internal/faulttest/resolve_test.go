package faulttest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CutsEnv sets how many connections the ResolveCommit workloads cut
// around COMMIT, per backend. The default, defaultCuts, keeps each run
// under about 15 s on a loaded two-core machine (PostgreSQL's resolution
// opens a connection, about 0.1 s under that load; MariaDB's takes a few
// milliseconds); docs/ambiguity.md gives the long run's command and
// benchmarks/results/resolve-long.txt its output.
const CutsEnv = "DBOP_RESOLVE_CUTS"

const (
	defaultCuts   = 200
	resolveWorker = 4
)

// cutKinds are the cuts of the ResolveCommit workloads: right after COMMIT
// was forwarded (the server committed, the answer is lost), right before
// (the server never receives it and sees the client go), and a partition
// right before (the server never receives it, and its session sits in its
// transaction, holding its row locks, until the resolver ends it).
var cutKinds = []struct {
	name string
	arm  func(p *faultproxy.Proxy, pattern []byte)
}{
	{"after", (*faultproxy.Proxy).CutAfter},
	{"before", (*faultproxy.Proxy).CutBefore},
	{"partition", (*faultproxy.Proxy).PartitionBefore},
}

// resolveRun is what the two ResolveCommit workloads share: the plan, and
// what happened.
type resolveRun struct {
	cuts int // planned, for all workers together

	mu          sync.Mutex
	armed       map[string]int // cuts armed, by kind
	resolutions map[scopes.Resolution]int
	elapsed     map[scopes.Resolution][]time.Duration
	outcomes    []faultgen.Outcome
	history     map[string][]string
}

func newResolveRun(t *testing.T) *resolveRun {
	t.Helper()
	r := &resolveRun{cuts: defaultCuts, armed: map[string]int{}, resolutions: map[scopes.Resolution]int{}, elapsed: map[scopes.Resolution][]time.Duration{}, history: map[string][]string{}}
	if s := os.Getenv(CutsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number of cuts", CutsEnv, s)
		}
		r.cuts = n
	}
	return r
}

func (r *resolveRun) onResolved(ctx context.Context, rc scopes.ResolvedCommit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolutions[rc.Resolution]++
	r.elapsed[rc.Resolution] = append(r.elapsed[rc.Resolution], rc.Elapsed)
	if key, ok := ctx.Value(faultgen.TransferKey{}).(string); ok {
		r.history[key] = append(r.history[key], fmt.Sprintf("resolved %v in %v (%v)", rc.Resolution, rc.Elapsed, rc.Err))
	}
}

func (r *resolveRun) onRetry(ctx context.Context, e dbop.AttemptEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if key, ok := ctx.Value(faultgen.TransferKey{}).(string); ok {
		r.history[key] = append(r.history[key], fmt.Sprintf("attempt %d: %v: %v", e.Attempt, e.Verdict, e.Err))
	}
}

// work runs the workers: each has a proxy of its own and cuts, around
// one transfer in two, the connection of that transfer's first attempt, a
// kind chosen at random, until the run's cuts are used up. run applies one
// transfer through its worker's proxy.
func (r *resolveRun) work(t *testing.T, seed uint64, proxies []*faultproxy.Proxy, commit []byte,
	run func(ctx context.Context, w int, tr faultgen.Transfer, arm func()) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	perWorker := (r.cuts + len(proxies) - 1) / len(proxies)
	var wg sync.WaitGroup
	for w := range proxies {
		rng := rand.New(rand.NewPCG(seed, uint64(w)+1))
		wg.Go(func() {
			for n, cut := 0, 0; cut < perWorker && ctx.Err() == nil; n++ {
				src := rng.IntN(faultgen.NumAccounts)
				tr := faultgen.Transfer{
					Key:    fmt.Sprintf("w%d-%d", w, n),
					Src:    src,
					Dst:    (src + 1 + rng.IntN(faultgen.NumAccounts-1)) % faultgen.NumAccounts,
					Amount: 1 + rng.Int64N(100),
				}
				arm := func() {}
				if rng.IntN(2) == 0 {
					kind := cutKinds[rng.IntN(len(cutKinds))]
					cut++
					armed := false
					arm = func() {
						if armed {
							return
						}
						armed = true
						kind.arm(proxies[w], commit)
						r.mu.Lock()
						r.armed[kind.name]++
						r.mu.Unlock()
					}
				}
				err := run(context.WithValue(ctx, faultgen.TransferKey{}, tr.Key), w, tr, arm)
				r.mu.Lock()
				r.outcomes = append(r.outcomes, faultgen.Outcome{Transfer: tr, Worker: w, Err: err, Wrote: err == nil})
				r.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the workload did not finish in 5 minutes: a transfer hung")
	}
}

// check verifies the ledger and the balances against the outcomes: every
// transfer acknowledged, none ambiguous, each in the ledger exactly once
// (the ledger's key would refuse a second INSERT: a transfer applied twice
// fails with a unique violation, which nothing retries), and the balances
// those of the ledger replayed; and that the cuts did what they should.
func (r *resolveRun) check(t *testing.T, ledger map[string]faultgen.LedgerRow, balances []int64, fired, firedAfter int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var failed, ambiguousOut int
	for _, o := range r.outcomes {
		row, ok := ledger[o.Key]
		switch {
		case o.Err != nil && faultgen.Ambiguous(o.Err):
			ambiguousOut++
			t.Errorf("transfer %s: an ambiguous outcome reached the caller: %v\n\t%s", o.Key, o.Err, strings.Join(r.history[o.Key], "\n\t"))
		case o.Err != nil:
			failed++
			t.Errorf("transfer %s failed: %v\n\t%s", o.Key, o.Err, strings.Join(r.history[o.Key], "\n\t"))
		case !ok:
			t.Errorf("transfer %s was acknowledged but is not in the ledger\n\t%s", o.Key, strings.Join(r.history[o.Key], "\n\t"))
		case row != (faultgen.LedgerRow{Src: o.Src, Dst: o.Dst, Amount: o.Amount}):
			t.Errorf("transfer %s: ledger has %+v, the transfer was %+v", o.Key, row, o.Transfer)
		}
	}
	if len(ledger) != len(r.outcomes)-failed-ambiguousOut {
		t.Errorf("ledger rows %d, transfers acknowledged %d", len(ledger), len(r.outcomes)-failed-ambiguousOut)
	}
	replay := make([]int64, len(balances))
	for _, row := range ledger {
		replay[row.Src] -= row.Amount
		replay[row.Dst] += row.Amount
	}
	for id := range balances {
		if balances[id] != replay[id] {
			t.Errorf("account %d: balance %d, the ledger replayed gives %d: a transfer applied twice or in part", id, balances[id], replay[id])
		}
	}
	lost := r.resolutions[scopes.Committed] + r.resolutions[scopes.Aborted] + r.resolutions[scopes.NotWritten] + r.resolutions[scopes.Unresolved]
	t.Logf("transfers %d: acknowledged %d, failed %d, ambiguous %d; ledger rows %d", len(r.outcomes), len(r.outcomes)-failed-ambiguousOut, failed, ambiguousOut, len(ledger))
	t.Logf("cuts armed %d (%s); fired %d, %d of them after COMMIT was forwarded", r.armed["after"]+r.armed["before"]+r.armed["partition"], faultgen.Counts(r.armed), fired, firedAfter)
	t.Logf("ambiguous: resolved committed %d / resolved aborted %d / wrote nothing %d / unresolved %d",
		r.resolutions[scopes.Committed], r.resolutions[scopes.Aborted], r.resolutions[scopes.NotWritten], r.resolutions[scopes.Unresolved])
	for _, res := range []scopes.Resolution{scopes.Committed, scopes.Aborted, scopes.Unresolved} {
		if d := r.elapsed[res]; len(d) > 0 {
			slices.Sort(d)
			t.Logf("resolution time, %v: median %v, 99th percentile %v, max %v",
				res, d[len(d)/2].Round(time.Microsecond), d[len(d)*99/100].Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
		}
	}
	if fired < r.cuts*9/10 {
		t.Errorf("%d cuts fired, want about %d: the cuts no longer reach COMMIT", fired, r.cuts)
	}
	if lost != fired {
		t.Errorf("%d resolutions for %d cuts: every cut COMMIT must be resolved once", lost, fired)
	}
	if r.resolutions[scopes.Committed] != firedAfter {
		t.Errorf("%d resolved committed, want one per cut after COMMIT (%d)", r.resolutions[scopes.Committed], firedAfter)
	}
}

// TestResolveCommitTransfersPostgres runs money transfers through
// pgxdb.InTx with ResolveCommit and a retry that is not Idempotent, while
// each worker's proxy cuts, around one transfer in two, the connection
// right after it forwarded COMMIT, right before, or by a partition right
// before. With the server reachable, no ambiguous outcome may reach a
// caller, every transfer must be in the ledger exactly once, and each cut
// COMMIT must be resolved: committed for the cuts after, aborted (and the
// transfer applied once, by the retry) for the cuts before.
func TestResolveCommitTransfersPostgres(t *testing.T) {
	dsn := testdb.Postgres(t)
	cfg := faultgen.NewRunConfig(t)
	r := newResolveRun(t)
	app := "dbop_resolve_" + cfg.RunID
	admin := faultgen.PGPool(t, dsn, "dbop_resolve_admin_"+cfg.RunID, 2, nil)
	tables := faultgen.NewPGTables(cfg.RunID)
	tables.Create(t, admin)

	proxies := make([]*faultproxy.Proxy, resolveWorker)
	pools := make([]*pgxpool.Pool, resolveWorker)
	for w := range proxies {
		proxies[w] = faultproxy.Start(t, faultgen.PGTarget(t, dsn))
		pools[w] = faultgen.PGPool(t, dsn, app, 1, faultgen.ThroughProxy(proxies[w]))
	}
	retry := dbop.WithRetry(faultgen.Backoff, dbop.MaxAttempts(faultgen.MaxAttempts), dbop.OnRetry(r.onRetry))
	r.work(t, cfg.Seed, proxies, []byte("commit"), func(ctx context.Context, w int, tr faultgen.Transfer, arm func()) error {
		_, err := pgxdb.InTx(pools[w], func(ctx context.Context, tx pgx.Tx) (bool, error) {
			if err := pgTransfer(ctx, tx, tables, tr); err != nil {
				return false, err
			}
			arm()
			return true, nil
		}, pgxdb.ResolveCommit()).With(retry).Run(scopes.OnCommitResolved(ctx, r.onResolved))
		return err
	})
	fired, after := 0, 0
	for _, p := range proxies {
		fired, after = fired+p.Cuts(), after+p.CutsAfter()
	}
	for _, p := range pools {
		p.Close()
	}
	faultgen.WaitForBackendsGone(t, admin, app)
	ledger, balances := tables.ReadState(t, dsn)
	r.check(t, ledger, balances, fired, after)
}

// pgTransfer applies tr in tx with no idempotency of its own: a plain
// INSERT of the ledger row, whose key refuses a second one, and two
// updates in a fixed order.
func pgTransfer(ctx context.Context, tx pgx.Tx, tables faultgen.PGTables, tr faultgen.Transfer) error {
	if _, err := tx.Exec(ctx, "INSERT INTO "+tables.Ledger+" (k, src, dst, amount) VALUES ($1, $2, $3, $4)", tr.Key, tr.Src, tr.Dst, tr.Amount); err != nil {
		return err
	}
	a, b := tr.Src, tr.Dst
	if a > b {
		a, b = b, a
	}
	for _, id := range []int{a, b} {
		delta := tr.Amount
		if id == tr.Src {
			delta = -tr.Amount
		}
		if _, err := tx.Exec(ctx, "UPDATE "+tables.Accounts+" SET balance = balance + $1 WHERE id = $2", delta, id); err != nil {
			return err
		}
	}
	return nil
}

// TestResolveCommitTransfersMariaDB is TestResolveCommitTransfersPostgres
// on MariaDB, through sqldb.InTx with the MariaDB dialect: commit markers
// in the run's database, and the old connection killed before a marker
// not found is taken for "aborted".
func TestResolveCommitTransfersMariaDB(t *testing.T) {
	dsn := testdb.MySQL(t)
	cfg := faultgen.NewRunConfig(t)
	r := newResolveRun(t)
	base, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", testdb.MySQLEnv, err)
	}
	admin := faultgen.OpenMy(t, base, 2)
	dbName := "dbop_resolve_" + cfg.RunID
	q := faultgen.MyRunDatabase(t, admin, dbName)
	for id := range faultgen.NumAccounts {
		if _, err := admin.ExecContext(t.Context(), "INSERT INTO "+q+".accounts VALUES (?, 0)", id); err != nil {
			t.Fatal(err)
		}
	}

	proxies := make([]*faultproxy.Proxy, resolveWorker)
	dbs := make([]*sql.DB, resolveWorker)
	for w := range proxies {
		proxies[w] = faultproxy.Start(t, base.Addr)
		c := base.Clone()
		c.DBName, c.Addr = dbName, proxies[w].Addr()
		dbs[w] = faultgen.OpenMy(t, c, 2) // the transaction's connection, and the resolver's
	}
	retry := dbop.WithRetry(faultgen.Backoff, dbop.MaxAttempts(faultgen.MaxAttempts), dbop.OnRetry(r.onRetry))
	r.work(t, cfg.Seed, proxies, []byte("COMMIT"), func(ctx context.Context, w int, tr faultgen.Transfer, arm func()) error {
		_, err := sqldb.InTx(dbs[w], mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (bool, error) {
			if err := myTransfer(ctx, tx, tr); err != nil {
				return false, err
			}
			arm()
			return true, nil
		}, sqldb.ResolveCommit()).With(retry).Run(scopes.OnCommitResolved(ctx, r.onResolved))
		return err
	})
	fired, after := 0, 0
	for _, p := range proxies {
		fired, after = fired+p.Cuts(), after+p.CutsAfter()
	}
	for _, db := range dbs {
		db.Close()
	}
	ledger, balances := faultgen.ReadMyState(t, base, q)
	var markers int
	if err := admin.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+q+"."+mysqldb.CommitMarkerTable).Scan(&markers); err != nil {
		t.Fatal(err)
	}
	if markers != len(ledger) {
		t.Errorf("%d commit markers, want one per committed transfer (%d)", markers, len(ledger))
	}
	r.check(t, ledger, balances, fired, after)
}

// myTransfer is pgTransfer for MariaDB.
func myTransfer(ctx context.Context, tx *sql.Tx, tr faultgen.Transfer) error {
	if _, err := tx.ExecContext(ctx, "INSERT INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)", tr.Key, tr.Src, tr.Dst, tr.Amount); err != nil {
		return err
	}
	a, b := tr.Src, tr.Dst
	if a > b {
		a, b = b, a
	}
	for _, id := range []int{a, b} {
		delta := tr.Amount
		if id == tr.Src {
			delta = -tr.Amount
		}
		res, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ? WHERE id = ?", delta, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return dbop.Classify(errors.Join(fmt.Errorf("account %d: updated %d rows", id, n), err), dbop.NotRetryable)
		}
	}
	return nil
}
