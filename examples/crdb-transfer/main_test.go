package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/examples/internal/demo/demotest"
	"github.com/dbop-go/dbop/internal/testdb"
)

func TestCrdbTransfer(t *testing.T) {
	dsn := testdb.Postgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, config{DSN: dsn, Workers: 8, Transfers: 25, Accounts: 4, Restarts: 1}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !rep.Consistent() {
		t.Fatalf("inconsistent: %+v\n%s", rep, out.String())
	}
	// Phase 1 forces one serialization failure. On PostgreSQL the in-place
	// restart reads the same snapshot and fails again, so the retry around
	// InTx must begin a new transaction.
	if rep.ForcedRestarts != 1 || rep.ForcedHealed != 0 || rep.ForcedRetries != 1 {
		t.Errorf("phase 1: %d restarts (%d healed), %d retries of the whole transaction; want 1 (0), 1\n%s",
			rep.ForcedRestarts, rep.ForcedHealed, rep.ForcedRetries, out.String())
	}
	if got := rep.Retries["40001 serialization_failure (retry-transaction)"]; got < 1 {
		t.Errorf("%d 40001 retries, want at least 1\n%s", got, out.String())
	}
	for _, want := range []string{
		"cockroach_restart with up to 1 in-place restart(s) per transaction",
		"transfer forced-2: 40001; ROLLBACK TO SAVEPOINT cockroach_restart, fn runs again in the same transaction (restart 1)",
		"transfer forced-2, attempt 1: 40001 serialization_failure (retry-transaction); rolled back, a new transaction begins",
		"2 transfers committed: 3 transactions begun, 1 in-place restart(s), 0 of them healed",
		"202 (202 committed, 0 gave up)",
		"(0 missing, 0 unexpected), 0 balances disagree with the ledger",
		"OK: balances sum to zero, the ledger holds exactly the committed transfers",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMissingDSN(t *testing.T) {
	msg := dsnVar.Message()
	for _, want := range []string{"set " + dsnVar.Name, "export " + dsnVar.Name + "='postgres://"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Message() = %q, want it to contain %q", msg, want)
		}
	}
	if _, err := run(t.Context(), config{}, &bytes.Buffer{}); err == nil || err.Error() != msg {
		t.Errorf("run without a DSN: err = %v, want %q", err, msg)
	}
}

// TestMainWithoutDSN runs main in a child process with no DSN in its
// environment: it must say what to set and exit with status 2.
func TestMainWithoutDSN(t *testing.T) {
	demotest.CheckMainWithoutDSN(t, dsnVar, main)
}
