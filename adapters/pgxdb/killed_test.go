package pgxdb_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// The backend of a transaction is terminated mid-transaction from another
// connection. The transaction's next statement fails; the retry runs on a
// fresh pool connection and succeeds, and the write lands once.
func TestKilledConnectionIsRetriedOnFreshConnection(t *testing.T) {
	pool := newPool(t, 2)
	admin := newPool(t, 1)
	createTable(t, admin, "pgxdb_killed", "id int PRIMARY KEY")

	started := make(chan uint32)
	killed := make(chan struct{})
	var pids []uint32
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		pids = append(pids, pid(tx))
		if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_killed VALUES (1)"); err != nil {
			return 0, err
		}
		if len(pids) == 1 {
			started <- pid(tx)
			<-killed
		}
		var n int
		err := tx.QueryRow(ctx, "SELECT count(*) FROM pgxdb_killed").Scan(&n)
		return n, err
	})

	var wg sync.WaitGroup
	wg.Go(func() {
		victim := <-started
		var ok bool
		if err := admin.QueryRow(t.Context(), "SELECT pg_terminate_backend($1)", victim).Scan(&ok); err != nil || !ok {
			t.Errorf("pg_terminate_backend(%d) = %t, %v", victim, ok, err)
		}
		waitForBackendGone(t, admin, victim)
		close(killed)
	})

	var rec retries
	n, err := op.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))).Run(t.Context())
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the transaction saw %d rows, want 1", n)
	}
	if len(rec.events) != 1 || rec.events[0].Verdict != dbop.RetryTransaction {
		t.Fatalf("retries: %+v, want one with verdict retry-transaction", rec.events)
	}
	// The server's goodbye was waiting on the socket: pgx reads it as the
	// answer to the next statement.
	if code := pgCode(rec.events[0].Err); code != "57P01" {
		t.Errorf("the statement after the kill failed with %v, want SQLSTATE 57P01 (admin_shutdown)", rec.events[0].Err)
	}
	if len(pids) != 2 || pids[0] == pids[1] {
		t.Errorf("backends of the attempts: %v, want two different ones", pids)
	}
	if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_killed"); got != 1 {
		t.Errorf("%d rows, want 1", got)
	}
}

// fn ignores the error of the statement that found its connection gone and
// returns nil. The COMMIT after it is never sent — pgx finds the connection
// closed — so the transaction was certainly not committed: InTx reports
// that, not an ambiguous commit, and the retry runs it again.
func TestCommitOnConnectionClosedBeforeIsNotAmbiguous(t *testing.T) {
	pool := newPool(t, 2)
	admin := newPool(t, 1)
	createTable(t, admin, "pgxdb_closed_before", "id int PRIMARY KEY")

	var runs int
	var swallowed error
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_closed_before VALUES (1)"); err != nil {
			return 0, err
		}
		if runs == 1 {
			victim := pid(tx)
			exec(t, admin, "SELECT pg_terminate_backend($1)", victim)
			waitForBackendGone(t, admin, victim)
			_, swallowed = tx.Exec(ctx, "SELECT 1") // fails; fn wrongly goes on
		}
		return 1, nil
	})
	var rec retries
	if _, err := op.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if pgCode(swallowed) != "57P01" {
		t.Errorf("the swallowed error is %v, want 57P01", swallowed)
	}
	if runs != 2 || len(rec.events) != 1 || rec.events[0].Verdict != dbop.RetryTransaction {
		t.Fatalf("fn ran %d times with retries %+v, want one retry-transaction", runs, rec.events)
	}
	if errors.Is(rec.events[0].Err, scopes.ErrAmbiguousCommit) {
		t.Errorf("the COMMIT error %v is ambiguous; COMMIT was never sent", rec.events[0].Err)
	}
	if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_closed_before"); got != 1 {
		t.Errorf("%d rows, want 1", got)
	}
}

// The server ends a session that sat idle in its transaction longer than
// idle_in_transaction_session_timeout (a server-side timer, here 50 ms)
// with FATAL 25P03. It does so while waiting for the next command, so a
// COMMIT sent after that was never run: not ambiguous, and retried.
func TestIdleInTransactionTimeoutBeforeCommitIsRetried(t *testing.T) {
	pool := newPool(t, 2)
	admin := newPool(t, 1)
	createTable(t, admin, "pgxdb_idle_timeout", "id int PRIMARY KEY")

	var runs int
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_idle_timeout VALUES (1)"); err != nil {
			return 0, err
		}
		if runs == 1 {
			if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 50"); err != nil {
				return 0, err
			}
			waitForBackendGone(t, admin, pid(tx))
		}
		return 1, nil
	})
	var rec retries
	if _, err := op.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || len(rec.events) != 1 {
		t.Fatalf("fn ran %d times with retries %+v, want 2 after one retry", runs, rec.events)
	}
	e := rec.events[0]
	// pgx reads the server's goodbye as the answer to COMMIT.
	if pgCode(e.Err) != "25P03" {
		t.Errorf("COMMIT error %v, want SQLSTATE 25P03", e.Err)
	}
	if errors.Is(e.Err, scopes.ErrAmbiguousCommit) || e.Verdict != dbop.RetryTransaction {
		t.Errorf("COMMIT error %v: verdict %v; want retry-transaction, not an ambiguous commit", e.Err, e.Verdict)
	}
	if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_idle_timeout"); got != 1 {
		t.Errorf("%d rows, want 1", got)
	}
}
