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

func TestGorm(t *testing.T) {
	dsn := testdb.Postgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, config{DSN: dsn, Workers: 8, Transfers: 15, Accounts: 4}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !rep.Consistent() {
		t.Fatalf("inconsistent: %+v\n%s", rep, out.String())
	}
	// Phase 1 forces exactly one serialization failure: the second writer's
	// snapshot predates the first one's commit.
	if rep.ForcedConflicts != 1 {
		t.Errorf("phase 1 retried %d serialization failures, want 1\n%s", rep.ForcedConflicts, out.String())
	}
	for _, want := range []string{
		"through GORM, transfers at SERIALIZABLE",
		"transfer forced-2, attempt 1: 40001 serialization_failure (retry-transaction); the transaction runs again",
		"2 transfers committed, 3 attempts",
		"122 (122 committed, 0 gave up)",
		"40001 serialization_failure (retry-transaction)\n",
		"122 transfer records for 122 commits, 0 balances disagree",
		"OK: no money created or lost",
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
