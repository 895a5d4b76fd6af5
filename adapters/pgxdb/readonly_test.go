package pgxdb_test

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// A write in a ReadOnly transaction fails with 25006 and is not retried.
func TestReadOnlyWriteIsNotRetried(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 1, traced(&log))
	admin := newPool(t, 1)
	createTable(t, admin, "pgxdb_readonly", "id int PRIMARY KEY")

	var runs int
	var fnErr error
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		_, fnErr = tx.Exec(ctx, "INSERT INTO pgxdb_readonly VALUES (1)")
		return 0, fnErr
	}, pgxdb.ReadOnly())
	_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())

	if code := pgCode(err); code != "25006" {
		t.Fatalf("error = %v, want SQLSTATE 25006 (read_only_sql_transaction)", err)
	}
	// NotRetryable, so final and returned as fn returned it (invariant 7).
	if v := dbop.VerdictOf(err); !final(v) || err != fnErr {
		t.Errorf("Run = %v (verdict %v), want the error fn returned, final", err, v)
	}
	if _, retried := attempts(err); retried || runs != 1 {
		t.Errorf("fn ran %d times, want 1", runs)
	}
	checkLog(t, []string{
		"begin read only",
		"INSERT INTO pgxdb_readonly VALUES (1) -> 25006",
		"rollback",
	}, log.Log())
	if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_readonly"); got != 0 {
		t.Errorf("%d rows, want 0", got)
	}
}
