package pgxdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// Inside a transaction that has already inserted row X, a step meets a row
// another connection has locked. Its per-attempt lock_timeout fires
// (55P03); the step is rolled back to its savepoint and retried once the
// other connection lets go, and succeeds. X survives and commits with it,
// in the one and only transaction.
func TestLockTimeoutRetriedAtSavepoint(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 2, traced(&log))
	other := newPool(t, 2)
	createTable(t, other, "pgxdb_savepoint_lock", "id text PRIMARY KEY, n int NOT NULL",
		"INSERT INTO pgxdb_savepoint_lock VALUES ('L', 0)")

	// The other connection holds row L.
	holder, err := other.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	exec(t, holder, "SELECT * FROM pgxdb_savepoint_lock WHERE id = 'L' FOR UPDATE")

	// The retry's OnRetry runs after the failed attempt was rolled back to
	// its savepoint and before the next one: the holder lets go there.
	var rec retries
	release := func(ctx context.Context, e dbop.AttemptEvent) {
		rec.record(ctx, e)
		if len(rec.codes()) == 1 {
			if err := holder.Rollback(ctx); err != nil {
				t.Errorf("release the lock: %v", err)
			}
		}
	}

	var settingsAfterStep string
	log.Reset()
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_savepoint_lock VALUES ('X', 0)"); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			tag, err := tx.Exec(ctx, "UPDATE pgxdb_savepoint_lock SET n = n + 1 WHERE id = 'L'")
			return int(tag.RowsAffected()), err
		})
		n, err := step.With(
			dbop.WithRetry(retryAtOnce, dbop.OnRetry(release)),
			pgxdb.InSavepoint(tx, pgxdb.LockTimeout(100*time.Millisecond)),
		).Run(ctx)
		if err != nil {
			return 0, err
		}
		// The step's lock_timeout was set back: the transaction's own is in force.
		err = tx.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&settingsAfterStep)
		return n, err
	}, pgxdb.LockTimeout(5*time.Second))

	n, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the step updated %d rows, want 1", n)
	}
	checkLog(t, []string{"55P03"}, rec.codes())
	if settingsAfterStep != "5s" {
		t.Errorf("lock_timeout after the step = %q, want the transaction's 5s", settingsAfterStep)
	}

	const swap = `SELECT s.prev, set_config(s.name, s.value, true) FROM ( SELECT u.ord, u.name, u.value, current_setting(u.name) AS prev FROM (VALUES (1, 'lock_timeout', $1::text)) AS u(ord, name, value) OFFSET 0 ) s ORDER BY s.ord`
	checkLog(t, []string{
		"begin; SET LOCAL lock_timeout = 5000",
		"INSERT INTO pgxdb_savepoint_lock VALUES ('X', 0)",
		`SAVEPOINT "dbop_sp_1"`,
		swap, // lock_timeout 100 ms
		"UPDATE pgxdb_savepoint_lock SET n = n + 1 WHERE id = 'L' -> 55P03",
		`ROLLBACK TO SAVEPOINT "dbop_sp_1"`,
		`RELEASE SAVEPOINT "dbop_sp_1"`,
		`SAVEPOINT "dbop_sp_1"`,
		swap,
		"UPDATE pgxdb_savepoint_lock SET n = n + 1 WHERE id = 'L'",
		swap, // back to 5 s
		`RELEASE SAVEPOINT "dbop_sp_1"`,
		"SELECT current_setting('lock_timeout')",
		"commit",
	}, log.Log())

	if got := queryInt(t, other, "SELECT count(*) FROM pgxdb_savepoint_lock WHERE id = 'X'"); got != 1 {
		t.Errorf("row X: %d rows, want 1: the transaction's earlier work must survive the step's retry", got)
	}
	if got := queryInt(t, other, "SELECT n FROM pgxdb_savepoint_lock WHERE id = 'L'"); got != 1 {
		t.Errorf("row L: n = %d, want 1", got)
	}
}

// A transaction-level failure inside a savepoint step is not retried at
// the savepoint: it travels out to the retry around InTx, which runs the
// whole transaction again.
func TestSavepointLetsTransactionFailuresOut(t *testing.T) {
	pool := newPool(t, 1)
	admin := newPool(t, 1)
	createTable(t, admin, "pgxdb_savepoint_out", "id int PRIMARY KEY")

	var txRuns, stepRuns int
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		txRuns++
		if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_savepoint_out VALUES ($1)", txRuns); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			stepRuns++
			if txRuns == 1 {
				_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$")
				return 0, err
			}
			return 1, nil
		})
		return step.With(dbop.WithRetry(retryAtOnce), pgxdb.InSavepoint(tx)).Run(ctx)
	})
	if _, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if txRuns != 2 || stepRuns != 2 {
		t.Errorf("transaction ran %d times and step %d times, want 2 and 2", txRuns, stepRuns)
	}
	// The first transaction's insert was rolled back with it.
	if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_savepoint_out"); got != 1 {
		t.Errorf("%d rows, want 1", got)
	}
}
