// Package faultgen is the harness of dbop's fault-injection suites: the
// money-transfer workload, the injectors of faults on PostgreSQL and
// MariaDB, the verification of what every caller was told against the
// final state, the fault minimums, and the generator of pipelines drawn
// from a seed out of the public decorators and options. It lives outside
// test files so that the suites of other modules can run it:
// internal/faulttest through pgxdb, sqldb and SQLite, and
// adapters/gormdb through GORM (TestFaultGeneratedGORMPostgres,
// TestFaultGeneratedGORMMariaDB), whose module the root module must not
// require.
//
// A generated suite gives RunGenerated a Setup, which prepares one round
// of a backend: its tables (NewPGRound, NewMyRound), the workers' pools,
// and a Backend whose InTx runs a generated leg's GenTx in the adapter's
// transaction. RunGenerated draws each worker's pipeline (genPlan), runs
// the workload while the injector causes faults, and checks the outcome
// with Verify and CheckFaults. The environment variables DurationEnv,
// SeedEnv and RoundsEnv set a run's duration, replay its seed and repeat
// it; every run logs its seed.
//
// The package links the drivers of pgx, go-sql-driver/mysql and the
// adapters over them, all of which the root module requires anyway; it
// links neither GORM nor SQLite (internal/faulttest keeps SQLite's
// injector).
package faultgen
