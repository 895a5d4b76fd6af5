package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
	msg := missingDSN()
	for _, want := range []string{"set " + dsnEnv, "export " + dsnEnv + "='postgres://"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missingDSN() = %q, want it to contain %q", msg, want)
		}
	}
	if _, err := run(t.Context(), config{}, &bytes.Buffer{}); err == nil || err.Error() != msg {
		t.Errorf("run without a DSN: err = %v, want %q", err, msg)
	}
}

// TestMainWithoutDSN runs main in a child process with no DSN in its
// environment: it must say what to set and exit with status 2.
func TestMainWithoutDSN(t *testing.T) {
	if os.Getenv("DBOP_EXAMPLE_RUN_MAIN") == "1" {
		main()
		t.Fatal("main returned without a DSN")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMainWithoutDSN$")
	cmd.Env = append(without(os.Environ(), dsnEnv), "DBOP_EXAMPLE_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 2 {
		t.Fatalf("main without %s: %v, want exit status 2\n%s", dsnEnv, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), missingDSN()) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), missingDSN())
	}
}

// without returns env without the variable name.
func without(env []string, name string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			kept = append(kept, kv)
		}
	}
	return kept
}
