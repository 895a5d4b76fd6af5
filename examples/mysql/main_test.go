package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/internal/testdb"
)

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMySQL runs the example as main does and checks what it leaves behind.
func TestMySQL(t *testing.T) {
	const workers, transfers = 8, 20
	db := openDB(t)
	db.SetMaxIdleConns(workers) // keep every connection the transfers used, to check them
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	st, err := run(ctx, db, workers, transfers, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}

	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	want := mysqldb.MySQL
	if strings.Contains(version, "MariaDB") {
		want = mysqldb.MariaDB
	}
	if st.Dialect.Name != want.Name || st.Dialect.Family != want.Family {
		t.Errorf("dialect %s for server %s, want %s", st.Dialect, version, want)
	}
	retries := 0
	for _, n := range st.Retries {
		retries += n
	}
	if st.Committed != workers*transfers || st.Attempts != st.Committed+int64(retries) {
		t.Errorf("%d committed in %d attempts with %d retries; want %d, one attempt per commit or retry",
			st.Committed, st.Attempts, retries, workers*transfers)
	}
	if !strings.HasSuffix(out.String(), "OK: every transfer landed exactly once\n") {
		t.Errorf("output does not end with the check:\n%s", out.String())
	}

	var rows, distinct int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT id) FROM example_mysql_ledger").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != workers*transfers || distinct != rows {
		t.Errorf("ledger: %d rows, %d ids; want %d of each", rows, distinct, workers*transfers)
	}
	// No pooled connection kept an attempt's innodb_lock_wait_timeout: hold
	// them all at once, so that each is a different one.
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range workers {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		var same bool
		if err := c.QueryRowContext(ctx, "SELECT @@SESSION.innodb_lock_wait_timeout = @@GLOBAL.innodb_lock_wait_timeout").Scan(&same); err != nil {
			t.Fatal(err)
		}
		if !same {
			t.Errorf("pooled connection %d kept a lock wait timeout", len(held))
		}
	}
}

// TestTransferRetriesADeadlock closes a deadlock with one of the example's
// transfers on every run: the test's own transaction writes account 2, the
// transfer 1→2 locks 1 and waits for 2, and the test then writes 1. InnoDB
// rolls back the transaction that did less, the transfer, and its retry runs
// it again from START TRANSACTION.
func TestTransferRetriesADeadlock(t *testing.T) {
	db := openDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := setup(ctx, db); err != nil {
		t.Fatal(err)
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	d := mysqldb.MySQL
	if strings.Contains(version, "MariaDB") {
		d = mysqldb.MariaDB
	}
	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	// Writing accounts 3 and 4 too makes the test's transaction the heavier
	// one, which InnoDB does not choose as a deadlock's victim. One row per
	// statement: an UPDATE that scans the table would lock account 1 too.
	for _, id := range []int{2, 3, 4} {
		if _, err := holder.ExecContext(ctx, "UPDATE example_mysql_accounts SET balance = balance + 1 WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
	}

	tookOne := make(chan struct{}) // the retry waits for the test to hold account 1
	release := sync.OnceFunc(func() { close(tookOne) })
	defer release()
	var retried []uint16
	done := make(chan error, 1)
	go func() {
		op := transfer(db, d, "forced", 1, 2, 10).With(dbop.WithRetry(dbop.Constant(0),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				retried = append(retried, errorNumber(e.Err))
				<-tookOne
			})))
		_, err := op.Run(ctx)
		done <- err
	}()
	// InnoDB refreshes INNODB_TRX only when it was not read in the last
	// 100ms: poll more slowly than that.
	for waiting := false; !waiting; {
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) > 0 FROM information_schema.INNODB_TRX
			WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE '%example_mysql_accounts%'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := holder.ExecContext(ctx, "UPDATE example_mysql_accounts SET balance = balance + 1 WHERE id = 1"); err != nil {
		t.Fatalf("the test's transaction, not the transfer, was the deadlock's victim: %v", err)
	}
	release()
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if len(retried) != 1 || retried[0] != 1213 {
		t.Errorf("retried %v, want one 1213", retried)
	}
	var one, two, ledger int64
	err = db.QueryRowContext(ctx, `SELECT (SELECT balance FROM example_mysql_accounts WHERE id = 1),
		(SELECT balance FROM example_mysql_accounts WHERE id = 2),
		(SELECT COUNT(*) FROM example_mysql_ledger WHERE id = 'forced')`).Scan(&one, &two, &ledger)
	if err != nil || one != -10 || two != 10 || ledger != 1 {
		t.Errorf("account 1 %d, account 2 %d, ledger rows %d (err %v); want -10, 10, 1", one, two, ledger, err)
	}
}

// TestMainWithoutDSN runs main in a child process without DBOP_MYSQL_DSN:
// it must say what to set and exit with status 2.
func TestMainWithoutDSN(t *testing.T) {
	if os.Getenv("DBOP_EXAMPLE_RUN_MAIN") == "1" {
		os.Args = os.Args[:1]
		main()
		t.Fatal("main returned without a DSN")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMainWithoutDSN$")
	cmd.Env = append(os.Environ(), "DBOP_EXAMPLE_RUN_MAIN=1", "DBOP_MYSQL_DSN=")
	out, err := cmd.CombinedOutput()
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 2 {
		t.Fatalf("main without a DSN: %v, want exit status 2\n%s", err, out)
	}
	if want := "export DBOP_MYSQL_DSN='root@tcp("; !strings.Contains(string(out), want) {
		t.Errorf("main without a DSN printed %q, want it to contain %q", out, want)
	}
}
