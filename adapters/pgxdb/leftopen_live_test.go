package pgxdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A function that returns nil with tx.Query's rows or tx.SendBatch's
// results still open leaves the connection busy: pgx refuses to send
// COMMIT ("conn busy") and closes the connection, so nothing is committed,
// and each attempt would do the same, so it is not retried. The error
// names the mistake, and still unwraps to pgx's.
func TestCommitWithRowsLeftOpenNamesTheMistake(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_left_open", "id int PRIMARY KEY")
	for _, tc := range []struct {
		name string
		opts []pgxdb.TxOption
		open func(ctx context.Context, tx pgx.Tx) error // leaves something open
	}{
		{"rows", nil, func(ctx context.Context, tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "SELECT generate_series(1, 3)")
			if err != nil {
				return err
			}
			if !rows.Next() {
				return rows.Err()
			}
			return nil // rows left open
		}},
		{"batch", nil, func(ctx context.Context, tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue("SELECT 1")
			b.Queue("SELECT 2")
			br := tx.SendBatch(ctx, b)
			_, err := br.Exec()
			return err // br left open
		}},
		{"rows, ResolveCommit", []pgxdb.TxOption{pgxdb.ResolveCommit()}, func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Query(ctx, "SELECT generate_series(1, 3)")
			return err // rows left open, unread
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				runs++
				if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_left_open VALUES ($1)", runs); err != nil {
					return err
				}
				return tc.open(ctx, tx)
			}, tc.opts...).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
			t.Logf("err: %v", err)
			if err == nil {
				t.Fatal("committed with rows or a batch left open")
			}
			if !strings.Contains(err.Error(), "left open") || !strings.Contains(err.Error(), "COMMIT was not sent") {
				t.Errorf("the error does not name the mistake: %v", err)
			}
			if !pgconn.SafeToRetry(err) || !strings.Contains(err.Error(), "conn busy") {
				t.Errorf("pgx's error is lost: %v", err)
			}
			if v := dbop.VerdictOf(err); !final(v) {
				t.Errorf("verdict %v, want NotRetryable", v)
			}
			if errors.Is(err, scopes.ErrAmbiguousCommit) {
				t.Errorf("judged ambiguous: %v", err)
			}
			if runs != 1 {
				t.Errorf("fn ran %d times, want 1", runs)
			}
			if n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_left_open"); n != 0 {
				t.Errorf("%d rows committed, want 0", n)
			}
		})
	}
}

// A savepoint step that returns with tx.Query's rows open leaves the
// connection busy: pgx sends no RELEASE SAVEPOINT ("conn busy"), the
// transaction is doomed, and nothing is committed. The error names the
// mistake, as the COMMIT's does.
func TestSavepointStepWithRowsLeftOpenNamesTheMistake(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_left_open_sp", "id int PRIMARY KEY")
	runs := 0
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_left_open_sp VALUES (1)"); err != nil {
			return err
		}
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			runs++
			_, err := tx.Query(ctx, "SELECT generate_series(1, 3)")
			return 0, err // rows left open, unread
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), pgxdb.InSavepoint(tx)).Run(ctx)
		return err
	}).Run(t.Context())
	t.Logf("err: %v", err)
	if err == nil {
		t.Fatal("committed with rows left open by a savepoint step")
	}
	if !strings.Contains(err.Error(), "left open") || !strings.Contains(err.Error(), "RELEASE SAVEPOINT dbop_sp_1 was not sent") {
		t.Errorf("the error does not name the mistake: %v", err)
	}
	if !strings.Contains(err.Error(), "conn busy") {
		t.Errorf("pgx's error is lost: %v", err)
	}
	if runs != 1 {
		t.Errorf("the step ran %d times, want 1", runs)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_left_open_sp"); n != 0 {
		t.Errorf("%d rows committed, want 0", n)
	}
}
