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

// The rules of Classifier and of the COMMIT judgement that need pgx's own
// error values, checked on the values pgx really returns, made on a live
// server.
func TestClassifierOnRealPgxErrors(t *testing.T) {
	pool := newPool(t, 2)
	tests := []struct {
		name       string
		make       func(t *testing.T) error
		is         error        // the pgx value the error must match
		want       dbop.Verdict // Classifier's verdict
		wantCommit dbop.Verdict // the COMMIT judgement's
	}{
		{
			// A statement on a connection pgx has closed: pgconn's "conn
			// closed", which claims SafeToRetry. Nothing ran, so the
			// transaction is gone and is retried whole — but the same value
			// answering a COMMIT that was sent is ambiguous (§2.4).
			name: "conn closed",
			make: func(t *testing.T) error {
				conn, err := pool.Acquire(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Release()
				if err := conn.Conn().Close(t.Context()); err != nil {
					t.Fatal(err)
				}
				_, err = conn.Exec(t.Context(), "SELECT 1")
				return err
			},
			is:         pgconn.ErrConnClosed,
			want:       dbop.RetryTransaction,
			wantCommit: dbop.Ambiguous,
		},
		{
			// COMMIT of a transaction a failed statement aborted: the
			// server answers ROLLBACK (§1.2). Not committed, and not
			// retried blindly: the first error is not in this one.
			name: "commit turned into rollback",
			make: func(t *testing.T) error {
				tx, err := pool.Begin(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(t.Context(), "SELECT 1/0"); pgCode(err) != "22012" {
					t.Fatalf("SELECT 1/0: %v, want 22012", err)
				}
				return tx.Commit(t.Context())
			},
			is:         pgx.ErrTxCommitRollback,
			want:       dbop.NotRetryable,
			wantCommit: dbop.Unclassified,
		},
		{
			// A statement on a transaction already committed (§2.11).
			name: "tx is closed",
			make: func(t *testing.T) error {
				tx, err := pool.Begin(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(t.Context()); err != nil {
					t.Fatal(err)
				}
				_, err = tx.Exec(t.Context(), "SELECT 1")
				return err
			},
			is:         pgx.ErrTxClosed,
			want:       dbop.NotRetryable,
			wantCommit: dbop.Ambiguous, // nothing a COMMIT can answer; the safe reading
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.make(t)
			if !errors.Is(err, tt.is) {
				t.Fatalf("pgx returned %v, want an error matching %v", err, tt.is)
			}
			if got := pgxdb.Classifier(err); got != tt.want {
				t.Errorf("Classifier(%v) = %v, want %v", err, got, tt.want)
			}
			if got := pgxdb.JudgeCommit(err); got != tt.wantCommit {
				t.Errorf("JudgeCommit(%v) = %v, want %v", err, got, tt.wantCommit)
			}
			// A deadline joined to it decides first.
			joined := errors.Join(err, context.DeadlineExceeded)
			if got := pgxdb.Classifier(joined); got != dbop.RetryTransaction {
				t.Errorf("Classifier(%v) = %v, want retry-transaction", joined, got)
			}
		})
	}
}
