package pgxdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
)

// hotSpotContext returns a context as a dbop.HotSpot gives a bounded
// attempt: a server deadline bound away, and the context's own deadline at
// twice the bound plus 50ms, the backstop.
func hotSpotContext(t *testing.T, bound time.Duration) context.Context {
	now := time.Now()
	ctx, cancel := context.WithDeadline(t.Context(), now.Add(2*bound+50*time.Millisecond))
	t.Cleanup(cancel)
	return hotlock.WithServerDeadline(ctx, now.Add(bound))
}

// A HotSpot's bound limits lock waits (lock_timeout), the waits of a lock
// cycle; a statement slow for another reason keeps the limit of the
// context's deadline (statement_timeout), so that a busy server does not
// fail attempts that wait for no lock (resolve.ServerLimits).
func TestHotSpotBoundLimitsLockWaitsNotStatements(t *testing.T) {
	const bound = 20 * time.Millisecond
	pool := newPool(t, 1)
	other := newPool(t, 1)
	createTable(t, other, "pgxdb_hotspot_bound", "id int PRIMARY KEY", "INSERT INTO pgxdb_hotspot_bound VALUES (1)")

	t.Run("a statement slower than the bound", func(t *testing.T) {
		var lock, stmt time.Duration
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			var ls, ss string
			if err := tx.QueryRow(ctx, "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')").Scan(&ls, &ss); err != nil {
				return 0, err
			}
			var err error
			if lock, err = time.ParseDuration(ls); err != nil {
				return 0, err
			}
			if stmt, err = time.ParseDuration(ss); err != nil {
				return 0, err
			}
			_, err = tx.Exec(ctx, "SELECT pg_sleep(0.04)") // twice the bound
			return 1, err
		})
		if _, err := op.Run(hotSpotContext(t, bound)); err != nil {
			t.Fatalf("a 40ms statement under a 20ms bound on lock waits failed: %v", err)
		}
		if lock <= 0 || lock > bound {
			t.Errorf("lock_timeout = %v, want the bound, at most %v", lock, bound)
		}
		if stmt < 70*time.Millisecond || stmt > 81*time.Millisecond {
			t.Errorf("statement_timeout = %v, want the context's 90ms less its margin, 70ms to 81ms", stmt)
		}
	})

	t.Run("a lock wait longer than the bound", func(t *testing.T) {
		holder, err := other.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Rollback(context.Background())
		exec(t, holder, "SELECT id FROM pgxdb_hotspot_bound WHERE id = 1 FOR UPDATE")
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			_, err := tx.Exec(ctx, "SELECT id FROM pgxdb_hotspot_bound WHERE id = 1 FOR UPDATE")
			return 1, err
		})
		start := time.Now()
		_, err = op.Run(hotSpotContext(t, bound))
		if code := pgCode(err); code != "55P03" {
			t.Fatalf("the lock wait ended with %v (SQLSTATE %q), want 55P03 lock_timeout", err, code)
		}
		if took := time.Since(start); took >= 70*time.Millisecond {
			t.Errorf("the lock wait ended after %v, want about the 20ms bound, well before the statement limit", took)
		}
	})
}
