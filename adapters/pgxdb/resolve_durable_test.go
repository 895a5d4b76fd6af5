package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// unresolvedFor reports whether err is an ambiguous commit whose
// resolution failed for reason.
func unresolvedFor(err, reason error) bool {
	amb, ok := errors.AsType[*scopes.AmbiguousCommitError](err)
	return ok && errors.Is(amb.Resolve, reason)
}

// connectRetrying connects to cfg, retrying for up to 30 s while a
// server restarts (after a crash the postmaster may wait 5 s for a
// backend before it kills it), and closes the connection when t ends.
func connectRetrying(t *testing.T, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.ConnectConfig(t.Context(), cfg.Copy())
		if err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s:%d does not accept connections: %w", cfg.Host, cfg.Port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustConnect is connectRetrying for the test's goroutine.
func mustConnect(t *testing.T, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	c, err := connectRetrying(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// poolThrough returns a pool of at most n connections to dsn's server
// through a fault proxy, with edit applied to its configuration.
func poolThrough(t *testing.T, dsn string, n int32, edit func(*pgxpool.Config)) (*faultproxy.Proxy, *pgxpool.Pool) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.Start(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = p.Host(), uint16(atoi(t, p.Port()))
	cfg.ConnConfig.Fallbacks, cfg.ConnConfig.TLSConfig = nil, nil
	cfg.MaxConns = n
	if edit != nil {
		edit(cfg)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return p, pool
}

// A crash-restart (one backend killed: the postmaster ends the others and
// runs crash recovery, restart_after_crash being on) keeps the
// postmaster's start time, and hands out again a transaction id that was
// assigned but never reached the WAL on disk. Here the COMMIT of a
// transaction never reaches the server; before the resolver connects, a
// backend is killed and another client's transaction commits under the
// lost transaction's id. The resolution must not take that commit for the
// lost transaction's: the lost answer stays ambiguous, for another server
// incarnation. The test checks that the fault fired: the same start time
// after the crash, and the id reused.
//
// The private server's WAL writer waits 10 s and its background writer
// writes nothing, so that nothing flushes the lost transaction's WAL
// before the crash; on a busy server a crash between the statement and
// the WAL writer's next flush does the same.
func TestResolveCommitAfterCrashRestartStaysAmbiguous(t *testing.T) {
	dsn := privatePG(t, "wal_writer_delay = '10s'\nbgwriter_lru_maxpages = 0")
	ctx := t.Context()
	direct, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin := mustConnect(t, direct)
	if _, err := admin.Exec(ctx, "CREATE TABLE lost (id int PRIMARY KEY); CREATE TABLE other (id int); CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	victim := admin.PgConn().PID()

	var crash atomic.Bool
	var crashing sync.Mutex // every dial waits until the crash and the other client's commit are over
	var otherXid string
	dialer := &net.Dialer{}
	p, pool := poolThrough(t, dsn, 1, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			crashing.Lock()
			defer crashing.Unlock()
			if crash.CompareAndSwap(true, false) {
				// The resolver is about to connect: crash one backend; the
				// postmaster recovers, and another client commits.
				if err := syscall.Kill(int(victim), syscall.SIGKILL); err != nil {
					t.Errorf("kill %d: %v", victim, err)
				}
				time.Sleep(300 * time.Millisecond)
				c, err := connectRetrying(t, direct)
				if err != nil {
					t.Errorf("the other client: %v", err)
					return dialer.DialContext(ctx, network, addr)
				}
				err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "INSERT INTO other VALUES (1)"); err != nil {
						return err
					}
					return tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&otherXid)
				})
				if err != nil {
					t.Errorf("the other client's transaction: %v", err)
				}
			}
			return dialer.DialContext(ctx, network, addr)
		}
	})
	var startBefore string
	if err := pool.QueryRow(ctx, "SELECT pg_postmaster_start_time()::text").Scan(&startBefore); err != nil {
		t.Fatal(err)
	}

	var lostXid string
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if _, err := tx.Exec(ctx, "INSERT INTO lost VALUES (1)"); err != nil {
			return 0, err
		}
		if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&lostXid); err != nil {
			return 0, err
		}
		p.PartitionBefore([]byte("commit")) // COMMIT never reaches the server
		crash.Store(true)
		return 1, nil
	}, pgxdb.ResolveCommit(), pgxdb.RollbackTimeout(40*time.Second)) // the resolver's dial waits out the recovery
	var res resolutions
	rctx, cancel := context.WithTimeout(scopes.OnCommitResolved(ctx, res.record), 60*time.Second)
	defer cancel()
	_, runErr := op.Run(rctx)

	check := mustConnect(t, direct)
	var rows int
	var startAfter string
	if err := check.QueryRow(ctx, "SELECT (SELECT count(*) FROM lost)::int, pg_postmaster_start_time()::text").Scan(&rows, &startAfter); err != nil {
		t.Fatal(err)
	}
	t.Logf("lost xid %s, other client's xid %s; start time %s -> %s; Run: %v; resolutions %v; rows %d",
		lostXid, otherXid, startBefore, startAfter, runErr, res.list(), rows)
	if startAfter != startBefore || otherXid == "" || otherXid != lostXid {
		t.Fatalf("the fault did not fire: want the same start time after the crash and the lost id reused")
	}
	if rows != 0 {
		t.Fatalf("the lost transaction committed (%d rows): its COMMIT was to be partitioned away", rows)
	}
	if !unresolvedFor(runErr, resolve.ErrOtherServer) {
		t.Errorf("Run = %v, want an ambiguous commit for another server incarnation: the id now names another transaction", runErr)
	}
}

