package pgxdb_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// TestFnThatEndsTheTransactionItself: fn commits or rolls back the
// transaction InTx handed it, which it must not do, and then fails, or
// returns after the attempt's deadline passed, or returns nil. InTx then
// finds the transaction already ended (pgx.ErrTxClosed, docs/backends.md
// §2.11). After fn's COMMIT the work may have been committed: the error
// must be Ambiguous, neither retried (the row would be written again) nor
// replaced by a fallback (the caller would read "failed" for committed
// work). After fn's ROLLBACK nothing was: fn's error keeps its verdict
// (a 40001 is retried), and a nil from fn is an error no retry acts on.
func TestFnThatEndsTheTransactionItself(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_ended_in_fn", "id serial PRIMARY KEY")
	retry3 := dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))
	cases := []struct {
		name string
		// fn runs the INSERT, then body; body ends the transaction with
		// end on the runs it returns true for.
		end       string // "commit" or "rollback"
		body      func(ctx context.Context, tx pgx.Tx, run int) (ends bool, err error)
		opts      []pgxdb.TxOption
		with      []dbop.Decorator
		ambiguous bool // else final, or nil when wantNil
		wantNil   bool
		runs      int
		rows      int
	}{
		{
			name: "commit, then the attempt's deadline", end: "commit",
			body: func(ctx context.Context, _ pgx.Tx, _ int) (bool, error) { return true, nil },
			with: []dbop.Decorator{retry3, dbop.WithTimeout(time.Second)}, ambiguous: true, runs: 1, rows: 1,
		},
		{
			name: "commit, then a statement on the ended transaction, under OrDefault", end: "commit",
			body: func(ctx context.Context, _ pgx.Tx, _ int) (bool, error) { return true, nil },
			with: []dbop.Decorator{dbop.OrDefault(struct{}{}), retry3}, ambiguous: true, runs: 1, rows: 1,
		},
		{
			name: "commit, then nil, with ResolveCommit under OrDefault", end: "commit",
			body: func(ctx context.Context, _ pgx.Tx, _ int) (bool, error) { return true, nil },
			opts: []pgxdb.TxOption{pgxdb.ResolveCommit()},
			with: []dbop.Decorator{dbop.OrDefault(struct{}{}), retry3}, ambiguous: true, runs: 1, rows: 1,
		},
		{
			name: "rollback after a 40001, which is retried", end: "rollback",
			body: func(ctx context.Context, tx pgx.Tx, run int) (bool, error) {
				if run > 1 {
					return false, nil
				}
				_, err := tx.Exec(ctx, raise40001)
				return true, err
			},
			with: []dbop.Decorator{retry3}, wantNil: true, runs: 2, rows: 1,
		},
		{
			name: "rollback, then nil", end: "rollback",
			body: func(ctx context.Context, _ pgx.Tx, _ int) (bool, error) { return true, nil },
			with: []dbop.Decorator{retry3}, runs: 1, rows: 0,
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
				ends, err := tc.body(ctx, tx, runs)
				if !ends {
					return err
				}
				end := tx.Commit
				if tc.end == "rollback" {
					end = tx.Rollback
				}
				if eerr := end(ctx); eerr != nil {
					return eerr
				}
				ended++
				switch {
				case err != nil:
					return err
				case tc.name == "commit, then the attempt's deadline":
					<-ctx.Done() // a slow call after the commit
					return ctx.Err()
				case tc.name == "commit, then a statement on the ended transaction, under OrDefault":
					_, err := tx.Exec(ctx, "SELECT 1")
					return err
				}
				return nil
			}, tc.opts...)
			_, err := op.With(tc.with...).Run(t.Context())
			rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_ended_in_fn")
			t.Logf("Run: %v; runs %d, rows %d", err, runs, rows)
			if ended == 0 {
				t.Fatalf("fn never ended its transaction (runs %d)", runs)
			}
			if runs != tc.runs || rows != tc.rows {
				t.Errorf("fn ran %d times, %d rows; want %d and %d", runs, rows, tc.runs, tc.rows)
			}
			v := dbop.VerdictOf(err)
			switch {
			case tc.wantNil:
				if err != nil {
					t.Errorf("Run: %v, want success", err)
				}
			case tc.ambiguous:
				if v != dbop.Ambiguous || !errors.Is(err, scopes.ErrAmbiguousCommit) || !errors.Is(err, pgx.ErrTxClosed) {
					t.Errorf("Run: %v (verdict %v), want an ambiguous commit holding pgx.ErrTxClosed: fn committed", err, v)
				}
			default:
				if err == nil || !final(v) || errors.Is(err, scopes.ErrAmbiguousCommit) || !errors.Is(err, pgx.ErrTxClosed) {
					t.Errorf("Run: %v (verdict %v), want a final error holding pgx.ErrTxClosed: fn rolled back", err, v)
				}
			}
		})
	}
}

// TestFnThatCommitsItselfOnAPooledConnection: fn's own COMMIT gives the
// connection back to the pool, where another goroutine takes it at once.
// InTx must not read that connection's state any more (the race detector
// reports it), and the outcome is Ambiguous.
func TestFnThatCommitsItselfOnAPooledConnection(t *testing.T) {
	pool := newPool(t, 1)
	createTable(t, pool, "pgxdb_ended_in_fn_pooled", "id serial PRIMARY KEY")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	queries := 0
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var n int
			if pool.QueryRow(ctx, "SELECT 1").Scan(&n) == nil {
				queries++
			}
		}
	}()
	const n = 20
	for range n {
		_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_ended_in_fn_pooled DEFAULT VALUES"); err != nil {
				return err
			}
			return tx.Commit(ctx) //dbopvet:ignore the misuse under test: fn commits the transaction itself
		}).Run(t.Context())
		if dbop.VerdictOf(err) != dbop.Ambiguous {
			t.Errorf("Run: %v, want an ambiguous commit", err)
		}
	}
	cancel()
	wg.Wait()
	if queries == 0 {
		t.Fatal("no other query took the connection")
	}
	if rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_ended_in_fn_pooled"); rows != n {
		t.Errorf("%d rows, want %d", rows, n)
	}
}
