package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/testdb"
)

// newPool connects to the test database with deadlock_timeout set on each
// connection (kept at the server's value for a role that may not set it).
func newPool(t *testing.T, deadlockTimeout string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET deadlock_timeout = '"+deadlockTimeout+"'")
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42501" {
			return nil // insufficient_privilege
		}
		return err
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestPgx runs the example as main does, with deadlocks found after 50ms
// instead of 1s, and checks what it leaves behind.
func TestPgx(t *testing.T) {
	const workers, transfers = 4, 10
	pool := newPool(t, "50ms")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	st, err := run(ctx, pool, workers, transfers, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	retries := 0
	for _, n := range st.Retries {
		retries += n
	}
	if st.Committed != workers*transfers || st.Attempts != st.Committed+int64(retries) {
		t.Errorf("%d committed in %d attempts with %d retries; want %d, one attempt per commit or retry",
			st.Committed, st.Attempts, retries, workers*transfers)
	}
	if retries != st.Retries["40P01"] {
		t.Errorf("retries by SQLSTATE %v: want deadlocks only", st.Retries)
	}
	// The step: one lock timeout, rolled back to the savepoint and retried,
	// inside one run of the order's transaction.
	if st.OrderRuns != 1 || st.StepAttempts != 2 {
		t.Errorf("order-1: %d runs, %d step attempts; want 1, 2", st.OrderRuns, st.StepAttempts)
	}
	if !strings.HasSuffix(out.String(), "OK: every transfer landed exactly once, and order-1 kept its work\n") {
		t.Errorf("output does not end with the check:\n%s", out.String())
	}

	var rows, distinct int64
	if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM example_pgx_ledger").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != workers*transfers || distinct != rows {
		t.Errorf("ledger: %d rows, %d ids; want %d of each", rows, distinct, workers*transfers)
	}
	// SET LOCAL lock_timeout ended with its transaction: no pooled
	// connection kept it.
	for _, c := range pool.AcquireAllIdle(ctx) {
		var same bool
		err := c.QueryRow(ctx, "SELECT setting = reset_val FROM pg_settings WHERE name = 'lock_timeout'").Scan(&same)
		c.Release()
		if err != nil || !same {
			t.Errorf("a pooled connection kept a lock_timeout (err %v)", err)
		}
	}
}

// TestTransferRetriesADeadlock closes a deadlock with one of the example's
// transfers on every run: the test's own transaction holds account B, the
// transfer A→B debits A and waits for B, and the test then asks for A.
// PostgreSQL fails the transaction that has waited deadlock_timeout first,
// the transfer, and its retry runs it again from BEGIN.
func TestTransferRetriesADeadlock(t *testing.T) {
	pool := newPool(t, "1s")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := setup(ctx, pool); err != nil {
		t.Fatal(err)
	}
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, "UPDATE example_pgx_accounts SET balance = balance WHERE id = 'B'"); err != nil {
		t.Fatal(err)
	}

	// The retry waits until the test has taken A: PostgreSQL does not queue
	// a new transaction behind one already waiting for a row, so a retry at
	// once could take A first and close a second cycle.
	tookA := make(chan struct{})
	release := sync.OnceFunc(func() { close(tookA) })
	defer release()
	var retried []string
	done := make(chan error, 1)
	go func() {
		op := transfer(pool, "forced", "A", "B", 10).With(dbop.WithRetry(dbop.Constant(0),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				retried = append(retried, sqlstate(e.Err))
				<-tookA
			})))
		_, err := op.Run(ctx)
		done <- err
	}()
	for blocked := false; !blocked; {
		err := pool.QueryRow(ctx, "SELECT count(*) > 0 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
			holder.Conn().PgConn().PID()).Scan(&blocked)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := holder.Exec(ctx, "UPDATE example_pgx_accounts SET balance = balance WHERE id = 'A'"); err != nil {
		t.Fatalf("the test's transaction, not the transfer, was the deadlock's victim: %v", err)
	}
	release()
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if len(retried) != 1 || retried[0] != "40P01" {
		t.Errorf("retried %v, want one 40P01", retried)
	}
	var a, b, ledger int64
	err = pool.QueryRow(ctx, `SELECT (SELECT balance FROM example_pgx_accounts WHERE id = 'A'),
		(SELECT balance FROM example_pgx_accounts WHERE id = 'B'),
		(SELECT count(*) FROM example_pgx_ledger WHERE id = 'forced')`).Scan(&a, &b, &ledger)
	if err != nil || a != -10 || b != 10 || ledger != 1 {
		t.Errorf("A %d, B %d, ledger rows %d (err %v); want -10, 10, 1", a, b, ledger, err)
	}
}

// TestMainWithoutDSN runs main in a child process without DBOP_POSTGRES_DSN:
// it must say what to set and exit with status 2.
func TestMainWithoutDSN(t *testing.T) {
	if os.Getenv("DBOP_EXAMPLE_RUN_MAIN") == "1" {
		os.Args = os.Args[:1]
		main()
		t.Fatal("main returned without a DSN")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMainWithoutDSN$")
	cmd.Env = append(os.Environ(), "DBOP_EXAMPLE_RUN_MAIN=1", "DBOP_POSTGRES_DSN=")
	out, err := cmd.CombinedOutput()
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 2 {
		t.Fatalf("main without a DSN: %v, want exit status 2\n%s", err, out)
	}
	if want := "export DBOP_POSTGRES_DSN='postgres://"; !strings.Contains(string(out), want) {
		t.Errorf("main without a DSN printed %q, want it to contain %q", out, want)
	}
}