// A primary replicating synchronously acknowledges a COMMIT only once a
// synchronous standby has it; meanwhile pg_xact_status says "in
// progress". A cancel of that wait (pgx's CancelRequest when it closes a
// broken connection or when COMMIT's bound expires, the resolver's own
// pg_terminate_backend) leaves the commit on the primary alone, where
// pg_xact_status says "committed". The resolution must not report such a
// commit: a failover loses it. The private server's synchronous standby
// never connects (a primary cut off from its standbys); each case checks
// that the fault fired: the row committed on the primary.
func TestResolveCommitWithoutStandbyConfirmationStaysAmbiguous(t *testing.T) {
	dsn := privatePG(t, "synchronous_standby_names = 'ghost_standby'")
	adminCfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	adminCfg.RuntimeParams["synchronous_commit"] = "local" // the admin's commits wait for no standby
	admin := mustConnect(t, adminCfg)
	if _, err := admin.Exec(t.Context(), "CREATE TABLE items (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		id   int
		lose func(p *faultproxy.Proxy) // arms the fault inside fn
	}{
		{"answer lost while waiting", 1, func(p *faultproxy.Proxy) {
			p.CutAfter([]byte("commit"))
			go func() { time.Sleep(300 * time.Millisecond); p.DropAll() }()
		}},
		{"COMMIT's bound expired while waiting", 2, func(*faultproxy.Proxy) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, pool := poolThrough(t, dsn, 2, nil)
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				_, err := tx.Exec(ctx, "INSERT INTO items VALUES ("+strconv.Itoa(c.id)+")")
				c.lose(p)
				return 1, err
			}, pgxdb.ResolveCommit(), pgxdb.RollbackTimeout(time.Second))
			var res resolutions
			start := time.Now()
			_, runErr := op.Run(scopes.OnCommitResolved(t.Context(), res.record))
			var rows int
			if err := admin.QueryRow(t.Context(), "SELECT count(*)::int FROM items WHERE id = $1", c.id).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			t.Logf("after %v: Run: %v; resolutions %v; rows on the primary %d", time.Since(start), runErr, res.list(), rows)
			if rows != 1 {
				t.Fatalf("the fault did not fire: want the row committed on the primary alone, found %d", rows)
			}
			if !unresolvedFor(runErr, resolve.ErrNotReplicated) {
				t.Errorf("Run = %v, want an ambiguous commit that no standby confirmed", runErr)
			}
		})
	}
}

