package pgxdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// TestFnThatEndsTheTransactionItselfIsAmbiguous: fn commits (or rolls
// back) the transaction InTx handed it, then fails, or returns after the
// attempt's deadline passed. InTx's ROLLBACK then finds the transaction
// already ended (pgx.ErrTxClosed, docs/backends.md §2.11), so the work may
// have been committed: the error must be Ambiguous, neither retried (the
// row would be written again) nor replaced by a fallback (the caller would
// read "failed" for committed work), as InTx already reports fn's own
// COMMIT when fn returns nil.
func TestFnThatEndsTheTransactionItselfIsAmbiguous(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_ended_in_fn", "id serial PRIMARY KEY")
	cases := []struct {
		name  string
		end   string // "commit" or "rollback"
		after func(ctx context.Context, tx pgx.Tx) error
		opts  []pgxdb.TxOption
		with  []dbop.Decorator
	}{
		{
			name: "commit, then the attempt's deadline",
			end:  "commit",
			after: func(ctx context.Context, tx pgx.Tx) error {
				<-ctx.Done() // a slow call after the commit
				return ctx.Err()
			},
			with: []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), dbop.WithTimeout(time.Second)},
		},
		{
			name: "commit, then nil after the attempt's deadline",
			end:  "commit",
			after: func(ctx context.Context, tx pgx.Tx) error {
				<-ctx.Done()
				return nil
			},
			with: []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), dbop.WithTimeout(time.Second)},
		},
		{
			name: "commit, then a statement on the ended transaction, under OrDefault",
			end:  "commit",
			after: func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "SELECT 1")
				return err
			},
			with: []dbop.Decorator{dbop.OrDefault(struct{}{}), dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))},
		},
		{
			name:  "commit, then nil, with ResolveCommit under OrDefault",
			end:   "commit",
			after: func(context.Context, pgx.Tx) error { return nil },
			opts:  []pgxdb.TxOption{pgxdb.ResolveCommit()},
			with:  []dbop.Decorator{dbop.OrDefault(struct{}{}), dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))},
		},
		{
			name: "rollback, then the attempt's deadline",
			end:  "rollback",
			after: func(ctx context.Context, tx pgx.Tx) error {
				<-ctx.Done()
				return ctx.Err()
			},
			with: []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), dbop.WithTimeout(time.Second)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exec(t, pool, "TRUNCATE pgxdb_ended_in_fn")
			var runs, ended int
			op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				runs++
				if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_ended_in_fn DEFAULT VALUES"); err != nil {
					return err
				}
				end := tx.Commit
				if tc.end == "rollback" {
					end = tx.Rollback
				}
				if err := end(ctx); err != nil {
					return err
				}
				ended++
				return tc.after(ctx, tx)
			}, tc.opts...)
			_, err := op.With(tc.with...).Run(t.Context())
			rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_ended_in_fn")
			t.Logf("Run: %v; runs %d, rows %d", err, runs, rows)
			if ended == 0 {
				t.Fatalf("fn never ended its transaction (runs %d)", runs)
			}
			if runs != 1 {
				t.Errorf("fn ran %d times, want once: a transaction fn ended itself was retried", runs)
			}
			if want := map[string]int{"commit": 1, "rollback": 0}[tc.end]; rows != want {
				t.Errorf("%d rows, want %d", rows, want)
			}
			if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
				t.Errorf("verdict %v, want ambiguous: fn ended the transaction, which may have committed", v)
			}
			if !errors.Is(err, scopes.ErrAmbiguousCommit) {
				t.Errorf("errors.Is(%v, scopes.ErrAmbiguousCommit) = false", err)
			}
			if !errors.Is(err, pgx.ErrTxClosed) {
				t.Errorf("errors.Is(%v, pgx.ErrTxClosed) = false", err)
			}
		})
	}
}
