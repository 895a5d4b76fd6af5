package faultgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGTables are the tables of one PostgreSQL run.
type PGTables struct{ Accounts, Ledger string }

func NewPGTables(runID string) PGTables {
	return PGTables{
		Accounts: pgx.Identifier{"fault_accounts_" + runID}.Sanitize(),
		Ledger:   pgx.Identifier{"fault_ledger_" + runID}.Sanitize(),
	}
}

// create creates the tables with every account at zero, and drops them
// when t ends. Each ledger row records the transaction that wrote it
// (xid), by which SharedTransfers finds the transfers that committed
// together.
func (tb PGTables) Create(t *testing.T, admin *pgxpool.Pool) {
	t.Helper()
	for _, sql := range []string{
		"CREATE TABLE " + tb.Accounts + " (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE " + tb.Ledger + " (k text PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL, xid xid8 NOT NULL DEFAULT pg_current_xact_id())",
		fmt.Sprintf("INSERT INTO %s SELECT g, 0 FROM generate_series(0, %d) g", tb.Accounts, NumAccounts-1),
	} {
		if _, err := admin.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS "+tb.Accounts+", "+tb.Ledger); err != nil {
			t.Errorf("drop the run's tables: %v", err)
		}
	})
}

// transferFn is the transfer, idempotent by design: the ledger row goes in
// first, and only the call that wrote it updates the balances, in the same
// transaction. A retry of a transfer that did commit finds the row and
// changes nothing.
func (tb PGTables) TransferFn(tr Transfer) func(ctx context.Context, tx pgx.Tx) (bool, error) {
	return func(ctx context.Context, tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, "INSERT INTO "+tb.Ledger+" (k, src, dst, amount) VALUES ($1, $2, $3, $4) ON CONFLICT (k) DO NOTHING",
			tr.Key, tr.Src, tr.Dst, tr.Amount)
		if err != nil {
			return false, err
		}
		if tag.RowsAffected() == 0 {
			return false, nil // applied by an earlier attempt
		}
		for _, u := range []struct {
			id    int
			delta int64
		}{{tr.Src, -tr.Amount}, {tr.Dst, tr.Amount}} {
			tag, err := tx.Exec(ctx, "UPDATE "+tb.Accounts+" SET balance = balance + $1 WHERE id = $2", u.delta, u.id)
			if err != nil {
				return false, err
			}
			if tag.RowsAffected() != 1 {
				return false, dbop.Classify(fmt.Errorf("account %d: updated %d rows", u.id, tag.RowsAffected()), dbop.NotRetryable)
			}
		}
		return true, nil
	}
}

// readState reads the ledger and the balances with a connection of its
// own.
func (tb PGTables) ReadState(t *testing.T, dsn string) (map[string]LedgerRow, []int64) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect for the final check: %v", err)
	}
	defer conn.Close(context.Background())
	ledger := map[string]LedgerRow{}
	rows, _ := conn.Query(t.Context(), "SELECT k, src, dst, amount FROM "+tb.Ledger)
	var key string
	var row LedgerRow
	if _, err := pgx.ForEachRow(rows, []any{&key, &row.Src, &row.Dst, &row.Amount}, func() error {
		ledger[key] = row
		return nil
	}); err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	balances := make([]int64, NumAccounts) // and more, for a run with a clearing account
	rows, _ = conn.Query(t.Context(), "SELECT id, balance FROM "+tb.Accounts)
	var id int
	var balance int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &balance}, func() error {
		for id >= len(balances) {
			balances = append(balances, 0)
		}
		balances[id] = balance
		return nil
	}); err != nil {
		t.Fatalf("read the balances: %v", err)
	}
	return ledger, balances
}

// SharedCommit is the count (Stats.Count) of the transfers committed in
// one transaction with another transfer, by pgxdb.ShareCommits.
const SharedCommit = "transfers committed in a shared transaction (ShareCommits)"

