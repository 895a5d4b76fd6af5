package faulttest

import (
	"testing"

	"github.com/dbop-go/dbop/internal/faultgen"
)

// TestFaultGeneratedPostgresPgx runs the transfer workload on PostgreSQL
// through pgxdb, each worker's pipeline and transfer shape drawn from the
// run's seed out of the public decorators and options (see faultgen.RunGenerated), while
// the injector of TestFaultPostgresTransfers runs. faultgen.Verify checks what each
// caller was told against the ledger and the balances; the log names every
// worker's pipeline, and on failure the seed to replay it with.
func TestFaultGeneratedPostgresPgx(t *testing.T) { faultgen.RunGenerated(t, faultgen.SetupPostgresPgx) }

// TestFaultGeneratedPostgresSQL is TestFaultGeneratedPostgresPgx through
// sqldb on pgx's database/sql driver.
func TestFaultGeneratedPostgresSQL(t *testing.T) { faultgen.RunGenerated(t, faultgen.SetupPostgresSQL) }

// TestFaultGeneratedMariaDB is TestFaultGeneratedPostgresPgx on MariaDB
// through sqldb, with the injector of TestFaultMariaDBTransfers.
func TestFaultGeneratedMariaDB(t *testing.T) { faultgen.RunGenerated(t, faultgen.SetupMariaDB) }
