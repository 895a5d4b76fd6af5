package clustertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgBank is the bank's tables on PostgreSQL, named for one run.
type pgBank struct{ accounts, ledger string }

// createPGBank creates the bank's tables with every balance at zero and
// drops them when t ends.
func createPGBank(t *testing.T, pool *pgxpool.Pool, n int) pgBank {
	t.Helper()
	id := runID()
	b := pgBank{
		accounts: pgx.Identifier{"cluster_accounts_" + id}.Sanitize(),
		ledger:   pgx.Identifier{"cluster_ledger_" + id}.Sanitize(),
	}
	for _, sql := range []string{
		"CREATE TABLE " + b.accounts + " (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE " + b.ledger + " (k text PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)",
		fmt.Sprintf("INSERT INTO %s SELECT g, 0 FROM generate_series(0, %d) g", b.accounts, n-1),
	} {
		if _, err := pool.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+b.accounts+", "+b.ledger); err != nil {
			t.Errorf("drop the run's tables: %v", err)
		}
	})
	return b
}

// relative is the bank's transfer on PostgreSQL: the ledger row, then two
// relative updates. With idempotent, ON CONFLICT DO NOTHING writes the
// ledger row or finds it, and only the call that wrote it updates the
// balances.
func (b pgBank) relative(tr transfer, idempotent bool) func(ctx context.Context, tx pgx.Tx) error {
	insert := "INSERT INTO " + b.ledger + " (k, src, dst, amount) VALUES ($1, $2, $3, $4)"
	if idempotent {
		insert += " ON CONFLICT (k) DO NOTHING"
	}
	return func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, insert, tr.key, tr.src, tr.dst, tr.amount)
		if err != nil || tag.RowsAffected() == 0 {
			return err // 0 rows: applied by an earlier attempt
		}
		for _, u := range tr.legs() {
			if _, err := tx.Exec(ctx, "UPDATE "+b.accounts+" SET balance = balance + $1 WHERE id = $2", u.delta, u.id); err != nil {
				return err
			}
		}
		return nil
	}
}

// readThenWrite reads each balance with a plain SELECT and writes the new
// value back.
func (b pgBank) readThenWrite(tr transfer) func(ctx context.Context, tx pgx.Tx) error {
	return func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO "+b.ledger+" (k, src, dst, amount) VALUES ($1, $2, $3, $4)", tr.key, tr.src, tr.dst, tr.amount); err != nil {
			return err
		}
		for _, u := range tr.legs() {
			var balance int64
			if err := tx.QueryRow(ctx, "SELECT balance FROM "+b.accounts+" WHERE id = $1", u.id).Scan(&balance); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE "+b.accounts+" SET balance = $1 WHERE id = $2", balance+u.delta, u.id); err != nil {
				return err
			}
		}
		return nil
	}
}

// read reads the bank's state, retrying until the pool reaches a primary.
func (b pgBank) read(t *testing.T, pool *pgxpool.Pool, accounts int) state {
	t.Helper()
	st := state{ledger: map[string]ledgerRow{}, balances: make([]int64, accounts)}
	waitFor(t, 60*time.Second, "the PostgreSQL primary answers", func(ctx context.Context) error {
		clear(st.ledger)
		rows, err := pool.Query(ctx, "SELECT k, src, dst, amount FROM "+b.ledger)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k string
			var r ledgerRow
			if err := rows.Scan(&k, &r.src, &r.dst, &r.amount); err != nil {
				rows.Close()
				return err
			}
			st.ledger[k] = r
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = pool.Query(ctx, "SELECT id, balance FROM "+b.accounts)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int
			var bal int64
			if err := rows.Scan(&id, &bal); err != nil {
				rows.Close()
				return err
			}
			st.balances[id] = bal
		}
		return rows.Err()
	})
	return st
}

// serverPort is the port of the server a pool's connection reached, and
// whether it is in recovery (a standby).
func serverPort(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (port int, standby bool, err error) {
	err = q.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&port, &standby)
	return port, standby, err
}

// reverseHosts returns a multi-host connection string with its hosts in the
// opposite order.
func reverseHosts(t *testing.T, dsn string) string {
	t.Helper()
	at, slash := strings.Index(dsn, "@"), strings.Index(dsn, "://")
	if at < 0 || slash < 0 {
		t.Fatalf("%s: want postgres://user@host1:port1,host2:port2/db…", testdb.PGFailoverEnv)
	}
	end := at + strings.Index(dsn[at:], "/")
	hosts := strings.Split(dsn[at+1:end], ",")
	for i, j := 0, len(hosts)-1; i < j; i, j = i+1, j-1 {
		hosts[i], hosts[j] = hosts[j], hosts[i]
	}
	return dsn[:at+1] + strings.Join(hosts, ",") + dsn[end:]
}

