package faulttest

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestFaultIdempotentRetryKeepsAmbiguity is the workload's invariant for
// one transfer, with the faults placed by hand: the answer to the first
// attempt's COMMIT is lost after the server committed, so the outcome is
// ambiguous; the retry is Idempotent, so it tries again; and the next
// attempts fail without reaching the ledger:
//
//   - "server unreachable": the server stays unreachable until the
//     attempts run out (a failover, in short);
//   - "next attempt cancelled": the next attempt's first statement is
//     cancelled (pg_cancel_backend, as an operator would), which is not
//     retried.
//
// The transfer was applied, so the caller must not be told a plain
// failure: whatever the retry returns must still say that the outcome is
// unknown (scopes.ErrAmbiguousCommit, or the verdict Ambiguous). A caller
// told "retries exhausted: connection refused" or "canceling statement due
// to user request" may well run the transfer again under a new idempotency
// key, and apply it twice.
func TestFaultIdempotentRetryKeepsAmbiguity(t *testing.T) {
	tests := []struct {
		name string
		// next runs at the start of every attempt after the first;
		// down makes the server unreachable.
		next func(ctx context.Context, tx pgx.Tx) error
		down bool
	}{
		{name: "server unreachable", down: true},
		{name: "next attempt cancelled", next: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(10)")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := testdb.Postgres(t)
			runID := faultgen.NewRunID()
			app := "dbop_fault_" + runID
			admin := faultgen.PGPool(t, dsn, "dbop_fault_admin_"+runID, 1, nil)
			tables := faultgen.NewPGTables(runID)
			tables.Create(t, admin)

			proxy := faultproxy.Start(t, faultgen.PGTarget(t, dsn))
			var down atomic.Bool // the server is unreachable
			pool := faultgen.PGPool(t, dsn, app, 1, func(cfg *pgxpool.Config) {
				faultgen.ThroughProxy(proxy)(cfg)
				cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
					if down.Load() {
						return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
					}
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}
			})

			tr := faultgen.Transfer{Key: "t1", Src: 0, Dst: 1, Amount: 10}
			apply := tables.TransferFn(tr)
			var attempts int
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (bool, error) {
				if attempts++; attempts > 1 && tt.next != nil {
					if err := tt.next(ctx, tx); err != nil {
						return false, err
					}
				}
				wrote, err := apply(ctx, tx)
				if attempts == 1 {
					proxy.CutAfter([]byte("commit")) // the COMMIT reaches the server; its answer is lost
					down.Store(tt.down)
				}
				return wrote, err
			})
			var retried []dbop.AttemptEvent
			_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.Idempotent(),
				dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e) }),
			)).Run(t.Context())

			pool.Close()
			faultgen.WaitForBackendsGone(t, admin, app)
			ledger, balances := tables.ReadState(t, dsn)
			_, applied := ledger[tr.Key]
			t.Logf("fn ran %d time(s)", attempts)
			for _, e := range retried {
				t.Logf("attempt %d failed (%v), retried: %v", e.Attempt, e.Verdict, e.Err)
			}
			t.Logf("returned (verdict %v): %v", dbop.VerdictOf(err), err)
			t.Logf("in the ledger: %v; balances %v", applied, balances)
			if err == nil || !applied || proxy.Cuts() != 1 {
				t.Fatalf("setup: err = %v, applied = %v, cuts = %d; want an error, the transfer applied, one cut", err, applied, proxy.Cuts())
			}
			if len(retried) == 0 || !errors.Is(retried[0].Err, scopes.ErrAmbiguousCommit) {
				t.Fatalf("setup: the first attempt did not end in an ambiguous commit (retried %v)", retried)
			}
			if !faultgen.Ambiguous(err) {
				t.Errorf("applied but reported failed: the first attempt's COMMIT outcome was unknown and the transfer was in fact applied, "+
					"yet the error returned is not ambiguous (errors.Is(err, scopes.ErrAmbiguousCommit) = false, verdict %v)",
					dbop.VerdictOf(err))
			}
		})
	}
}
