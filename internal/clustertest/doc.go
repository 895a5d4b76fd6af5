// Package clustertest proves dbop on the two distributed setups that
// scripts/clusters.sh starts beside the main servers: a three-node MariaDB
// Galera cluster and a PostgreSQL primary with a streaming standby
// (docs/clusters.md).
//
// The tests read the clusters' addresses from DBOP_TEST_GALERA and
// DBOP_TEST_PG_FAILOVER and drive the nodes — kill -9, SIGSTOP and SIGCONT,
// restart, promote — through the script named by DBOP_CLUSTER_SCRIPT;
// `eval "$(scripts/clusters.sh env)"` sets all three. Without them the
// tests skip, and fail under DBOP_TEST_REQUIRE, as the other integration
// tests do.
//
// Under `go test work`, as in CI, run: a smoke test per cluster (each
// node reachable, Galera's certification conflicts retried whole, pgx's
// multi-host connection string landing on the primary), the Galera
// lost-update trap and its correct alternatives, PostgreSQL SERIALIZABLE
// as the stand-in for CockroachDB, and one fault run: a bank workload while
// a Galera node is killed with kill -9 and restarted. With
// DBOP_CLUSTER_LONG=1 the kill run is longer, and more fault runs join
// it: a Galera node stopped with SIGSTOP past the group's suspect timeout,
// then resumed; a Galera node that loses quorum while a transaction is
// open, whose refused COMMIT must not be committed later on a pooled
// connection (docs/backends.md §7.11); and a PostgreSQL primary killed and
// its standby promoted. docs/clusters.md has their commands and tables.
//
// After each fault run the suite checks, on every node, that balances sum
// to zero, that every account equals its ledger's net, that every
// acknowledged transfer is in the ledger exactly once, that no transfer
// reported failed is there, and it reports how the ambiguous ones ended.
// It measures goodput (acknowledged transfers per second) before, during
// and after the fault, and the time until it recovers.
//
// Tests that damage a cluster repair it before they end (scripts/clusters.sh
// repair), so the next test, or the next run, finds every node up.
//
// The package has tests only.
package clustertest
