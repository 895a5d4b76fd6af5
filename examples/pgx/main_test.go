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

func TestPgx(t *testing.T) {
	dsn := testdb.Postgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cfg := config{DSN: dsn, Workers: 4, Transfers: 10, LockTimeout: 100 * time.Millisecond, DeadlockTimeout: 50 * time.Millisecond}
	rep, err := run(ctx, cfg, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !rep.Consistent() {
		t.Fatalf("inconsistent: %+v\n%s", rep, out.String())
	}
	// Phase 1 forces a deadlock on every run (and the victim's retry may
	// meet another).
	if rep.ForcedDeadlocks < 1 {
		t.Errorf("phase 1 retried %d deadlocks, want at least 1\n%s", rep.ForcedDeadlocks, out.String())
	}
	// Phase 3: two lock timeouts, each retried at the savepoint, inside one
	// run of the outer transaction.
	if got := rep.Retries["55P03 lock_not_available (retry-statement)"]; got != heldAttempts {
		t.Errorf("%d lock timeouts retried at the savepoint, want %d\n%s", got, heldAttempts, out.String())
	}
	if rep.Step.OuterRuns != 1 || rep.Step.StepAttempts != heldAttempts+1 {
		t.Errorf("outer runs %d, step attempts %d; want 1 and %d", rep.Step.OuterRuns, rep.Step.StepAttempts, heldAttempts+1)
	}
	for _, want := range []string{
		"attempt 1: 40P01 deadlock_detected (retry-transaction); the transaction runs again",
		"with lock_timeout 100ms per attempt",
		"step attempt 1: 55P03 lock_not_available (retry-statement) → rolled back to the savepoint",
		"step attempt 3: 1 widget reserved",
		"outer transaction committed after 1 run; lock_timeout in it 0 before the step, 0 after",
		"42 (42 committed, 0 gave up)",
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
