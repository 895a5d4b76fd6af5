package sqldb_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// A write interrupted by a deadline of the function's own, outside any
// scope of dbop's, ends the transaction (docs/backends.md §5.6); the
// function swallows the error and goes on with a savepoint step. Outside a
// transaction SQLite's SAVEPOINT begins one (§5.15), so the step's work
// must not be committed by InTx as if the transaction had survived: Run is
// Ambiguous, A (rolled back by SQLite) is not committed, and nothing runs
// twice.
func TestSQLiteSavepointStepAfterTheEndIsAmbiguous(t *testing.T) {
	s := newEndedScene(t)
	runs := 0
	var swallowed []error
	_, err := sqldb.InTx(s.db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
		runs++
		if err := s.write(ctx, tx, "A"); err != nil {
			return struct{}{}, err
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, werr := tx.ExecContext(wctx, slowWrite)
		cancel()
		if werr != nil {
			swallowed = append(swallowed, werr) // best effort
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 0, s.write(ctx, tx, "C")
		})
		_, serr := step.With(sqldb.InSavepoint(tx, sqldb.SQLite)).Run(ctx)
		return struct{}{}, serr
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
	checkInterrupted(t, swallowed)
	t.Logf("Run = %v; A %d, C %d; runs %d", err, s.count(t, "A"), s.count(t, "C"), runs)
	if err == nil || dbop.VerdictOf(err) != dbop.Ambiguous && dbop.VerdictOf(err) != dbop.NotRetryable {
		t.Errorf("Run = %v (%v), want an error that is not retried: the transaction had ended before the step", err, dbop.VerdictOf(err))
	}
	if a, c := s.count(t, "A"), s.count(t, "C"); a != 0 || c > 1 {
		t.Errorf("committed A %d times and C %d times, want 0 and at most 1", a, c)
	}
	if runs != 1 {
		t.Errorf("the function ran %d times, want once", runs)
	}
}
