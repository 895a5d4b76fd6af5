package pgxdb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// TestBeginOnAClosedConnIsNotRetried: a connection the caller acquired
// (a *pgxpool.Conn) and passed as the Beginner, whose backend was
// terminated, can begin no attempt again: the retry stops at the first,
// with an error that says why, instead of repeating "conn closed".
func TestBeginOnAClosedConnIsNotRetried(t *testing.T) {
	pool := newPool(t, 4)
	c, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	admin := newPool(t, 1)
	pid := c.Conn().PgConn().PID()
	exec(t, admin, "SELECT pg_terminate_backend($1)", pid)
	waitForBackendGone(t, admin, pid)
	runs := 0
	_, err = pgxdb.Do(c, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		_, err := tx.Exec(ctx, "SELECT 1")
		return err
	}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(5))).Run(t.Context())
	if err == nil {
		t.Fatal("a transaction began on a connection whose backend was terminated")
	}
	if n, _ := attempts(err); n > 1 || runs != 0 {
		t.Errorf("%d attempts, fn ran %d times, on a connection that is closed: %v", n, runs, err)
	}
	if v := dbop.VerdictOf(err); v != dbop.NotRetryable || !strings.Contains(err.Error(), "is closed") {
		t.Errorf("got %v (verdict %v), want a NotRetryable error saying the connection is closed", err, v)
	}
}
