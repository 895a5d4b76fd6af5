package classifiers_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A query on a *pgx.Conn whose previous query's rows are still open fails
// with pgconn's "conn busy", which every PostgreSQL classifier calls final.
func TestLivePgxConnBusy(t *testing.T) {
	conn, err := pgx.Connect(t.Context(), testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), "SELECT generate_series(1, 3)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(t.Context(), "SELECT 1") // the rows above are still open
	rows.Close()
	if err == nil || err.Error() != "conn busy" || !pgconn.SafeToRetry(err) || errors.Is(err, pgconn.ErrConnClosed) {
		t.Fatalf("got %T %v (SafeToRetry %v); want pgconn's conn busy, safe to retry", err, err, pgconn.SafeToRetry(err))
	}
	checkVerdicts(t, "Postgres", classifiers.Postgres, []verdictCase{{"Postgres", err, dbop.NotRetryable}})
	checkVerdicts(t, "CockroachDB", classifiers.CockroachDB, []verdictCase{{"CockroachDB", err, dbop.NotRetryable}})
	checkVerdicts(t, "Default", classifiers.Default, []verdictCase{{"Default", err, dbop.NotRetryable}})
	checkVerdicts(t, "PostgresCommit", classifiers.PostgresCommit, []verdictCase{{"PostgresCommit", err, dbop.Unclassified}})
	if _, err := conn.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Errorf("the connection after the rows were closed: %v", err)
	}
}

// A transaction function that leaves rows open fails with "conn busy",
// on its next statement or on the scope's COMMIT; a transaction scope
// judged by these classifiers alone (as the sqldb adapter's Postgres
// dialect is), under a retry, runs it once and returns that error.
func TestLivePgxConnBusyIsNotRetried(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, tc := range []struct {
		name string
		next func(ctx context.Context, tx pgx.Tx) error // after the rows were left open
	}{
		{"next statement", func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT 1")
			return err
		}},
		{"scope's COMMIT", func(context.Context, pgx.Tx) error { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls int
			begin := func(ctx context.Context, _ scopes.BeginOptions) (pgx.Tx, error) { return pool.Begin(ctx) }
			_, err := scopes.InTx(begin, func(ctx context.Context, tx pgx.Tx) (int, error) {
				calls++
				if _, err := tx.Query(ctx, "SELECT generate_series(1, 3)"); err != nil { // rows left open
					return 0, err
				}
				return 0, tc.next(ctx, tx)
			},
				scopes.ClassifyBy(classifiers.Postgres),
				scopes.CommitOutcome(classifiers.PostgresCommit),
			).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
			if calls != 1 || err == nil || !strings.Contains(err.Error(), "conn busy") || dbop.VerdictOf(err).Retryable() {
				t.Errorf("ran %d times, returned %v (verdict %v); want one run ending in conn busy, not retryable",
					calls, err, dbop.VerdictOf(err))
			}
		})
	}
}

// A session that PostgreSQL (14 and later) ended for sitting idle outside
// a transaction past idle_session_timeout answers the next statement, a
// BEGIN say, with FATAL 57P05: the session is gone and the statement never
// ran, as after 57P01 or 25P03, so the whole transaction may run again on
// another connection (docs/backends.md §1.9).
func TestLiveIdleSessionTimeoutIsRetried(t *testing.T) {
	conn, err := pgx.Connect(t.Context(), testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "SET idle_session_timeout = '50ms'"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	_, err = conn.Exec(t.Context(), "BEGIN")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P05" || pgErr.Severity != "FATAL" {
		t.Fatalf("BEGIN after the idle-session timeout: got %T %v, want FATAL 57P05", err, err)
	}
	for name, c := range map[string]dbop.Classifier{"Postgres": classifiers.Postgres, "CockroachDB": classifiers.CockroachDB, "Default": classifiers.Default} {
		checkVerdicts(t, name, c, []verdictCase{{name, err, dbop.RetryTransaction}})
	}
}
