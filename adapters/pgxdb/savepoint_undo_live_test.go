package pgxdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestInSavepointFailedUndoKeepsFinalVerdict checks a savepoint step that
// sends a batch whose third INSERT violates a unique key (23505, final)
// and returns br.Exec's error without closing the batch. The scope's
// ROLLBACK TO SAVEPOINT then fails (the connection is busy with the
// batch), so the transaction is doomed and rolled back; but the step's
// error would repeat, and the transaction runs once, not MaxAttempts
// times.
func TestInSavepointFailedUndoKeepsFinalVerdict(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_sp_undo_batch", "id int PRIMARY KEY", "INSERT INTO pgxdb_sp_undo_batch VALUES (1)")
	runs := 0
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		step := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
			b := &pgx.Batch{}
			b.Queue("INSERT INTO pgxdb_sp_undo_batch VALUES (2)")
			b.Queue("INSERT INTO pgxdb_sp_undo_batch VALUES (3)")
			b.Queue("INSERT INTO pgxdb_sp_undo_batch VALUES (1)") // 23505
			br := tx.SendBatch(ctx, b)
			for range 3 {
				if _, err := br.Exec(); err != nil {
					return struct{}{}, err // br left open
				}
			}
			return struct{}{}, br.Close()
		})
		_, err := step.With(dbop.WithRetry(retryAtOnce), pgxdb.InSavepoint(tx)).Run(ctx)
		return err
	}).With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
	t.Logf("Run: %v (verdict %v); transaction runs %d", err, dbop.VerdictOf(err), runs)
	if pgCode(err) != "23505" {
		t.Fatalf("error %v (code %q), want the unique violation 23505", err, pgCode(err))
	}
	// The fault fired: the undo failed.
	if !strings.Contains(err.Error(), "rollback to savepoint") {
		t.Fatalf("error %q does not report a failed ROLLBACK TO SAVEPOINT", err)
	}
	if runs != 1 {
		t.Errorf("transaction runs %d, want 1: a unique violation is final", runs)
	}
	if v := dbop.VerdictOf(err); v == dbop.RetryTransaction || v == dbop.RetryStatement || v == dbop.Ambiguous {
		t.Errorf("verdict %v, want a final one", v)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_sp_undo_batch"); n != 1 {
		t.Errorf("%d rows, want the 1 there before", n)
	}
}

// TestInSavepointStepGoingOnAfterErrorIsRolledBackPostgres checks that a
// savepoint step that goes on after a failed statement, returning nil,
// leaves PostgreSQL's transaction aborted rather than ended: RELEASE
// SAVEPOINT fails with 25P02, the scope dooms the transaction, and its
// owner rolls it all back, so nothing the step ran is committed and the
// outcome is a plain error, not an Ambiguous one. 25P02 is final (its
// cause, the error the step did not return, is unknown), and the
// transaction is not run again, as when fn itself goes on after an error
// and COMMIT answers ROLLBACK.
func TestInSavepointStepGoingOnAfterErrorIsRolledBackPostgres(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_sp_goes_on", "id int PRIMARY KEY", "INSERT INTO pgxdb_sp_goes_on VALUES (1)")
	runs := 0
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		step := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
			_, _ = tx.Exec(ctx, "INSERT INTO pgxdb_sp_goes_on VALUES (1)") // 23505, ignored
			_, _ = tx.Exec(ctx, "INSERT INTO pgxdb_sp_goes_on VALUES (2)") // 25P02, ignored
			return struct{}{}, nil
		})
		_, err := step.With(dbop.WithRetry(retryAtOnce), pgxdb.InSavepoint(tx)).Run(ctx)
		return err
	}).With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
	t.Logf("Run: %v (verdict %v); transaction runs %d", err, dbop.VerdictOf(err), runs)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25P02" || !strings.Contains(err.Error(), "release savepoint") {
		t.Fatalf("error %v, want the RELEASE's 25P02", err)
	}
	if v := dbop.VerdictOf(err); v == dbop.Ambiguous {
		t.Errorf("verdict %v: PostgreSQL aborted the transaction, nothing ran on its own", v)
	}
	if runs != 1 {
		t.Errorf("transaction runs %d, want 1: 25P02 is final", runs)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_sp_goes_on"); n != 1 {
		t.Errorf("%d rows, want the 1 there before", n)
	}
}
