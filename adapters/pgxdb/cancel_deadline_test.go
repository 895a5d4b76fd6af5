package pgxdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// With pgx's CancelRequestContextWatcherHandler (docs/backends.md §2.7), a
// per-attempt WithTimeout that fires during a statement makes pgx send a
// cancel request, and PostgreSQL ends the statement with 57014 "canceling
// statement due to user request", which pgxdb.Classifier calls a cancel on
// purpose. Listed around the WithTimeout, the classifier stopped the retry
// after one attempt; listed inside it, or left out, the retry went on. The
// cancel is the deadline's: the retry goes on in every order.
func TestPerAttemptDeadlineCancelledByPgxIsRetried(t *testing.T) {
	pool := newPool(t, 2, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, CancelRequestDelay: 0, DeadlineDelay: time.Second}
		}
	})
	calls := 0
	op := dbop.Op[int](func(ctx context.Context) (int, error) {
		calls++
		_, err := pool.Exec(ctx, "SELECT pg_sleep(2)")
		return 0, err
	})
	_, err := op.With(
		dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)),
		dbop.ClassifyBy(pgxdb.Classifier),
		dbop.WithTimeout(200*time.Millisecond),
	).Run(t.Context())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "user request") {
		t.Fatalf("err = %v: want the server's answer to pgx's cancel request, 57014 \"… due to user request\"", err)
	}
	if calls != 3 || !errors.Is(err, dbop.ErrRetriesExhausted) {
		t.Errorf("%d attempts, err = %v (%v); want 3, each cut by its own deadline", calls, err, dbop.VerdictOf(err))
	}
}