// TestPGFailoverSmoke checks pgx's multi-host connection string with
// target_session_attrs=read-write: whichever order the hosts are listed
// in, connections reach the primary, never the standby
// (docs/backends.md §8.5); and a write sent to the standby directly fails
// with 25006, which is not retried (§8.3).
func TestPGFailoverSmoke(t *testing.T) {
	dsn := testdb.PGFailover(t)
	script := testdb.ClusterScript(t)
	var primaryPort int
	for i, s := range []string{dsn, reverseHosts(t, dsn)} {
		conn, err := pgx.Connect(t.Context(), s)
		if err != nil {
			t.Fatalf("connect with %q: %v", s, err)
		}
		port, standby, err := serverPort(t.Context(), conn)
		conn.Close(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if standby {
			t.Errorf("%q reached the standby on port %d", s, port)
		}
		if i == 1 && port != primaryPort {
			t.Errorf("the hosts in reverse order reached port %d, in order %d", port, primaryPort)
		}
		primaryPort = port
	}
	standbyPort, err := clusterScript(t.Context(), script, "node", "pgha", "standby", "port")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), "postgres://postgres@127.0.0.1:"+standbyPort+"/dbop_test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	retries := 0
	_, err = pgxdb.Do(conn, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CREATE TABLE cluster_smoke_never (id int)")
		return err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
		dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { retries++ }))).Run(t.Context())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("a write on the standby: %v, want 25006", err)
	}
	if v := pgxdb.Classifier(err); retries != 0 || v != dbop.NotRetryable {
		t.Errorf("25006 was retried %d times, classified %v; want no retry, not-retryable", retries, v)
	}
}

// TestPGSerializableStandIn runs transfers that read balances and write
// absolute values on PostgreSQL, the stand-in for CockroachDB (which runs
// every transaction SERIALIZABLE and cannot run here, docs/clusters.md):
// under READ COMMITTED they lose updates; under SERIALIZABLE, with the
// 40001s retried whole, and with CockroachDB's restart protocol
// (pgxdb.CockroachRestart) on top, every invariant holds.
func TestPGSerializableStandIn(t *testing.T) {
	const workers, accounts = 8, 4
	pool := openPG(t, workers+2)
	run := func(t *testing.T, name string, opts ...pgxdb.TxOption) []string {
		t.Helper()
		b := createPGBank(t, pool, accounts)
		st := newRetryStats()
		res := bankRun{
			name: name, workers: workers, accounts: accounts,
			idempotent: func(int) bool { return false },
			transfer: func(ctx context.Context, _ int, tr transfer) error {
				_, err := pgxdb.Do(pool, b.readThenWrite(tr), opts...).With(
					dbop.WithRetry(backoff, dbop.MaxAttempts(100), dbop.OnRetry(st.onRetry)),
				).Run(ctx)
				return err
			},
			before: 2 * time.Second,
			fault:  func(context.Context, *marks) error { return nil },
			stats:  st,
		}.run(t)
		tl, violations := check(res.outcomes, b.read(t, pool, accounts))
		t.Logf("%s: %d transfers acknowledged, %d failed, %d retries (%s); %d invariant violations",
			name, tl.acked, tl.failed, st.retries, faultgen.Counts(st.causes), len(violations))
		if len(violations) > 0 {
			t.Logf("%s: the first: %s", name, violations[0])
		}
		return violations
	}
	t.Run("read committed: updates lost", func(t *testing.T) {
		if v := run(t, "read then write, READ COMMITTED"); len(v) == 0 {
			t.Errorf("no update was lost: the contrast the stand-in relies on did not show")
		}
	})
	for _, tc := range []struct {
		name string
		opts []pgxdb.TxOption
	}{
		{"serializable", []pgxdb.TxOption{pgxdb.Isolation(pgx.Serializable)}},
		{"serializable with the restart protocol", []pgxdb.TxOption{pgxdb.Isolation(pgx.Serializable), pgxdb.CockroachRestart(dbop.MaxAttempts(3))}},
	} {
		t.Run(tc.name+": invariants hold", func(t *testing.T) {
			if v := run(t, "read then write, "+tc.name, tc.opts...); len(v) > 0 {
				t.Errorf("%d invariant violations, the first: %s", len(v), v[0])
			}
		})
	}
}

// TestPGFailover kills the PostgreSQL primary (pg_ctl stop -m immediate)
// in the middle of the bank workload and promotes the standby two seconds
// later, as a failover manager would; the workers' pool, on pgx's
// multi-host connection string with target_session_attrs=read-write, finds
// the new primary by itself. The second variant runs the transfers through
// dbop.HotSpot with each transfer's accounts as its dbop.HotSpotKeys, the
// workers split between two HotSpots built at one place (two processes),
// so that attempts take the HotSpot's lock tables in the BEGIN's round trip
// (pgxdb's BeginLocked) while the primary dies. A long run.
func TestPGFailover(t *testing.T) {
	skipUnlessLong(t)
	script := testdb.ClusterScript(t)
	for _, hot := range []bool{false, true} {
		name := "postgres: kill the primary, promote the standby"
		if hot {
			name += ", through a HotSpot with keys in two processes"
		}
		t.Run(name, func(t *testing.T) { pgFailover(t, script, name, hot) })
	}
}