// SharedTransfers reads, with a connection of its own, how many transfers
// have a ledger row written in the same transaction as a row of another
// transfer (the legs of one transfer, "<key>d" and "<key>c", count as one
// transfer), in how many transactions, and the most transfers one
// transaction committed. A transaction id is never reused, so only
// pgxdb.ShareCommits puts two transfers' rows under one.
func (tb PGTables) SharedTransfers(t *testing.T, dsn string) (transfers, txs, most int) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to count the shared commits: %v", err)
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(t.Context(), `SELECT count(DISTINCT tr), count(DISTINCT xid), coalesce(max(n), 0) FROM (
		SELECT tr, xid, count(*) OVER (PARTITION BY xid) AS n
		FROM (SELECT DISTINCT regexp_replace(k, '[dc]$', '') AS tr, xid FROM `+tb.Ledger+`) AS legs
	) AS counted WHERE n > 1`).Scan(&transfers, &txs, &most)
	if err != nil {
		t.Fatalf("count the shared commits: %v", err)
	}
	return transfers, txs, most
}

// PGPool opens a pool whose connections carry application_name app, closed
// when t ends. mod adjusts its configuration.
func PGPool(t *testing.T, dsn, app string, maxConns int32, mod func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", testdb.PostgresEnv, err)
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	if mod != nil {
		mod(cfg)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(t.Context()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	return pool
}

// ThroughProxy points a pool's connections at p, in clear text so that p
// sees the statements.
func ThroughProxy(p *faultproxy.Proxy) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) {
		port, _ := strconv.ParseUint(p.Port(), 10, 16)
		cfg.ConnConfig.Host = p.Host()
		cfg.ConnConfig.Port = uint16(port)
		cfg.ConnConfig.Fallbacks = nil
		cfg.ConnConfig.TLSConfig = nil
	}
}

