package pgxdb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CockroachRestart around a Then whose first step committed a transaction
// of its own (an outbox on another connection) and whose second step, in a
// savepoint of the restarted transaction, fails with 40001: the restart's
// rollback does not undo the outbox's commit, and it must not run the Then
// again (it did, found by a review: the commit's mark was hidden with the
// savepoint's doom behind the restart's wrapper, and the outbox committed
// twice).
func TestCockroachRestartKeepsAnotherTransactionsCommit(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_restart_outbox", "name text")
	createTable(t, pool, "pgxdb_restart_main", "name text")
	fails := 1
	_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		outbox := pgxdb.Do(pool, func(ctx context.Context, tx2 pgx.Tx) error {
			_, err := tx2.Exec(ctx, "INSERT INTO pgxdb_restart_outbox VALUES ('event')")
			return err
		})
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_restart_main VALUES ('row')"); err != nil {
				return 0, err
			}
			fails--
			if fails >= 0 {
				return 0, &pgconn.PgError{Code: "40001", Message: "restart transaction"}
			}
			return 1, nil
		}).With(pgxdb.InSavepoint(tx))
		return dbop.Then(outbox, func(ctx context.Context, _ struct{}) (int, error) { return step.Run(ctx) }).Run(ctx)
	}, pgxdb.CockroachRestart(dbop.MaxAttempts(3))).Run(t.Context())
	if n, m := frameRows(t, pool, "pgxdb_restart_outbox"), frameRows(t, pool, "pgxdb_restart_main"); n != 1 || m != 0 || !errors.Is(err, dbop.ErrAlreadyCommitted) {
		t.Errorf("Run: %v; the outbox committed %d times and the main row %d; want ErrAlreadyCommitted, 1 and 0", err, n, m)
	}
}

// The same with a plain (no savepoint) second step: the restart refuses.
func TestCockroachRestartKeepsACommitBeforeAPlainStep(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_restart_outbox2", "name text")
	fails := 1
	_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		outbox := pgxdb.Do(pool, func(ctx context.Context, tx2 pgx.Tx) error {
			_, err := tx2.Exec(ctx, "INSERT INTO pgxdb_restart_outbox2 VALUES ('event')")
			return err
		})
		return dbop.Then(outbox, func(ctx context.Context, _ struct{}) (int, error) {
			fails--
			if fails >= 0 {
				return 0, &pgconn.PgError{Code: "40001", Message: "restart transaction"}
			}
			return 1, nil
		}).Run(ctx)
	}, pgxdb.CockroachRestart(dbop.MaxAttempts(3))).Run(t.Context())
	if n := frameRows(t, pool, "pgxdb_restart_outbox2"); n != 1 || !errors.Is(err, dbop.ErrAlreadyCommitted) {
		t.Errorf("Run: %v; the outbox transaction committed %d times; want ErrAlreadyCommitted and 1", err, n)
	}
}
