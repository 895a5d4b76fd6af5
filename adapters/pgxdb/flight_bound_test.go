package pgxdb_test

// A HotSpot's bound is a context value of its attempt; a Flight's shared
// run drops the caller's deadline and must drop that value too.

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// TestReadSharedInsideABoundedHotSpotAttempt: an attempt a HotSpot bounds
// carries the time by which the server must end its statements
// (hotlock.WithServerDeadline, start+bound), next to a context deadline at
// twice the bound plus 50 ms. A shared run runs with context.WithoutCancel:
// were the server deadline value to stay while the deadline goes,
// resolve.ServerLimits, finding no deadline, would take that value for
// both statement_timeout and lock_timeout, at least 1 ms once it has
// passed, and the 10 ms read would fail with 57014 for every caller joined
// to the run (and every attempt of a retry inside it). The read must
// succeed shared as it does directly.
func TestReadSharedInsideABoundedHotSpotAttempt(t *testing.T) {
	pool := newPool(t, 4)
	read := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		var v int
		err := tx.QueryRow(ctx, "SELECT 1 FROM pg_sleep(0.01)").Scan(&v)
		return v, err
	})
	var flight dbop.Flight
	for _, c := range []struct {
		name string
		read dbop.Op[int]
	}{
		{"direct", read},
		{"shared", read.With(flight.Share("k"))},
		{"shared, retried inside", read.With(flight.Share("k2"), dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A new HotSpot limits, and bounds its attempts (200 ms
			// before any success is measured).
			op := dbop.Op[int](func(ctx context.Context) (int, error) {
				time.Sleep(250 * time.Millisecond) // work of the attempt's own, before the read
				return c.read.Run(ctx)
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1)), dbop.HotSpot())
			if _, err := op.Run(t.Context()); err != nil {
				t.Errorf("a 10 ms read %s inside a HotSpot's attempt, 250 ms in, with 200 ms of the attempt's 450 ms left: %v", c.name, err)
			}
		})
	}
}
