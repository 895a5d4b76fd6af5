package pgxdb_test

// A wait for a dbop.HotSpot's lock cut short by the caller's context, on
// pgx's own handles (the LOCK travels in the BEGIN round trip, and a
// cancel request's 57014 answers it) and through another Beginner (the
// statements of hotlock.Take): the operation takes the lock tables again
// afterwards, and waits for another process that holds them.

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// wrappedBeginner hides the pool's type, so that hotlock.Begin takes the
// lock with statements of its own (Take) rather than in BEGIN's round trip.
type wrappedBeginner struct{ p *pgxpool.Pool }

func (w wrappedBeginner) BeginTx(ctx context.Context, o pgx.TxOptions) (pgx.Tx, error) {
	return w.p.BeginTx(ctx, o)
}

func TestHotLockCancelledWaitKeepsTheLock(t *testing.T) {
	for _, c := range []struct {
		name   string
		mods   []func(*pgxpool.Config)
		wrap   bool
		schema string
	}{
		{name: "pool, default context handler", schema: "pgxdb_hlc_hl1"},
		{name: "pool, cancel request handler", schema: "pgxdb_hlc_hl2", mods: []func(*pgxpool.Config){func(cfg *pgxpool.Config) {
			cfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, CancelRequestDelay: 0, DeadlineDelay: time.Second}
			}
		}}},
		{name: "another Beginner", schema: "pgxdb_hlc_hl3", wrap: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			pool := newPool(t, 4, append([]func(*pgxpool.Config){inSchema(t, c.schema, true)}, c.mods...)...)
			exec(t, pool, "CREATE TABLE pgxdb_hlc_hot (id int PRIMARY KEY, v int NOT NULL)")
			exec(t, pool, "INSERT INTO pgxdb_hlc_hot VALUES (1, 0)")
			key := rand.Int64()
			var db pgxdb.Beginner = pool
			if c.wrap {
				db = wrappedBeginner{pool}
			}
			op := pgxdb.InTx(db, func(ctx context.Context, tx pgx.Tx) (struct{}, error) {
				_, err := tx.Exec(ctx, "UPDATE pgxdb_hlc_hot SET v = v + 1 WHERE id = 1")
				return struct{}{}, err
			})
			hold := func() pgx.Tx {
				holder, err := pool.Begin(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := holder.Exec(t.Context(), "LOCK TABLE "+hotlock.PostgresTable(key)+" IN EXCLUSIVE MODE"); err != nil {
					t.Fatal(err)
				}
				return holder
			}
			req := &hotlock.Request{Key: key}
			if _, err := op.Run(hotlock.With(t.Context(), req)); err != nil {
				t.Fatal(err)
			}
			if took, _, _ := req.Outcome(); !took {
				t.Fatal("the first run did not take the lock")
			}
			holder := hold()
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(300*time.Millisecond, cancel)
			_, err := op.Run(hotlock.With(ctx, &hotlock.Request{Key: key}))
			if err == nil {
				t.Fatal("the run cancelled while another process held the lock succeeded: it did not wait for the lock")
			}
			holder.Rollback(t.Context())

			holder = hold()
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := op.Run(hotlock.With(t.Context(), &hotlock.Request{Key: key}))
				done <- err
			}()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-done:
				t.Errorf("the run ended after %v (%v) while another process held the HotSpot's lock table: the processes are no longer ordered", time.Since(start), err)
				holder.Rollback(t.Context())
			default:
				holder.Rollback(t.Context())
				<-done
			}
		})
	}
}