// PGTarget returns the server address of dsn, for the proxy.
func PGTarget(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", testdb.PostgresEnv, err)
	}
	if cfg.Host == "" || cfg.Host[0] == '/' {
		t.Fatalf("the fault proxy needs a TCP address; %s names %q", testdb.PostgresEnv, cfg.Host)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// WaitForBackendsGone waits until no backend of application app is left,
// so that every statement the workers sent has been handled before the
// final check reads. It polls a catalog view for a state; it is no barrier
// for a race.
func WaitForBackendsGone(t *testing.T, admin *pgxpool.Pool, app string) {
	t.Helper()
	waitUntil(t, "the workers' backends exit", func() (bool, error) {
		var n int
		err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
		return n == 0, err
	})
}

// waitUntil polls cond until it holds, failing t after 30 seconds.
func waitUntil(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PGFaultMinimums is how many times each kind of fault must fire in a run
// of defaultDuration or longer (see CheckFaults). A 6 s run gives the
// injector 81–93 rounds on two cores under -race, also with the module's
// other tests running beside it; the minimums hold with half of that, 40
// rounds, or two decks, which deal terminate 10 times, cancel 8, lock 8,
// drop 6 and cut 8. A kind fires when it finds a target: a worker's
// backend, one running a statement, no lock still held (a lock is held
// 20–250 ms), an open proxied connection, a COMMIT sent through the proxy
// while armed. In 12 runs of 6 s they fired: terminate 20–24, cancel
// 15–18, lock 10–15, drop 12–15, cut armed 16–19 and fired 14–17. Each
// minimum is about half its deals in 40 rounds, and at least 3, so that a
// kind that fired once or never fails the suite.
var PGFaultMinimums = map[string]int{
	"terminate backend":              4,
	"cancel statement":               4,
	"row lock held":                  4,
	"proxy drop all":                 3,
	"proxy cut after commit (armed)": 4,
	"proxy cut after commit (fired)": 3,
}

// NewPGInjector returns the injector of the PostgreSQL faults
// (PGFaultMinimums): it terminates and cancels the backends whose
// application_name is app, holds row locks of the table accounts, and
// drops and cuts proxy's connections.
func NewPGInjector(admin *pgxpool.Pool, proxy *faultproxy.Proxy, app, accounts string) InjectFunc {
	return (&pgInjector{admin: admin, proxy: proxy, app: app, accounts: accounts}).inject
}

// pgInjector causes the PostgreSQL faults.
type pgInjector struct {
	admin    *pgxpool.Pool
	proxy    *faultproxy.Proxy
	app      string
	accounts string
	holding  atomic.Bool
}

func (in *pgInjector) inject(ctx context.Context, slot int, rng *rand.Rand, spawn func(func() error)) (string, error) {
	switch {
	case slot < 25:
		return in.signal(ctx, rng, "terminate backend", "pg_terminate_backend", "")
	case slot < 45:
		return in.signal(ctx, rng, "cancel statement", "pg_cancel_backend", " AND state = 'active'")
	case slot < 65:
		return in.holdLock(ctx, rng, spawn)
	case slot < 80:
		if n := in.proxy.DropAll(); n > 0 {
			return "proxy drop all", nil
		}
		return "", nil
	default:
		in.proxy.CutAfter([]byte("commit")) // pgx sends COMMIT in lower case
		return "proxy cut after commit (armed)", nil
	}
}

// signal calls fn (pg_terminate_backend or pg_cancel_backend) on one of the
// workers' backends, chosen with rng among those matching filter.
func (in *pgInjector) signal(ctx context.Context, rng *rand.Rand, kind, fn, filter string) (string, error) {
	rows, _ := in.admin.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1"+filter+" ORDER BY pid", in.app)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return kind, err
	}
	if len(pids) == 0 {
		return "", nil
	}
	var signalled bool
	if err := in.admin.QueryRow(ctx, "SELECT "+fn+"($1)", pids[rng.IntN(len(pids))]).Scan(&signalled); err != nil {
		return kind, err
	}
	if !signalled {
		return "", nil // the backend had gone
	}
	return kind, nil
}

// holdLock locks one account's row from a connection of its own for
// 20–250 ms, longer than the workers' per-attempt limits. One lock is
// held at a time; the injector goes on meanwhile.
//
// Waiting for the row, the injector's transaction holds its tuple lock,
// behind which a worker's transaction that wants the row queues: when that
// worker waits, in turn, for the transaction the injector waits for, the
// three deadlock, and the server may fail the injector's SELECT (40P01)
// rather than a worker's. Workers without a lock or statement timeout
// meet such cycles (a shared transaction, which holds the rows of every
// attempt in it until its COMMIT, more often): the injector then hit
// nothing, and goes on. It waits 300 ms at most (lock_timeout, 55P03:
// nothing hit either), so that a row such a worker holds for a second
// does not hold up the other kinds of fault.
func (in *pgInjector) holdLock(ctx context.Context, rng *rand.Rand, spawn func(func() error)) (string, error) {
	const kind = "row lock held"
	id, hold := rng.IntN(NumAccounts), time.Duration(20+rng.IntN(231))*time.Millisecond
	if !in.holding.CompareAndSwap(false, true) {
		return "", nil
	}
	tx, err := in.admin.Begin(ctx)
	if err != nil {
		in.holding.Store(false)
		return kind, err
	}
	_, err = tx.Exec(ctx, "SET LOCAL lock_timeout = '300ms'")
	if err == nil {
		_, err = tx.Exec(ctx, "SELECT 1 FROM "+in.accounts+" WHERE id = $1 FOR UPDATE", id)
	}
	if err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		in.holding.Store(false)
		if e, ok := errors.AsType[*pgconn.PgError](err); ok && (e.Code == "40P01" || e.Code == "55P03") {
			return "", nil
		}
		return kind, err
	}
	spawn(func() error {
		defer in.holding.Store(false)
		time.Sleep(hold)
		return tx.Rollback(context.WithoutCancel(ctx))
	})
	return kind, nil
}
