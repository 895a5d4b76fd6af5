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

	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/testdb"
)

func TestMySQL(t *testing.T) {
	dsn := testdb.MySQL(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, config{DSN: dsn, Workers: 8, Transfers: 20, Accounts: 4}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !rep.Consistent() {
		t.Fatalf("inconsistent: %+v\n%s", rep, out.String())
	}
	if rep.Dialect != sqldb.MySQL && rep.Dialect != sqldb.MariaDB {
		t.Errorf("dialect %v, want mysql or mariadb", rep.Dialect)
	}
	// Phase 1 forces a deadlock on every run (and the victim's retry may
	// meet another).
	if rep.ForcedDeadlocks < 1 {
		t.Errorf("phase 1 retried %d deadlocks, want at least 1\n%s", rep.ForcedDeadlocks, out.String())
	}
	if rep.Connections != 8 {
		t.Errorf("checked %d pooled connections for a leftover setting, want 8", rep.Connections)
	}
	for _, want := range []string{
		"dialect " + rep.Dialect.String() + ", innodb_lock_wait_timeout 2s per attempt",
		"attempt 1: 1213 ER_LOCK_DEADLOCK (retry-transaction); the transaction runs again",
		"162 (162 committed, 0 gave up)",
		"1213 ER_LOCK_DEADLOCK (retry-transaction)\n",
		"0 of 8 pooled connections kept a lock wait timeout",
		"OK: no money created or lost",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMissingDSN(t *testing.T) {
	msg := missingDSN()
	for _, want := range []string{"set " + dsnEnv, "export " + dsnEnv + "='root@tcp("} {
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
