package dboptest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestRecorderAbortsLikePostgreSQL: with Aborts, code that catches a
// unique violation and goes on in the same transaction ("insert, else
// update") fails against the Recorder as it does on PostgreSQL, where the
// UPDATE fails with 25P02; without it, the Recorder lets it commit.
func TestRecorderAbortsLikePostgreSQL(t *testing.T) {
	upsert := func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT a"); err != nil {
			if pg, ok := errors.AsType[*pgconn.PgError](err); !ok || pg.Code != "23505" {
				return 0, err
			}
			return 1, tx.Exec(ctx, "UPDATE a") // the row exists: update it instead
		}
		return 0, nil
	}
	for _, aborts := range []bool{false, true} {
		rec := &dboptest.Recorder{Aborts: aborts}
		rec.FailNext("INSERT a", dboptest.PgError("23505", "duplicate key value violates unique constraint"))
		_, err := scopes.InTx(rec.Begin, upsert).Run(t.Context())
		if !aborts {
			if err != nil {
				t.Fatalf("without Aborts: %v", err)
			}
			checkLog(t, []string{"BEGIN", "INSERT a", "UPDATE a", "COMMIT"}, rec)
			continue
		}
		if pg, ok := errors.AsType[*pgconn.PgError](err); !ok || pg.Code != "25P02" {
			t.Fatalf("with Aborts: got %v, want the UPDATE's 25P02", err)
		}
		checkLog(t, []string{"BEGIN", "INSERT a", "UPDATE a", "ROLLBACK"}, rec)
	}
}

// TestRecorderAbortsUntilRollbackToSavepoint: with Aborts, ROLLBACK TO a
// savepoint set before the failure ends the abort, as InSavepoint does;
// a savepoint that does not exist fails and aborts too; and a COMMIT of an
// aborted transaction ends it with pgx.ErrTxCommitRollback.
func TestRecorderAbortsUntilRollbackToSavepoint(t *testing.T) {
	rec := &dboptest.Recorder{Aborts: true}
	rec.FailNext("INSERT b", dboptest.PgError("55P03", "lock timeout"))
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		step := dbop.Op[int](func(ctx context.Context) (int, error) { return 0, tx.Exec(ctx, "INSERT b") })
		if _, err := step.With(scopes.InSavepoint(tx)).Run(ctx); err == nil {
			return 0, errors.New("the scripted failure did not fire")
		}
		return 1, tx.Exec(ctx, "INSERT c") // the transaction is usable again
	})
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{"BEGIN", "SAVEPOINT dbop_sp_1", "INSERT b", "ROLLBACK TO SAVEPOINT dbop_sp_1", "RELEASE SAVEPOINT dbop_sp_1", "INSERT c", "COMMIT"}, rec)

	tx := mustBegin(t, rec, scopes.BeginOptions{})
	if err := tx.RollbackTo(t.Context(), "nowhere"); !errors.Is(err, dboptest.ErrNoSavepoint) {
		t.Fatalf("ROLLBACK TO a savepoint that does not exist: %v", err)
	}
	if pg, ok := errors.AsType[*pgconn.PgError](tx.Exec(t.Context(), "INSERT d")); !ok || pg.Code != "25P02" {
		t.Errorf("a statement after the failed ROLLBACK TO did not fail with 25P02")
	}
	if err := tx.RollbackTo(t.Context(), "nowhere"); !errors.Is(err, dboptest.ErrNoSavepoint) {
		t.Errorf("ROLLBACK TO a savepoint that does not exist, in the aborted transaction: %v", err)
	}
	if err := tx.Commit(t.Context()); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Errorf("COMMIT of an aborted transaction: %v, want pgx.ErrTxCommitRollback", err)
	}
	if err := tx.Exec(t.Context(), "INSERT e"); !errors.Is(err, dboptest.ErrTxDone) {
		t.Errorf("after the COMMIT: %v, want ErrTxDone", err)
	}
}
