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

// TestGorm runs the example against the test database: every transfer
// commits once, the books balance, and the forced conflict is retried
// exactly once, from BEGIN.
func TestGorm(t *testing.T) {
	dsn := testdb.Postgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, config{DSN: dsn, Workers: 8, Transfers: 15, Accounts: 4}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !rep.Consistent() || rep.Committed != 2+8*15 {
		t.Fatalf("inconsistent: %+v\n%s", rep, out.String())
	}
	if rep.Attempts != rep.Committed+total(rep.Retries) {
		t.Errorf("%d attempts for %d commits and %d retries\n%s", rep.Attempts, rep.Committed, total(rep.Retries), out.String())
	}
	for code := range rep.Retries {
		if code != "40001" {
			t.Errorf("retried on %s; want serialization failures (40001) only\n%s", code, out.String())
		}
	}
	for _, want := range []string{
		"transfers at SERIALIZABLE through GORM",
		// The forced conflict: forced-2's snapshot predates forced-1's
		// commit, so its first attempt fails and the second succeeds.
		"  transfer forced-2, attempt 1: 40001 (retry-transaction); the transaction runs again\n",
		"122 committed, 0 gave up",
		"check: sum of balances 0, 122 transfer records, 0 balances disagree with the records: OK",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "transfer forced-"); n != 1 {
		t.Errorf("the forced conflict was retried %d times, want once:\n%s", n, out.String())
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestRunChecksItsConfig(t *testing.T) {
	if _, err := run(t.Context(), config{}, &bytes.Buffer{}); !errors.Is(err, errNoDSN) {
		t.Errorf("run without a DSN: %v, want errNoDSN", err)
	}
	if _, err := run(t.Context(), config{DSN: "postgres://x", Workers: 1, Transfers: 1, Accounts: 2}, &bytes.Buffer{}); err == nil {
		t.Error("run with 2 accounts: no error; the forced conflict needs 3")
	}
}

// TestMainWithoutDSN runs main in a child process with neither -dsn nor
// DBOP_POSTGRES_DSN: it must say what to set and exit with status 2.
func TestMainWithoutDSN(t *testing.T) {
	if os.Getenv("DBOP_EXAMPLE_RUN_MAIN") == "1" {
		os.Args = os.Args[:1]
		main()
		t.Fatal("main returned without a DSN")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMainWithoutDSN$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, dsnVar+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DBOP_EXAMPLE_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 2 {
		t.Fatalf("main without a DSN: %v, want exit status 2\n%s", err, stderr.String())
	}
	if want := "gorm example: " + errNoDSN.Error(); !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
	}
}
