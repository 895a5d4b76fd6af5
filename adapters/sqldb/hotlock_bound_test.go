package sqldb_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// Under READ COMMITTED, and with no isolation given (the server's default),
// the SELECT of the limits derived from a deadline precedes the HotSpot's
// LOCK on PostgreSQL, so the server bounds the LOCK's wait: when another
// process holds the lock longer than the deadline allows, the server ends
// the wait with 57014 or 55P03 before the deadline, the error is retried,
// and the connection survives (docs/backends.md §1.7, §1.14). A deadline
// that ended the wait on the client would make pgx close the connection.
func TestHotSpotLockBoundedByTheDeadline(t *testing.T) {
	const schema = "sqldb_hotlock_bound"
	admin := postgresInSchema(t, schema, true)
	for _, iso := range []sql.IsolationLevel{sql.LevelDefault, sql.LevelReadCommitted} {
		t.Run(iso.String(), func(t *testing.T) {
			db := openPostgres(t, "search_path="+schema)
			db.SetMaxOpenConns(1)
			db.SetMaxIdleConns(1)
			pid := scalar[int](t, db, "SELECT pg_backend_pid()")
			key := rand.Int64()
			holder, err := admin.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, holder, "LOCK TABLE "+hotlock.PostgresTable(key)+" IN EXCLUSIVE MODE")
			timer := time.AfterFunc(3*time.Second, func() { _ = holder.Rollback() })
			defer func() {
				if timer.Stop() {
					_ = holder.Rollback()
				}
			}()
			ctx, cancel := context.WithTimeout(hotlock.With(context.Background(), &hotlock.Request{Key: key}), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = sqldb.InTx(db, sqldb.Postgres, func(context.Context, *sql.Tx) (struct{}, error) { return struct{}{}, nil },
				sqldb.Isolation(iso)).Run(ctx)
			took := time.Since(start)
			t.Logf("after %v: %v (verdict %v)", took.Round(time.Millisecond), err, dbop.VerdictOf(err))
			if code := pgCode(err); code != "57014" && code != "55P03" {
				t.Errorf("got %v (SQLSTATE %q), want the server's statement or lock timeout", err, code)
			}
			if took >= 500*time.Millisecond {
				t.Errorf("the wait ended after %v, not before the deadline (500ms)", took)
			}
			if v := dbop.VerdictOf(err); !v.Retryable() {
				t.Errorf("verdict %v, want a retryable one", v)
			}
			if got := scalar[int](t, db, "SELECT pg_backend_pid()"); got != pid {
				t.Errorf("the pool's one connection is backend %d, was %d: the attempt's connection was closed", got, pid)
			}
		})
	}
}
