package sqldb_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// A HotSpot on PostgreSQL without lock tables probes them (LOCK TABLE …)
// and, on 42P01, takes the advisory lock instead. It used to ask the
// transaction's classifier whether the probe's error was retryable first,
// and a classifier of the caller's that retries everything made the
// probe's 42P01 the attempt's retryable error: every attempt probed again
// and failed the same way, until the retry gave up, and the operation's
// function never ran. Found by the generated pipelines of
// internal/faulttest (HotSpot and InTx[ClassifyBy(retry-everything)],
// thousands of "retry-transaction (pg 42P01)" per run, transfers exhausted
// on 42P01). The HotSpot's own statements' errors are now judged by the
// HotSpot alone.
func TestHotSpotWithARetryEverythingClassifierWithoutLockTablesPostgres(t *testing.T) {
	db := postgresInSchema(t, "sqldb_hs_retryall", false) // no lock tables
	name := table(t, db, "sqldb_hs_retryall_t", "(id int PRIMARY KEY, v int NOT NULL)")
	mustExec(t, db, "INSERT INTO "+name+" VALUES (1, 0)")
	retryAll := func(error) dbop.Verdict { return dbop.RetryTransaction }
	calls := 0
	var errs []error
	op := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
		calls++
		_, err := tx.ExecContext(ctx, "UPDATE "+name+" SET v = v + 1 WHERE id = 1")
		return 1, err
	}, sqldb.ClassifyBy(retryAll)).With(
		dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(6), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
			errs = append(errs, e.Err)
		})),
		dbop.HotSpot(),
	)
	if _, err := op.Run(t.Context()); err != nil {
		t.Errorf("Run: %v; the function ran %d times; retried errors: %v", err, calls, errs)
	}
	if v := scalar[int](t, db, "SELECT v FROM "+name+" WHERE id = 1"); v != 1 {
		t.Errorf("v = %d, want 1", v)
	}
}
