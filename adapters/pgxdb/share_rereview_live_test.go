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

// The first attempt of a shared transaction, which sets no savepoint,
// ends it with COMMIT AND CHAIN in fn and then fails (its fn returns a
// retryable error, or a statement after the chain fails): the savepoint
// whose absence at ROLLBACK TO SAVEPOINT (3B001) says the transaction was
// ended is not there, so the transaction was rolled back whole as if
// nothing of it had been committed, and the attempt retried: its work,
// committed by the chain, was applied twice (a counter incremented twice).
func TestShareCommitsFirstAttemptCommitAndChainIsAmbiguous(t *testing.T) {
	pool := newPool(t, 4)
	table := "pgxdb_share_rr_chain"
	createTable(t, pool, table, "id int PRIMARY KEY, n int", "INSERT INTO "+table+" VALUES (1, 0)")
	for _, tc := range []struct {
		name  string
		after string // run after the chain; its error is fn's
	}{
		{"failed statement", "DO $$ BEGIN RAISE EXCEPTION 'c' USING ERRCODE = '40001'; END $$"},
		{"fn error", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(t, pool, "UPDATE "+table+" SET n = 0")
			runs := 0
			_, err := shared(pool, func(ctx context.Context, tx pgx.Tx) error {
				runs++
				if _, err := tx.Exec(ctx, "UPDATE "+table+" SET n = n + 1"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "COMMIT AND CHAIN"); err != nil { //dbopvet:ignore the misuse under test
					return err
				}
				if tc.after == "" {
					return &pgconn.PgError{Code: "40001", Message: "fn's own"}
				}
				_, err := tx.Exec(ctx, tc.after)
				return err
			}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(t.Context())
			var n int
			if err := pool.QueryRow(t.Context(), "SELECT n FROM "+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if dbop.VerdictOf(err) != dbop.Ambiguous || runs != 1 || n != 1 {
				t.Errorf("%v (verdict %v), ran %d times, counter %d; want Ambiguous, once, 1", err, dbop.VerdictOf(err), runs, n)
			}
		})
	}
}

// Composed the way users write code around it: a ShareCommits operation on
// a connection inside a transaction the caller began, and one run inside a
// plain InTx's function with that function's context.
func TestShareCommitsComposedWithTransactionsOfTheCaller(t *testing.T) {
	pool := newPool(t, 4)
	table := shareTable(t, pool, "pgxdb_share_rr_compose")

	t.Run("connection in the caller's transaction", func(t *testing.T) {
		exec(t, pool, "TRUNCATE "+table)
		conn, err := pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		tx, err := conn.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := insert(table, 1)(t.Context(), tx); err != nil {
			t.Fatal(err)
		}
		_, err = shared(conn, insert(table, 2)).With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
		if err == nil || !final(dbop.VerdictOf(err)) || !strings.Contains(err.Error(), "inside a transaction") {
			t.Errorf("in the caller's transaction: %v (verdict %v), want a final error naming the caller's transaction", err, dbop.VerdictOf(err))
		}
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := rows(t, pool, table); len(got) != 0 {
			t.Errorf("rows = %v after the caller rolled back, want none", got)
		}
	})

	t.Run("inside InTx's function", func(t *testing.T) {
		exec(t, pool, "TRUNCATE "+table)
		runs := 0
		_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			runs++
			if err := insert(table, 1)(ctx, tx); err != nil {
				return err
			}
			if _, err := shared(pool, insert(table, 2)).Run(ctx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'c' USING ERRCODE = '40001'; END $$")
			return err
		}).With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
		if !errors.Is(err, dbop.ErrAlreadyCommitted) || runs != 1 {
			t.Errorf("outer: %v after %d runs, want dbop.ErrAlreadyCommitted after 1 (the shared one committed)", err, runs)
		}
		if got := rows(t, pool, table); len(got) != 1 || got[2] == "" {
			t.Errorf("rows = %v, want the shared operation's row 2 once", got)
		}
	})
}
