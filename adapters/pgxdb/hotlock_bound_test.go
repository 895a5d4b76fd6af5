package pgxdb_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// holdLockTable locks the lock table of key on admin in a transaction that
// rolls back after hold, or when t ends, whichever comes first.
func holdLockTable(t *testing.T, admin *pgxpool.Pool, key int64, hold time.Duration) {
	t.Helper()
	holder, err := admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exec(t, holder, "LOCK TABLE "+hotlock.PostgresTable(key)+" IN EXCLUSIVE MODE")
	done := make(chan struct{})
	timer := time.AfterFunc(hold, func() {
		_ = holder.Rollback(context.Background())
		close(done)
	})
	t.Cleanup(func() {
		if timer.Stop() {
			_ = holder.Rollback(context.Background())
			return
		}
		<-done
	})
}

// connIn connects a *pgx.Conn whose search_path is schema, closed when t
// ends.
func connIn(t *testing.T, admin *pgxpool.Pool, schema string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(admin.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// connBeginner is a Beginner other than pgx's own handles, over one
// connection: the LOCK takes a round trip of its own.
type connBeginner struct{ conn *pgx.Conn }

func (c connBeginner) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	return c.conn.BeginTx(ctx, opts)
}

// Under READ COMMITTED, and with no isolation given (the server's default),
// the SELECT of the limits derived from a deadline precedes the HotSpot's
// LOCK, so the server bounds the LOCK's wait: when another process holds
// the lock longer than the deadline allows, the server ends the wait with
// 57014 or 55P03 before the deadline, the error is retried, and the
// connection survives (docs/backends.md §1.7, §1.14). A deadline that
// ended the wait on the client would make pgx close the connection.
func TestHotSpotLockBoundedByTheDeadline(t *testing.T) {
	const schema = "pgxdb_hotlock_bound"
	inPool := inSchema(t, schema, true)
	admin := newPool(t, 2, inPool)
	for _, c := range []struct {
		name string
		wrap func(*pgx.Conn) pgxdb.Beginner
	}{
		{"conn", func(c *pgx.Conn) pgxdb.Beginner { return c }},
		{"beginner", func(c *pgx.Conn) pgxdb.Beginner { return connBeginner{c} }},
	} {
		for _, iso := range []pgx.TxIsoLevel{"", pgx.ReadCommitted} {
			name := c.name + "/" + map[pgx.TxIsoLevel]string{"": "no isolation given", pgx.ReadCommitted: "read committed"}[iso]
			t.Run(name, func(t *testing.T) {
				conn := connIn(t, admin, schema)
				key := rand.Int64()
				holdLockTable(t, admin, key, 3*time.Second)
				var opts []pgxdb.TxOption
				if iso != "" {
					opts = append(opts, pgxdb.Isolation(iso))
				}
				ctx, cancel := context.WithTimeout(hotlock.With(context.Background(), &hotlock.Request{Key: key}), 500*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, err := pgxdb.Do(c.wrap(conn), func(context.Context, pgx.Tx) error { return nil }, opts...).Run(ctx)
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
				if conn.IsClosed() {
					t.Fatal("the connection was closed")
				}
				if got := queryInt(t, conn, "SELECT 1"); got != 1 {
					t.Errorf("SELECT 1 = %d", got)
				}
			})
		}
	}
}

// Under SERIALIZABLE the SELECT of the derived limits follows the LOCK,
// whose wait the deadline then bounds on the client only: when it passes,
// pgx closes the connection during the BEGIN round trip. The error says
// so, naming the context, and is NotRetryable on a single connection,
// which no attempt can begin on again.
func TestHotSpotLockDeadlineEndsTheBeginRoundTrip(t *testing.T) {
	const schema = "pgxdb_hotlock_bound_ser"
	inPool := inSchema(t, schema, true)
	admin := newPool(t, 2, inPool)
	conn := connIn(t, admin, schema)
	key := rand.Int64()
	holdLockTable(t, admin, key, 3*time.Second)
	ctx, cancel := context.WithTimeout(hotlock.With(context.Background(), &hotlock.Request{Key: key}), 500*time.Millisecond)
	defer cancel()
	_, err := pgxdb.Do(conn, func(context.Context, pgx.Tx) error { return nil }, pgxdb.Isolation(pgx.Serializable)).Run(ctx)
	t.Logf("%v", err)
	if err == nil {
		t.Fatal("the attempt took the lock its holder keeps for 3s within 500ms")
	}
	if v := dbop.VerdictOf(err); v != dbop.NotRetryable {
		t.Errorf("verdict %v, want NotRetryable", v)
	}
	msg := err.Error()
	if !strings.Contains(msg, "context") || !strings.Contains(msg, "ended the BEGIN round trip") || strings.Contains(msg, "that is closed") {
		t.Errorf("got %q, want an error saying that the context ended the BEGIN round trip, not that BEGIN ran on a closed connection", msg)
	}
	if !conn.IsClosed() {
		t.Error("the connection is open: the deadline did not end the wait on the client")
	}
}
