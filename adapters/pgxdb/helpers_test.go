package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// retryAtOnce retries without waiting, up to the default attempt limit.
var retryAtOnce = dbop.Constant(0)

// final reports whether v ends a retry: the error was not recognised as
// retryable (Unclassified) or was called NotRetryable. A classifier that
// calls an error NotRetryable leaves it unwrapped when nothing would retry
// it anyway (invariant 7), so VerdictOf then reports Unclassified.
func final(v dbop.Verdict) bool { return v == dbop.Unclassified || v == dbop.NotRetryable }

// newPool returns a pool on the test database with at most maxConns
// connections, closed when t ends. mods adjust its configuration.
func newPool(t *testing.T, maxConns int32, mods ...func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatalf("parse %s: %v", testdb.PostgresEnv, err)
	}
	cfg.MaxConns = maxConns
	for _, m := range mods {
		m(cfg)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(t.Context()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	return pool
}

// traced returns a pool modifier that records every statement in log.
func traced(log *sqlLog) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = log }
}

// createTable creates table name (dropping a leftover first) with the given
// column definitions and drops it when t ends. Other packages' tests share
// the database, so every name starts with pgxdb_ and is unique per test.
func createTable(t *testing.T, db *pgxpool.Pool, name, columns string, seed ...string) {
	t.Helper()
	if !strings.HasPrefix(name, "pgxdb_") {
		t.Fatalf("table %q: names must start with pgxdb_", name)
	}
	ident := pgx.Identifier{name}.Sanitize()
	exec(t, db, "DROP TABLE IF EXISTS "+ident)
	exec(t, db, "CREATE TABLE "+ident+" ("+columns+")")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+ident); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	for _, s := range seed {
		exec(t, db, s)
	}
}

func exec(t *testing.T, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// queryInt returns the single integer sql yields.
func queryInt(t *testing.T, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// pid returns the server process of tx's connection.
func pid(tx pgx.Tx) uint32 { return tx.Conn().PgConn().PID() }

// waitUntil polls cond every few milliseconds until it holds, failing t
// after ten seconds. It is for catalog views (pg_stat_activity, pg_locks),
// which say when another backend has reached a state; it never stands in
// for a barrier.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForLockWait waits until backend pid is waiting for a lock.
func waitForLockWait(t *testing.T, admin *pgxpool.Pool, pid uint32) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("backend %d waits for a lock", pid), func() bool {
		var waiting bool
		err := admin.QueryRow(t.Context(),
			"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock')", pid).Scan(&waiting)
		return err == nil && waiting
	})
}

// waitForBackendGone waits until backend pid has exited.
func waitForBackendGone(t *testing.T, admin *pgxpool.Pool, pid uint32) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("backend %d exits", pid), func() bool {
		var alive bool
		err := admin.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid).Scan(&alive)
		return err == nil && !alive
	})
}

// pgCode returns the SQLSTATE of the *pgconn.PgError in err's tree, or "".
func pgCode(err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code
	}
	return ""
}

// sqlLog is a pgx.QueryTracer that records the statements of the
// connections it is attached to, one entry per statement: the SQL with
// runs of white space collapsed, followed by " -> " and the SQLSTATE when
// the statement failed with a server error, or " -> error" for another
// error.
type sqlLog struct {
	mu      sync.Mutex
	entries []string
}

type logIndexKey struct{}

func (l *sqlLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, strings.Join(strings.Fields(data.SQL), " "))
	return context.WithValue(ctx, logIndexKey{}, len(l.entries)-1)
}

func (l *sqlLog) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if data.Err == nil {
		return
	}
	i, ok := ctx.Value(logIndexKey{}).(int)
	if !ok {
		return
	}
	suffix := " -> error"
	if code := pgCode(data.Err); code != "" {
		suffix = " -> " + code
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i] += suffix
}

// Log returns the statements recorded so far.
func (l *sqlLog) Log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}

// Reset forgets the statements recorded so far.
func (l *sqlLog) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

func checkLog(t *testing.T, want, got []string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statement log mismatch (-want +got):\n%s", diff)
	}
}

// attempts returns how many attempts the outermost WithRetry made before
// returning err, and false when err did not come from giving up.
func attempts(err error) (int, bool) {
	if re, ok := errors.AsType[*dbop.RetryError](err); ok {
		return re.Attempts, true
	}
	return 0, false
}

// retries records the OnRetry events of a retry.
type retries struct {
	mu     sync.Mutex
	events []dbop.AttemptEvent
}

func (r *retries) record(_ context.Context, e dbop.AttemptEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// codes returns the SQLSTATE of each retried error.
func (r *retries) codes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var codes []string
	for _, e := range r.events {
		codes = append(codes, pgCode(e.Err))
	}
	return codes
}
