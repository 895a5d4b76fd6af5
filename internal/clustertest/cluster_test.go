package clustertest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LongEnv, when set, runs the long fault runs (a paused Galera node, a
// PostgreSQL failover) and the long version of the kill run.
const LongEnv = "DBOP_CLUSTER_LONG"

// long reports whether the long runs were asked for.
func long() bool { return os.Getenv(LongEnv) != "" }

// skipUnlessLong skips a run that is not part of go test work.
func skipUnlessLong(t *testing.T) {
	t.Helper()
	if !long() {
		t.Skipf("a long fault run, not part of go test work: %s=1 runs it (docs/clusters.md)", LongEnv)
	}
}

// clusterScript runs scripts/clusters.sh with args and returns its
// standard output.
func clusterScript(ctx context.Context, path string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", path, strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// wholeAround makes sure the cluster is whole before t injects its fault
// (a node left out of the group by an earlier test would turn the fault
// into a lost quorum) and again when t ends, whatever the test did to it,
// so the next test finds every node up. When t failed, the nodes' states
// and the ends of their logs go into its output first.
func wholeAround(t *testing.T, script, which string) {
	t.Helper()
	repair := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		_, err := clusterScript(ctx, script, "repair", which)
		return err
	}
	if err := repair(); err != nil {
		t.Fatalf("the %s cluster is not whole before the fault: %v", which, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := clusterScript(ctx, script, "diagnose", which)
			cancel()
			t.Logf("the %s cluster as the test failed (%v):\n%s", which, err, out)
		}
		if err := repair(); err != nil {
			t.Errorf("repair the %s cluster: %v", which, err)
		}
	})
}

// runID names a run's database or tables.
func runID() string { return fmt.Sprintf("%d_%06x", os.Getpid(), rand.Uint32()&0xffffff) }

// galera is the Galera cluster as a test sees it: one pool per node on a
// database of the test's own.
type galera struct {
	cfgs   []*mysql.Config // per node, on the test's database
	dbs    []*sql.DB
	dbName string
}

// openGalera creates a database of the test's own on the cluster (DDL
// replicates to every node), opens a pool of maxConns on it per node, and
// drops it when t ends. The pools' dial timeout is one second, so that a
// dead node is found quickly.
func openGalera(t *testing.T, maxConns int) *galera {
	t.Helper()
	dsns := testdb.Galera(t)
	g := &galera{dbName: "dbop_cluster_" + runID()}
	for i, dsn := range dsns {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("%s node %d: %v", testdb.GaleraEnv, i+1, err)
		}
		cfg.Timeout = time.Second
		admin := cfg.Clone()
		cfg.DBName = g.dbName
		g.cfgs = append(g.cfgs, cfg)
		if i == 0 {
			if err := execAll(t.Context(), admin, "CREATE DATABASE `"+g.dbName+"`"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				// Any node will do: the first may be the one a test stopped.
				for _, c := range g.cfgs {
					a := c.Clone()
					a.DBName = ""
					if execAll(ctx, a, "DROP DATABASE IF EXISTS `"+g.dbName+"`") == nil {
						return
					}
				}
				t.Errorf("could not drop the test database %s", g.dbName)
			})
		}
	}
	for _, cfg := range g.cfgs {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(maxConns)
		db.SetMaxIdleConns(maxConns)
		t.Cleanup(func() { db.Close() })
		g.dbs = append(g.dbs, db)
	}
	// The database exists on every node once each has applied the DDL.
	for i, db := range g.dbs {
		waitFor(t, 30*time.Second, fmt.Sprintf("galera node %d has the test database", i+1), func(ctx context.Context) error {
			return db.PingContext(ctx)
		})
	}
	return g
}

// execAll runs statements on a connection of their own.
func execAll(ctx context.Context, cfg *mysql.Config, stmts ...string) error {
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// rotate returns dbs starting at index i: worker i's order of preference.
func rotate[T any](dbs []T, i int) []T {
	i %= len(dbs)
	return append(append([]T(nil), dbs[i:]...), dbs[:i]...)
}

// openPG opens a pgx pool on the multi-host connection string of
// DBOP_TEST_PG_FAILOVER. A connection attempt gives up after a second per
// host, so that a dead primary is passed over quickly.
func openPG(t *testing.T, maxConns int32) *pgxpool.Pool {
	t.Helper()
	return openPGTraced(t, maxConns, nil)
}

// openPGTraced is openPG with the connections' statements traced by
// tracer, if not nil.
func openPGTraced(t *testing.T, maxConns int32, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	dsn := testdb.PGFailover(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("%s: %v", testdb.PGFailoverEnv, err)
	}
	cfg.ConnConfig.ConnectTimeout = time.Second
	cfg.ConnConfig.Tracer = tracer
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// waitFor calls f until it succeeds or limit has passed.
func waitFor(t *testing.T, limit time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting until %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
