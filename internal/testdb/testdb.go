// Package testdb gives integration tests their database connection strings.
//
// A test asks for a backend with [Postgres] or [MySQL], or for one of the
// clusters that scripts/clusters.sh starts with [Galera], [PGFailover] and
// [ClusterScript]. When the variable naming that backend is unset the test
// is skipped with a message naming the variable, so `go test work` passes on
// a machine with no database. When DBOP_TEST_REQUIRE is set (CI sets it), a
// missing variable fails the test instead: in CI a skipped integration test
// is a failure.
//
// [Hold] holds an operation inside its transaction until the test lets it
// commit, for tests of which transactions wait for which.
package testdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Environment variables read by this package.
const (
	PostgresEnv = "DBOP_TEST_POSTGRES" // a pgx connection string, e.g. postgres://postgres@127.0.0.1:5432/dbop_test?sslmode=disable
	MySQLEnv    = "DBOP_TEST_MYSQL"    // a go-sql-driver DSN, e.g. root@tcp(127.0.0.1:3306)/dbop_test
	RequireEnv  = "DBOP_TEST_REQUIRE"  // when set, a missing database fails the test instead of skipping it

	// GaleraEnv lists the nodes of a MariaDB Galera cluster, go-sql-driver
	// DSNs separated by commas, one per node.
	GaleraEnv = "DBOP_TEST_GALERA"
	// PGFailoverEnv is a pgx multi-host connection string over a PostgreSQL
	// primary and its standby, with target_session_attrs=read-write.
	PGFailoverEnv = "DBOP_TEST_PG_FAILOVER"
	// ClusterScriptEnv is the path of scripts/clusters.sh, which kills,
	// pauses, resumes, restarts and promotes the clusters' nodes.
	ClusterScriptEnv = "DBOP_CLUSTER_SCRIPT"
)

// `eval "$(scripts/clusters.sh env)"` sets GaleraEnv, PGFailoverEnv and
// ClusterScriptEnv.

// Postgres returns the PostgreSQL connection string, or skips tb (fails it
// under DBOP_TEST_REQUIRE) when none is configured.
func Postgres(tb testing.TB) string {
	tb.Helper()
	return lookup(tb, PostgresEnv, "PostgreSQL")
}

// MySQL returns the MySQL/MariaDB DSN, or skips tb (fails it under
// DBOP_TEST_REQUIRE) when none is configured.
func MySQL(tb testing.TB) string {
	tb.Helper()
	return lookup(tb, MySQLEnv, "MySQL/MariaDB")
}

// Galera returns the DSNs of the Galera cluster's nodes, in order, or skips
// tb (fails it under DBOP_TEST_REQUIRE) when none is configured.
func Galera(tb testing.TB) []string {
	tb.Helper()
	list := lookup(tb, GaleraEnv, "Galera cluster")
	var dsns []string
	for dsn := range strings.SplitSeq(list, ",") {
		if dsn = strings.TrimSpace(dsn); dsn != "" {
			dsns = append(dsns, dsn)
		}
	}
	if len(dsns) < 2 {
		tb.Fatalf("%s=%q: want the DSNs of at least two nodes, separated by commas", GaleraEnv, list)
	}
	lockClusters(tb)
	return dsns
}

// PGFailover returns the multi-host connection string of the PostgreSQL
// primary and standby, or skips tb (fails it under DBOP_TEST_REQUIRE) when
// none is configured.
func PGFailover(tb testing.TB) string {
	tb.Helper()
	dsn := lookup(tb, PGFailoverEnv, "PostgreSQL failover pair")
	lockClusters(tb)
	return dsn
}

// ClusterScript returns the path of the script that drives the clusters'
// nodes, or skips tb (fails it under DBOP_TEST_REQUIRE) when none is
// configured. A test that drives the nodes holds the cluster lock from
// here until it ends, so that the repair it runs before and after its
// fault (after the lock taken by [Galera] or [PGFailover] is released,
// cleanups running last-in first-out) happens while no other package's
// test uses the clusters.
func ClusterScript(tb testing.TB) string {
	tb.Helper()
	script := lookup(tb, ClusterScriptEnv, "cluster fault")
	lockClusters(tb)
	return script
}

// SQLiteFile returns the path of a new database file in a temporary
// directory removed when tb ends. SQLite is embedded: it always runs.
func SQLiteFile(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "dbop.sqlite")
}

// Required reports whether DBOP_TEST_REQUIRE is set.
func Required() bool { return os.Getenv(RequireEnv) != "" }

func lookup(tb testing.TB, env, name string) string {
	tb.Helper()
	if dsn := os.Getenv(env); dsn != "" {
		return dsn
	}
	if Required() {
		tb.Fatalf("%s is required (%s is set) but %s is empty", name, RequireEnv, env)
	}
	tb.Skipf("%s integration test: set %s to run it", name, env)
	return ""
}

// NoTimeZoneTables ends tb, whose MySQL or MariaDB server has no time zone
// tables (a test across a daylight saving change needs a named zone):
// skipped, or failed under DBOP_TEST_REQUIRE, where a skip would hide the
// test. .ci/run loads the tables.
func NoTimeZoneTables(tb testing.TB) {
	tb.Helper()
	const load = "mariadb-tzinfo-to-sql /usr/share/zoneinfo | mariadb -uroot mysql (mysql_tzinfo_to_sql on MySQL)"
	if Required() {
		tb.Fatalf("the server has no time zone tables, which this test needs (%s is set): load them with %s", RequireEnv, load)
	}
	tb.Skipf("integration test needs the server's time zone tables: load them with %s", load)
}
