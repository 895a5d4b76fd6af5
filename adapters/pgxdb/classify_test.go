package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestClassifier(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want dbop.Verdict
	}{
		{"nil", nil, dbop.Unclassified},
		{"serialization failure", dboptest.PgError("40001", "could not serialize access"), dbop.RetryTransaction},
		{"deadlock", dboptest.PgError("40P01", "deadlock detected"), dbop.RetryTransaction},
		{"lock timeout", dboptest.PgError("55P03", "canceling statement due to lock timeout"), dbop.RetryStatement},
		{"statement timeout", dboptest.PgError("57014", "canceling statement due to statement timeout"), dbop.RetryStatement},
		{"user cancel", dboptest.PgError("57014", "canceling statement due to user request"), dbop.NotRetryable},
		{"CockroachDB legacy retry", dboptest.PgError("CR000", "restart transaction"), dbop.RetryTransaction},
		{"CockroachDB result is ambiguous", dboptest.PgError("40003", "result is ambiguous"), dbop.Ambiguous},
		{"read-only transaction", dboptest.PgError("25006", "cannot execute INSERT in a read-only transaction"), dbop.NotRetryable},
		{"in failed transaction", dboptest.PgError("25P02", "current transaction is aborted"), dbop.NotRetryable},
		{"idle-in-transaction timeout", dboptest.PgError("25P03", "terminating connection due to idle-in-transaction timeout"), dbop.RetryTransaction},
		{"syntax error", dboptest.PgError("42601", "syntax error"), dbop.NotRetryable},
		{"undefined table", dboptest.PgError("42P01", "relation does not exist"), dbop.NotRetryable},
		{"division by zero", dboptest.PgError("22012", "division by zero"), dbop.NotRetryable},
		{"unique violation", dboptest.PgError("23505", "duplicate key"), dbop.NotRetryable},
		{"internal error", dboptest.PgError("XX000", "internal error"), dbop.Unclassified},
		{"safe to retry", safeErr{safe: true}, dbop.RetryTransaction},
		{"network", dboptest.NetworkError(), dbop.RetryTransaction},
		{"deadline", context.DeadlineExceeded, dbop.RetryTransaction},
		{"cancel", context.Canceled, dbop.NotRetryable},
		{"no rows", pgx.ErrNoRows, dbop.Unclassified},

		// The rules that need pgx's own error values (docs/backends.md §12).
		{"conn closed", pgconn.ErrConnClosed, dbop.RetryTransaction},
		{"conn closed, wrapped", fmt.Errorf("query: %w", pgconn.ErrConnClosed), dbop.RetryTransaction},
		{"commit turned into rollback", pgx.ErrTxCommitRollback, dbop.NotRetryable},
		{"commit turned into rollback, wrapped", fmt.Errorf("pgxdb: the transaction had failed before COMMIT: %w", pgx.ErrTxCommitRollback), dbop.NotRetryable},
		{"tx is closed", pgx.ErrTxClosed, dbop.NotRetryable},
		// Last resort: anything joined to them decides first.
		{"deadline joined to tx is closed", errors.Join(pgx.ErrTxClosed, context.DeadlineExceeded), dbop.RetryTransaction},
		{"deadline joined to commit rollback", errors.Join(pgx.ErrTxCommitRollback, context.DeadlineExceeded), dbop.RetryTransaction},
		{"40001 joined to commit rollback", errors.Join(pgx.ErrTxCommitRollback, dboptest.PgError("40001", "could not serialize access")), dbop.RetryTransaction},
		{"conn closed joined to tx is closed", errors.Join(pgx.ErrTxClosed, pgconn.ErrConnClosed), dbop.RetryTransaction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pgxdb.Classifier(tt.err); got != tt.want {
				t.Errorf("Classifier(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// ClassifyBy is asked first; Classifier decides the rest.
func TestClassifyBy(t *testing.T) {
	unique := dboptest.PgError("23505", "duplicate key")
	retryUnique := func(err error) dbop.Verdict {
		if pgCode(err) == "23505" {
			return dbop.RetryTransaction
		}
		return dbop.Unclassified
	}
	never := func(error) dbop.Verdict { return dbop.Unclassified }
	syntax := dboptest.PgError("42601", "syntax error")
	var db fakeDB
	db.FailNext("INSERT a", unique, syntax)
	var runs int
	op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		_, err := tx.Exec(ctx, "INSERT a")
		return 0, err
	}, pgxdb.ClassifyBy(never), pgxdb.ClassifyBy(retryUnique))
	_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
	// The syntax error is NotRetryable, so final and returned as the
	// driver returned it (invariant 7).
	if err != error(syntax) || !final(dbop.VerdictOf(err)) || runs != 2 {
		t.Errorf("after %d runs: %v (verdict %v); want the syntax error itself, final, not retried, after the unique violation was", runs, err, dbop.VerdictOf(err))
	}
}
