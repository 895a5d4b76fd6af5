package pgxdb_test

// Live on PostgreSQL: a Then of savepoint steps inside pgxdb.InTx whose
// second step fails with an error the transaction scope does not mark
// Released (a constraint violation; an application error only an outer
// ClassifyBy knows). The transaction is rolled back, and with it the
// release the Then counted: OrDefault gives its default, the retry around
// InTx runs the transaction again.

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func frameRows(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOrDefaultAroundARolledBackInTxOfReleasedSteps(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_frame_rows", "name text primary key", "INSERT INTO pgxdb_frame_rows VALUES ('dup')")
	v, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		ins := func(name string) dbop.Op[int] {
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				_, err := tx.Exec(ctx, "INSERT INTO pgxdb_frame_rows VALUES ($1)", name)
				return 1, err
			}).With(pgxdb.InSavepoint(tx))
		}
		return dbop.Then(ins("A"), func(ctx context.Context, _ int) (int, error) { return ins("dup").Run(ctx) }).Run(ctx)
	}).With(dbop.OrDefault(-1)).Run(t.Context())
	if n := frameRows(t, pool, "pgxdb_frame_rows"); n != 1 {
		t.Fatalf("%d rows, want 1 (the transaction rolled back)", n)
	}
	var pgErr *pgconn.PgError
	if err != nil || v != -1 {
		t.Errorf("Run: %d, %v (PgError reachable: %v); want the default -1: the transaction rolled back, nothing took effect", v, err, errors.As(err, &pgErr))
	}
}

func TestRetryWithClassifyByAroundARolledBackInTxOfReleasedSteps(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_frame_rows2", "name text")
	errStale := errors.New("stale version")
	stale := func(err error) dbop.Verdict {
		if errors.Is(err, errStale) {
			return dbop.RetryTransaction
		}
		return dbop.Unclassified
	}
	runs := 0
	_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		ins := func(name string, fail bool) dbop.Op[int] {
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_frame_rows2 VALUES ($1)", name); err != nil {
					return 0, err
				}
				if fail {
					return 0, errStale
				}
				return 1, nil
			}).With(pgxdb.InSavepoint(tx))
		}
		runs++
		return dbop.Then(ins("A", false), func(ctx context.Context, _ int) (int, error) { return ins("B", runs == 1).Run(ctx) }).Run(ctx)
	}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), dbop.ClassifyBy(stale)).Run(t.Context())
	if err != nil || runs != 2 {
		t.Errorf("Run: %v after %d runs; want the rolled-back transaction run again and committed", err, runs)
	}
	if n := frameRows(t, pool, "pgxdb_frame_rows2"); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
}
