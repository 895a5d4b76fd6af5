package pgxdb_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// CockroachRestart on PostgreSQL, with the statements observed through a
// pgx.QueryTracer.
func TestCockroachRestart(t *testing.T) {
	// A 40001 that a restart can heal: the first run fails after writing,
	// ROLLBACK TO SAVEPOINT cockroach_restart undoes the write and fn runs
	// again in the same transaction. One BEGIN, one COMMIT.
	t.Run("restart in place", func(t *testing.T) {
		var log sqlLog
		pool := newPool(t, 1, traced(&log))
		admin := newPool(t, 1)
		createTable(t, admin, "pgxdb_restart_in_place", "id int PRIMARY KEY")

		var runs atomic.Int32
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_restart_in_place VALUES (1)"); err != nil {
				return 0, err
			}
			if runs.Add(1) == 1 {
				// As CockroachDB would: "restart transaction".
				_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'restart transaction' USING ERRCODE = '40001'; END $$")
				return 0, err
			}
			return 1, nil
		}, pgxdb.CockroachRestart(dbop.MaxAttempts(4)), pgxdb.LockTimeout(5*time.Second))

		if _, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkLog(t, []string{
			"begin",
			"SAVEPOINT cockroach_restart",
			"SET LOCAL lock_timeout = 5000",
			"INSERT INTO pgxdb_restart_in_place VALUES (1)",
			"DO $$ BEGIN RAISE EXCEPTION 'restart transaction' USING ERRCODE = '40001'; END $$ -> 40001",
			"ROLLBACK TO SAVEPOINT cockroach_restart",
			"SET LOCAL lock_timeout = 5000", // the rollback undid it: applied again
			"INSERT INTO pgxdb_restart_in_place VALUES (1)",
			"RELEASE SAVEPOINT cockroach_restart",
			"commit",
		}, log.Log())
		if n := queryInt(t, admin, "SELECT count(*) FROM pgxdb_restart_in_place"); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
	})

	// A real SERIALIZABLE conflict, as in TestSerializationFailureRestartsTransaction.
	// PostgreSQL keeps a SERIALIZABLE transaction's snapshot across ROLLBACK
	// TO SAVEPOINT, so the restart reads the same stale balance and fails
	// again; with the restarts used up, the 40001 goes out to WithRetry,
	// which begins a new transaction that reads the new balance.
	t.Run("serialization conflict escalates to a new transaction", func(t *testing.T) {
		var log sqlLog
		winnerPool := newPool(t, 2)
		loserPool := newPool(t, 2, traced(&log))
		createTable(t, winnerPool, "pgxdb_restart_conflict", "id int PRIMARY KEY, balance int NOT NULL",
			"INSERT INTO pgxdb_restart_conflict VALUES (1, 100)")
		log.Reset()

		var rec retries
		reads, err := balanceConflict(t, winnerPool, "pgxdb_restart_conflict", func(fn func(context.Context, pgx.Tx) (int, error)) dbop.Op[int] {
			return pgxdb.InTx(loserPool, fn, pgxdb.Isolation(pgx.Serializable), pgxdb.CockroachRestart(dbop.MaxAttempts(2))).
				With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record)))
		})
		if err != nil {
			t.Fatalf("loser: %v", err)
		}
		const (
			sel = `SELECT balance FROM "pgxdb_restart_conflict" WHERE id = 1`
			upd = `UPDATE "pgxdb_restart_conflict" SET balance = $1 WHERE id = 1`
		)
		checkLog(t, []string{
			"begin isolation level serializable",
			"SAVEPOINT cockroach_restart",
			sel,
			upd + " -> 40001",
			"ROLLBACK TO SAVEPOINT cockroach_restart",
			sel, // the same snapshot: still 100
			upd + " -> 40001",
			"ROLLBACK TO SAVEPOINT cockroach_restart", // each run is undone before the retry decides
			"rollback", // restarts used up: InTx rolls back, WithRetry begins anew
			"begin isolation level serializable",
			"SAVEPOINT cockroach_restart",
			sel,
			upd,
			"RELEASE SAVEPOINT cockroach_restart",
			"commit",
		}, log.Log())
		if want := []int{100, 100, 120}; !slices.Equal(reads, want) {
			t.Errorf("the loser's runs read %v, want %v", reads, want)
		}
		checkLog(t, []string{"40001"}, rec.codes())
		if b := queryInt(t, winnerPool, "SELECT balance FROM pgxdb_restart_conflict WHERE id = 1"); b != 130 {
			t.Errorf("balance = %d, want 130", b)
		}
	})
}
