package pgxdb_test

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop"
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
