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

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/testdb"
)

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestCrdbTransfer runs the example as main does and checks what it leaves
// behind.
func TestCrdbTransfer(t *testing.T) {
	const workers, transfers = 8, 25
	pool := newPool(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	st, err := run(ctx, pool, workers, transfers, 1, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if st.Committed != workers*transfers || st.Begun != st.Committed+st.Retries {
		t.Errorf("%d committed in %d transactions with %d retries; want %d, one transaction per commit or retry",
			st.Committed, st.Begun, st.Retries, workers*transfers)
	}
	if !strings.HasSuffix(out.String(), "OK: every transfer landed exactly once\n") {
		t.Errorf("output does not end with the check:\n%s", out.String())
	}
	var rows, distinct int64
	if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM example_crdb_transfer_ledger").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != workers*transfers || distinct != rows {
		t.Errorf("ledger: %d rows, %d ids; want %d of each", rows, distinct, workers*transfers)
	}
}

// TestRestartThenNewTransaction forces one serialization failure on a
// transfer from account 1: the test's transaction writes account 1, the
// transfer reads both balances and waits to write account 1, and the test
// commits. On PostgreSQL the restart in place keeps the transaction's
// snapshot and fails with 40001 again; the retry around the transaction
// begins a new one, which commits.
func TestRestartThenNewTransaction(t *testing.T) {
	pool := newPool(t)
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
	if _, err := holder.Exec(ctx, "UPDATE example_crdb_transfer_accounts SET balance = balance WHERE id = 1"); err != nil {
		t.Fatal(err)
	}

	var restarts, retries []string // the SQLSTATE of each
	code := func(err error) string {
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
			return pgErr.Code
		}
		return err.Error()
	}
	done := make(chan error, 1)
	go func() {
		op := transfer(pool, "forced", 1, 2, 10,
			dbop.MaxAttempts(2),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { restarts = append(restarts, code(e.Err)) }),
		).With(dbop.WithRetry(dbop.Constant(0),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retries = append(retries, code(e.Err)) })))
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
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if len(restarts) != 1 || restarts[0] != "40001" || len(retries) != 1 || retries[0] != "40001" {
		t.Errorf("restarts in place %v, new transactions after %v; want one 40001 each", restarts, retries)
	}
	var one, two, ledger int64
	err = pool.QueryRow(ctx, `SELECT (SELECT balance FROM example_crdb_transfer_accounts WHERE id = 1),
		(SELECT balance FROM example_crdb_transfer_accounts WHERE id = 2),
		(SELECT count(*) FROM example_crdb_transfer_ledger WHERE id = 'forced')`).Scan(&one, &two, &ledger)
	if err != nil || one != -10 || two != 10 || ledger != 1 {
		t.Errorf("account 1 %d, account 2 %d, ledger rows %d (err %v); want -10, 10, 1", one, two, ledger, err)
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
