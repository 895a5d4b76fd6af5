package pgxdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A per-attempt deadline shorter than a slow statement: InTx has derived
// statement_timeout from the time left, so the server cancels the
// statement (57014 statement timeout) before the context expires, the
// pool's one connection survives it — no new connection is made, the
// backend is the same — and the retry commits on it.
func TestDeadlineBecomesServerStatementTimeout(t *testing.T) {
	pool := newPool(t, 1)
	admin := newPool(t, 1)
	table := resolveTable("deadline")
	createTable(t, admin, table, "id int PRIMARY KEY")
	pid0, _, stmt0 := session(t, pool)
	conns0 := pool.Stat().NewConnsCount()

	var runs int
	var backends []uint32
	var firstTook time.Duration
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		backends = append(backends, pid(tx))
		if runs == 1 {
			start := time.Now()
			_, err := tx.Exec(ctx, "SELECT pg_sleep(10)")
			firstTook = time.Since(start)
			return 0, err
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES (1)")
		return 1, err
	})
	var rec retries
	_, err := op.With(
		dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2), dbop.OnRetry(rec.record)),
		dbop.WithTimeout(time.Second), // each attempt: the server's limit is 950ms, a 50ms margin (300ms would leave 30ms, which a loaded CI machine overran)
	).Run(t.Context())
	if err != nil {
		t.Fatalf("Run = %v; want the retry to commit", err)
	}
	if len(rec.events) != 1 {
		t.Fatalf("retried %d errors, want 1", len(rec.events))
	}
	first := rec.events[0].Err
	pgErr, ok := errors.AsType[*pgconn.PgError](first)
	if !ok || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "statement timeout") {
		t.Errorf("the first attempt failed with %v, want the server's 57014 statement timeout", first)
	}
	// The server's error is the proof, with the connection checks below:
	// had the context ended the statement, the driver would have closed
	// the connection. On a loaded machine the server's answer can reach
	// the client a little after the deadline; WithTimeout then labels it a
	// timeout too, which is harmless here and logged.
	if _, ok := errors.AsType[*dbop.TimeoutError](first); ok {
		t.Logf("the server's answer arrived after the deadline (%v), the statement ran %v", first, firstTook)
	}
	if firstTook < 900*time.Millisecond {
		t.Errorf("the slow statement ran %v, want at least the server's limit (950ms less scheduling noise)", firstTook)
	}
	if n := pool.Stat().NewConnsCount() - conns0; n != 0 || backends[0] != pid0 || backends[1] != pid0 {
		t.Errorf("%d new connections, backends %v; want none, and both attempts on backend %d", n, backends, pid0)
	}
	if _, _, stmt := session(t, pool); stmt != stmt0 {
		t.Errorf("statement_timeout after the transaction = %q, want %q as before", stmt, stmt0)
	}
	if n := queryInt(t, admin, "SELECT count(*) FROM "+table); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

// A deadline that expires while COMMIT runs no longer cuts the
// connection: COMMIT runs without the caller's cancellation, bounded by
// RollbackTimeout. A deferred constraint trigger makes the COMMIT slow
// (300 ms), past the per-attempt deadline (200 ms). PostgreSQL runs COMMIT
// without statement_timeout (finish_xact_command disables the timer before
// it commits), so the derived limit does not end it either: the COMMIT
// completes, and the caller learns it did. Before, pgx closed the
// connection at the deadline and the outcome was unknown.
func TestDeadlineDuringCommitKeepsTheConnection(t *testing.T) {
	pool := newPool(t, 1)
	admin := newPool(t, 1)
	table := resolveTable("slowcommit")
	createTable(t, admin, table, "id int PRIMARY KEY")
	fn := table + "_slow"
	exec(t, admin, "CREATE FUNCTION "+fn+"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$")
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP FUNCTION IF EXISTS "+fn+"() CASCADE") })
	exec(t, admin, "CREATE CONSTRAINT TRIGGER "+table+"_t AFTER INSERT ON "+table+
		" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "+fn+"()")
	pid0, _, _ := session(t, pool)
	conns0 := pool.Stat().NewConnsCount()

	var runs int
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES (1)")
		return 1, err
	})
	start := time.Now()
	_, err := op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2)), dbop.WithTimeout(200*time.Millisecond)).Run(t.Context())
	took := time.Since(start)
	if err != nil || runs != 1 {
		t.Fatalf("Run = %v after %d runs; want the first attempt to commit", err, runs)
	}
	if took < 300*time.Millisecond {
		t.Errorf("Run took %v; the COMMIT should have outlasted the 200ms deadline", took)
	}
	if n := pool.Stat().NewConnsCount() - conns0; n != 0 {
		t.Errorf("%d new connections, want none: the COMMIT's connection survived", n)
	}
	if pid, _, _ := session(t, pool); pid != pid0 {
		t.Errorf("backend %d, want %d", pid, pid0)
	}
	if n := queryInt(t, admin, "SELECT count(*) FROM "+table); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}