// On a primary whose synchronous standby is connected, a commit whose
// answer is lost is resolved as committed: the resolver's own commit,
// which waits for the standby past the lost one, is confirmed.
func TestResolveCommitReplicatedSynchronouslyIsCommitted(t *testing.T) {
	dsn := testdb.PGFailover(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin := mustConnect(t, cfg)
	var names string
	if err := admin.QueryRow(t.Context(), "SELECT current_setting('synchronous_standby_names') || '/' || (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))").Scan(&names); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(names, "/") || strings.HasSuffix(names, "/0") {
		t.Fatalf("the primary %s:%d replicates to no synchronous standby (%s)", cfg.Host, cfg.Port, names)
	}
	table := resolveTable("syncrep")
	if _, err := admin.Exec(t.Context(), "DROP TABLE IF EXISTS "+table+"; CREATE TABLE "+table+" (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
	host := cfg.Host + ":" + strconv.Itoa(int(cfg.Port))
	p, pool := poolThrough(t, "postgres://postgres@"+host+"/"+cfg.Database+"?sslmode=disable", 2, nil)
	var runs int
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES (1)")
		p.CutAfter([]byte("commit"))
		return 7, err
	}, pgxdb.ResolveCommit())
	var res resolutions
	got, err := op.With(dbop.WithRetry(retryAtOnce)).Run(scopes.OnCommitResolved(t.Context(), res.record))
	t.Logf("Run = %d, %v; runs %d; cuts %d; resolutions %v (%s)", got, err, runs, p.Cuts(), res.list(), names)
	if p.Cuts() != 1 {
		t.Fatalf("cuts %d, want 1", p.Cuts())
	}
	if err != nil || got != 7 || runs != 1 || len(res.list()) != 1 || res.list()[0] != scopes.Committed {
		t.Errorf("Run = %d, %v after %d runs, resolutions %v; want 7, nil, one run, resolved committed", got, err, runs, res.list())
	}
}

// The server's identity is read in the transaction and on the resolver's
// connection; a transaction that changed its session's TimeZone and
// DateStyle is still on the same server, and its lost answer is resolved.
func TestResolveCommitAfterSetTimeZoneIsTheSameServer(t *testing.T) {
	p, pool := proxied(t)
	admin := newPool(t, 1)
	table := resolveTable("tz")
	createTable(t, admin, table, "id int PRIMARY KEY, n int NOT NULL", "INSERT INTO "+table+" VALUES (1, 0)")
	var runs int
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'Asia/Tokyo'; SET LOCAL DateStyle = 'SQL, DMY'"); err != nil {
			return 0, err
		}
		_, err := tx.Exec(ctx, "UPDATE "+table+" SET n = n + 1 WHERE id = 1")
		p.CutAfter([]byte("commit"))
		return 42, err
	}, pgxdb.ResolveCommit())
	var res resolutions
	got, err := op.With(dbop.WithRetry(retryAtOnce)).Run(scopes.OnCommitResolved(t.Context(), res.record))
	n := queryInt(t, admin, "SELECT n FROM "+table+" WHERE id = 1")
	t.Logf("Run = %d, %v; runs %d; cuts %d; resolutions %v; n = %d", got, err, runs, p.Cuts(), res.list(), n)
	if p.Cuts() != 1 || n != 1 {
		t.Fatalf("cuts %d, n = %d: want the answer of a COMMIT that committed cut once", p.Cuts(), n)
	}
	if err != nil || got != 42 || runs != 1 || len(res.list()) != 1 || res.list()[0] != scopes.Committed {
		t.Errorf("Run = %d, %v after %d runs, resolutions %v; want 42, nil, one run, resolved committed", got, err, runs, res.list())
	}
}
