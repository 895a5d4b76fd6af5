package pgxdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// TestCopyFromSourceBuiltInsideIsCopiedOnRetry checks the way the package
// documentation gives for COPY under a retry: the pgx.CopyFromSource built
// inside the step, from a slice, so that each attempt copies every row.
// The first attempt times out on a row lock another transaction holds on
// id 50, the savepoint rolls it back, and the retry copies all 100 rows,
// once.
func TestCopyFromSourceBuiltInsideIsCopiedOnRetry(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_copy_retry", "id int PRIMARY KEY")
	release := holdUncommitted(t, pool, "INSERT INTO pgxdb_copy_retry VALUES (50)") // the COPY of id 50 waits on it
	rows := make([][]any, 100)
	for i := range rows {
		rows[i] = []any{i + 1}
	}
	attempts := 0
	var copied []int64
	var firstErr error
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			attempts++
			if attempts == 2 {
				release()
			}
			n, err := tx.CopyFrom(ctx, pgx.Identifier{"pgxdb_copy_retry"}, []string{"id"}, pgx.CopyFromRows(rows))
			if attempts == 1 {
				firstErr = err
			}
			copied = append(copied, n)
			return n, err
		})
		_, err := step.With(dbop.WithRetry(retryAtOnce), pgxdb.InSavepoint(tx, pgxdb.LockTimeout(200*time.Millisecond))).Run(ctx)
		return err
	}).With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
	n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_copy_retry")
	t.Logf("Run: %v; attempts %d; CopyFrom returned %v; rows committed %d", err, attempts, copied, n)
	// The fault fired: the first attempt timed out on the lock (55P03).
	if pgCode(firstErr) != "55P03" {
		t.Fatalf("the first attempt ended with %v, want a lock timeout (55P03)", firstErr)
	}
	if err != nil || attempts != 2 || n != 100 {
		t.Fatalf("err %v after %d attempts with %d rows committed; want success after 2 with 100", err, attempts, n)
	}
}

// holdUncommitted runs stmt in a transaction of its own on db, left open
// so that its locks are held, and returns a function that rolls it back
// (also run at the test's end).
func holdUncommitted(t *testing.T, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, stmt string) func() {
	t.Helper()
	tx, err := db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), stmt); err != nil {
		t.Fatal(err)
	}
	done := false
	release := func() {
		if !done {
			done = true
			_ = tx.Rollback(context.Background())
		}
	}
	t.Cleanup(release)
	return release
}
