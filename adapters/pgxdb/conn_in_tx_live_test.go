package pgxdb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A transaction scope run on a connection inside a transaction the caller
// began there (conn.Begin): PostgreSQL ignores a BEGIN inside a block
// (docs/backends.md §1.21) and pgx sends it anyway (§2.18), so the
// attempt's ROLLBACK undid the caller's insert, the retry's COMMIT
// committed the step, and the caller's own Rollback then rolled back
// nothing: work lost, and work committed that the caller rolled back. InTx
// and Do refuse such a connection, NotRetryable, with nothing sent, and the
// caller's transaction is left as it was. Each case: a *pgx.Conn, a
// *pgxpool.Conn; the caller's transaction open, and failed (25P02 state).
func TestInTxRefusesAConnectionInsideTheCallersTransaction(t *testing.T) {
	pool := newPool(t, 3)
	createTable(t, pool, "pgxdb_conn_in_tx", "k text NOT NULL")
	for _, c := range []struct {
		name   string
		failed bool
		conn   func(t *testing.T) pgxdb.Beginner
	}{
		{"pgx.Conn", false, func(t *testing.T) pgxdb.Beginner {
			conn, err := pgx.Connect(t.Context(), testdb.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close(context.Background()) })
			return conn
		}},
		{"pgxpool.Conn", false, func(t *testing.T) pgxdb.Beginner {
			conn, err := pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(conn.Release)
			return conn
		}},
		{"pgxpool.Conn, failed transaction", true, func(t *testing.T) pgxdb.Beginner {
			conn, err := pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(conn.Release)
			return conn
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			exec(t, pool, "DELETE FROM pgxdb_conn_in_tx")
			ctx := t.Context()
			db := c.conn(t)
			var tx pgx.Tx
			var err error
			switch conn := db.(type) {
			case *pgx.Conn:
				tx, err = conn.Begin(ctx)
			case *pgxpool.Conn:
				tx, err = conn.Begin(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_conn_in_tx VALUES ('mine')"); err != nil {
				t.Fatal(err)
			}
			if c.failed {
				if _, err := tx.Exec(ctx, "SELECT 1/0"); err == nil {
					t.Fatal("1/0 did not fail")
				}
			}
			runs := 0
			_, runErr := pgxdb.Do(db, func(ctx context.Context, tx pgx.Tx) error {
				runs++
				if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_conn_in_tx VALUES ('step')"); err != nil {
					return err
				}
				if runs == 1 {
					_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
					return err // InTx rolls back; the retry runs fn again
				}
				return nil
			}).With(dbop.WithRetry(dbop.Constant(0))).Run(ctx)
			if runs != 0 || runErr == nil || !final(dbop.VerdictOf(runErr)) || !strings.Contains(runErr.Error(), "inside a transaction") {
				t.Errorf("Do = %v (%v) after %d runs of its function; want a NotRetryable error saying the connection is inside a transaction, and no run", runErr, dbop.VerdictOf(runErr), runs)
			}
			if !c.failed {
				// The caller's transaction is intact: its insert is there.
				var n int
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM pgxdb_conn_in_tx WHERE k = 'mine'").Scan(&n); err != nil || n != 1 {
					t.Errorf("the caller's transaction sees its insert %d times (%v), want once", n, err)
				}
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Errorf("the caller's rollback: %v", err)
			}
			if n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_conn_in_tx"); n != 0 {
				t.Errorf("after the caller rolled its transaction back, %d rows are committed, want 0", n)
			}
		})
	}
}
