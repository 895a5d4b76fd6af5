package pgxdb_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
)

// In a transaction the caller began by hand, a per-attempt WithTimeout
// listed before InSavepoint in the step's pipeline becomes server limits for
// the step attempt, as inside InTx: while a rival holds the step's row
// longer than the timeout, the server ends each lock wait (55P03), the step
// is rolled back to its savepoint and retried in place, the connection
// stays open, and the caller's transaction commits the step once. The
// caller's own context has a deadline too, a request's, which alone sets
// nothing (TestSavepointCallersDeadlineAloneSendsNoSettings).
func TestSavepointStepDeadlineInACallersTransaction(t *testing.T) {
	pool := newPool(t, 2)
	admin := newPool(t, 2)
	tbl := "pgxdb_sp_callers_tx"
	createTable(t, admin, tbl, "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO "+tbl+" VALUES (1, 0)")

	rival, err := admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exec(t, rival, "UPDATE "+tbl+" SET v = v + 100 WHERE id = 1")
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(700 * time.Millisecond)
		_ = rival.Rollback(context.Background())
	}()
	defer func() { <-released }()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // the request's
	defer cancel()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	before := showLimits(ctx, t, tx)

	var steps atomic.Int32
	var codes []string
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		steps.Add(1)
		tag, err := tx.Exec(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1")
		return tag.RowsAffected(), err
	})
	n, err := step.With(
		dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(30),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { codes = append(codes, pgCode(e.Err)) })),
		dbop.WithTimeout(150*time.Millisecond),
		pgxdb.InSavepoint(tx),
	).Run(ctx)
	if err != nil {
		t.Fatalf("the step: %v (ran %d times, retried on %v, connection closed: %v)", err, steps.Load(), codes, tx.Conn().IsClosed())
	}
	if n != 1 || tx.Conn().IsClosed() {
		t.Fatalf("the step updated %d rows, the connection closed: %v; want 1, open", n, tx.Conn().IsClosed())
	}
	// The fault fired: the server ended the first attempts' lock waits.
	if len(codes) == 0 || slices.ContainsFunc(codes, func(c string) bool { return c != "55P03" && c != "57014" }) {
		t.Errorf("retried on %v; want server timeouts (55P03) while the rival held the row", codes)
	}
	if after := showLimits(ctx, t, tx); after != before {
		t.Errorf("limits after the step %s, before it %s", after, before)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v := queryInt(t, admin, "SELECT v FROM "+tbl+" WHERE id = 1"); v != 1 {
		t.Errorf("v = %d; want 1 (the step committed once)", v)
	}
}

// In a transaction the caller began by hand, the caller's own deadline (a
// request's) sets no server limits around a step: the step would pay two
// statements for a deadline the caller's next statement meets all the
// same. Only a WithTimeout listed in the step's pipeline does.
func TestSavepointCallersDeadlineAloneSendsNoSettings(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 1, traced(&log))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	run := func(ds ...dbop.Decorator) []string {
		log.Reset()
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			_, err := tx.Exec(ctx, "SELECT 1")
			return 0, err
		}).With(ds...).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return log.Log()
	}
	got := run(dbop.WithRetry(retryAtOnce), pgxdb.InSavepoint(tx))
	checkLog(t, []string{`SAVEPOINT "dbop_sp_1"`, "SELECT 1", `RELEASE SAVEPOINT "dbop_sp_1"`}, got)
	// The same step with a WithTimeout of its own sets and restores them:
	// the log above is not blind to them. A round trip slower than a
	// quarter of the margin (a busy machine: CI's race-detector run once
	// took that long) sets them back and once more before the step
	// (resolve.SavepointLimits), so the sets come in pairs, the last
	// after the step's statement.
	got = run(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(5*time.Second), pgxdb.InSavepoint(tx))
	if n := countContaining(got, "set_config"); n != 2 && n != 4 {
		t.Errorf("with a WithTimeout: %d set_config statements in %q; want 2 (set, set back), or 4 after a slow round trip (set, set back, set, set back)", n, got)
	}
	if i := slices.Index(got, "SELECT 1"); i < 0 || countContaining(got[i:], "set_config") != 1 {
		t.Errorf("with a WithTimeout: %q; want the step's SELECT 1 followed by one set_config (set back)", got)
	}
}

func countContaining(log []string, s string) int {
	n := 0
	for _, l := range log {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
