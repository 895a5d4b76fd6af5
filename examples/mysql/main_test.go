package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/examples/internal/demo/demotest"
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
	msg := dsnVar.Message()
	for _, want := range []string{"set " + dsnVar.Name, "export " + dsnVar.Name + "='root@tcp("} {
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
