// Package faulttest is the fault-injection suite of dbop: a money-transfer
// workload run through the adapters against real PostgreSQL and MariaDB
// while an injector kills connections, cancels statements, holds row locks
// and cuts connections right after COMMIT reached the server. The suite
// checks, with a fresh connection once everything has stopped, that
// nothing was lost and nothing applied twice: balances sum to zero, every
// acknowledged transfer is in the ledger exactly once, every transfer in the
// ledger whose call failed was reported ambiguous, and replaying the ledger
// gives every account's balance. Each suite also checks that every kind of
// fault it injects fired at least as often as its table of minimums says
// (faultgen.PGFaultMinimums, faultgen.MyFaultMinimums), so that an injector that stopped
// reaching its targets fails the suite instead of testing nothing.
//
// TestFaultGenerated* run the same workload with each worker's pipeline
// and transfer shape drawn from the run's seed out of the public
// decorators and options (internal/faultgen): a Then or All of a debit and
// a credit transaction, savepoint steps with retries of their own, fallbacks,
// HotSpot, Bulkheads, timeouts and classifiers on either side of the retry.
// TestFaultGeneratedSQLite runs them on SQLite (modernc.org/sqlite) with
// the faults SQLite has — the write lock held and writes committed by
// another connection (SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT), statements
// interrupted and transfers cancelled through their context — and, needing
// no server, always runs
// (sqlite_test.go, liteFaultMinimums).
//
// The workload, the injectors of PostgreSQL and MariaDB, Verify, the fault
// minimums and the pipeline generator are in internal/faultgen, which the
// GORM adapter's generated suites run too; this package keeps the tests
// and SQLite's injector. The package has tests only; `go test -run Fault
// ./...` runs exactly the suite. See internal/faultgen for the environment
// variables that set its duration and replay an injector schedule.
package faulttest
