package contention

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
)

// LeaseFor is how long a PGLease process keeps the turn while its own
// workers wait: it gives the turn up sooner when none does.
const LeaseFor = 10 * time.Millisecond

// PGLease takes turns through the database by process, not by
// transaction: a process runs its transfers one at a time, each without a
// lock of its own, while a transaction on a connection of its own (the
// lease) holds one of dbop.HotSpot's lock tables IN EXCLUSIVE MODE, which
// every other process's lease waits for. The lease ends (COMMIT) once it
// has been held LeaseFor and another worker of the process waits, or at
// once when none waits; the next transfer begins a new one. It is not a
// retry strategy but a yardstick for issue 15's fleet cases: what
// ordering a fleet costs when the hand-over between processes happens
// once per lease instead of once per transaction (pglock), with the
// lease a transaction, so nothing outlives it on its connection. A
// retryable error is retried at once, up to 50 attempts (Immediate).
// PostgreSQL only, with the lock tables.
func PGLease(cfg Config) (Strategy, error) {
	if cfg.Backend.Kind != Postgres {
		return Strategy{}, fmt.Errorf("strategy pglease: PostgreSQL only (LOCK TABLE on dbop.HotSpot's lock table), not %s", cfg.Backend.Kind)
	}
	if cfg.NoLockTables {
		return Strategy{}, fmt.Errorf("strategy pglease: locks dbop.HotSpot's lock table, which -no-lock-tables drops")
	}
	var (
		mu      sync.Mutex // one transfer at a time in the process; guards the lease
		waiting atomic.Int32
		conn    *pgx.Conn
		connErr error
		held    bool
		since   time.Time
	)
	retry := Immediate(pgLockAttempts).Transfer
	begin := "BEGIN; " + hotlock.PostgresLock(0)
	return Strategy{
		Name: "pglease",
		Start: func() func() {
			conn, connErr = pgx.Connect(context.Background(), cfg.Backend.DSNs[0])
			return func() {
				if conn == nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if held {
					_, _ = conn.Exec(ctx, "COMMIT")
				}
				_ = conn.Close(ctx)
			}
		},
		Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
			if connErr != nil {
				return fmt.Errorf("pglease: the lease's connection: %w", connErr)
			}
			waiting.Add(1)
			mu.Lock()
			waiting.Add(-1)
			defer mu.Unlock()
			if !held {
				// Waits for every other process's lease to end. The lease's
				// wait survives the drain's end as the transfers' do.
				if _, err := conn.Exec(context.WithoutCancel(ctx), begin); err != nil {
					_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
					return fmt.Errorf("pglease: taking the lease: %w", err)
				}
				held, since = true, time.Now()
			}
			err := retry(ctx, db, fn)
			if waiting.Load() == 0 || time.Since(since) >= LeaseFor {
				if _, cerr := conn.Exec(context.WithoutCancel(ctx), "COMMIT"); cerr != nil && err == nil {
					err = fmt.Errorf("pglease: ending the lease: %w", cerr)
				}
				held = false
			}
			return err
		},
	}, nil
}