func pgFailover(t *testing.T, script, name string, hot bool) {
	wholeAround(t, script, "pgha")
	const workers, accounts = 8, 8
	// locks counts the statements that took the HotSpot's lock with a
	// lock per key once the primary was killed.
	locks := &keyLockCount{}
	pool := openPGTraced(t, workers+2, locks)
	b := createPGBank(t, pool, accounts)
	before, _, err := serverPort(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	// Two HotSpots built at one place stand for two processes.
	var hots [2]dbop.Decorator
	if hot {
		if err := pgxdb.CreateHotSpotLocks(t.Context(), pool); err != nil {
			t.Fatal(err)
		}
		for i := range hots {
			hots[i] = dbop.HotSpot()
		}
	}
	st := newRetryStats()
	idempotent := func(w int) bool { return w%2 == 1 }
	warmup := 2 * time.Second
	res := bankRun{
		name: name, workers: workers, accounts: accounts,
		idempotent: idempotent,
		// An idempotent worker's retry is dbop.Idempotent; the others find
		// out what became of a COMMIT whose answer was lost with
		// pgxdb.ResolveCommit, and report what stays unknown.
		transfer: func(ctx context.Context, w int, tr transfer) error {
			opts := []dbop.RetryOption{dbop.MaxAttempts(maxAttempts), dbop.MaxElapsed(maxElapsed), dbop.OnRetry(st.onRetry)}
			var txOpts []pgxdb.TxOption
			if idempotent(w) {
				opts = append(opts, dbop.Idempotent())
			} else {
				txOpts = append(txOpts, pgxdb.ResolveCommit())
			}
			retry, timeout := dbop.WithRetry(backoff, opts...), dbop.WithTimeout(attemptTimeout)
			pipeline := []dbop.Decorator{retry, timeout}
			if hot {
				// SERIALIZABLE: transfers of the same accounts conflict
				// (40001) besides waiting for each other, so the
				// HotSpots keep limiting and take their lock with a
				// lock per key while the primary dies (checked below).
				txOpts = append(txOpts, pgxdb.Isolation(pgx.Serializable))
				ctx = dbop.HotSpotKeys(ctx, int64(tr.src), int64(tr.dst))
				pipeline = []dbop.Decorator{retry, hots[w/(workers/2)], timeout}
			}
			_, err := pgxdb.Do(pool, b.relative(tr, idempotent(w)), txOpts...).With(pipeline...).Run(scopes.OnCommitResolved(ctx, st.onResolved))
			return err
		},
		warmup: warmup, before: 10 * time.Second, after: 10 * time.Second,
		fault: func(ctx context.Context, m *marks) error {
			m.inject("kill the primary (pg_ctl stop -m immediate)")
			locks.faulted.Store(true)
			if _, err := clusterScript(ctx, script, "node", "pgha", "primary", "kill"); err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
			m.note("promote the standby")
			if _, err := clusterScript(ctx, script, "node", "pgha", "standby", "promote"); err != nil {
				return err
			}
			m.end("the standby is the primary")
			return nil
		},
		stats: st,
	}.run(t)
	after, standby, err := serverPort(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: the pool reached port %d before, port %d after (in recovery: %v)", name, before, after, standby)
	if after == before || standby {
		t.Errorf("after the promotion the pool reached port %d (in recovery: %v), before it %d: want the promoted standby", after, standby, before)
	}
	tl := verifyBank(t, name, res.outcomes, b.read(t, pool, accounts), st)
	report(t, name, res, measure(res, warmup), tl, st)
	if hot {
		n := locks.n.Load()
		t.Logf("%s: %d transactions took the HotSpot's lock with a lock per key after the primary was killed", name, n)
		if n == 0 {
			t.Errorf("no transaction took the HotSpot's lock with a lock per key after the primary was killed: the variant did not test what it names")
		}
	}
}

// keyLockCount is a pgx.QueryTracer that counts, once faulted is set, the
// statements that take a HotSpot's lock in the shared mode of an attempt
// with keys (in pgxdb's BEGIN round trip).
type keyLockCount struct {
	faulted atomic.Bool
	n       atomic.Int64
}

func (c *keyLockCount) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if c.faulted.Load() && strings.Contains(data.SQL, "IN "+hotlock.PostgresShareMode+" MODE") {
		c.n.Add(1)
	}
	return ctx
}

func (*keyLockCount) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
