package faulttest

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
)

// TestFaultPostgresTransfers runs the transfer workload on PostgreSQL
// through pgxdb.InTx while an injector terminates and cancels the workers'
// backends, holds row locks past their per-attempt lock and statement
// timeouts, drops the proxied connections and cuts them right after a
// COMMIT reached the server.
func TestFaultPostgresTransfers(t *testing.T) {
	dsn := testdb.Postgres(t)
	cfg := faultgen.NewRunConfig(t)
	app := "dbop_fault_" + cfg.RunID

	admin := faultgen.PGPool(t, dsn, "dbop_fault_admin_"+cfg.RunID, 3, nil)
	tables := faultgen.NewPGTables(cfg.RunID)
	tables.Create(t, admin)

	proxy := faultproxy.Start(t, faultgen.PGTarget(t, dsn))
	direct := faultgen.PGPool(t, dsn, app, 4, nil)
	proxied := faultgen.PGPool(t, dsn, app, 2, faultgen.ThroughProxy(proxy))

	st := faultgen.NewStats()
	specs := faultgen.WorkerSpecs()
	runs := make([]faultgen.TransferFunc, len(specs))
	for w, spec := range specs {
		pool := direct
		if spec.Proxied {
			pool = proxied
		}
		limit := pgxdb.StatementTimeout(50 * time.Millisecond)
		if spec.LockLimit {
			limit = pgxdb.LockTimeout(50 * time.Millisecond)
		}
		retryOpts := []dbop.RetryOption{dbop.MaxAttempts(faultgen.MaxAttempts), dbop.OnRetry(st.OnRetry)}
		if spec.Idempotent {
			retryOpts = append(retryOpts, dbop.Idempotent())
		}
		retry := dbop.WithRetry(faultgen.Backoff, retryOpts...)
		opts := []pgxdb.TxOption{limit}
		if spec.Resolve {
			opts = append(opts, pgxdb.ResolveCommit())
		}
		runs[w] = func(ctx context.Context, tr faultgen.Transfer) (bool, error) {
			return pgxdb.InTx(pool, tables.TransferFn(tr), opts...).With(retry).Run(scopes.OnCommitResolved(ctx, st.OnResolved))
		}
		t.Logf("worker %d: %v", w, spec)
	}

	inject := faultgen.NewPGInjector(admin, proxy, app, tables.Accounts)
	outcomes := faultgen.RunWorkload(t, cfg, faultgen.WorkersOf(specs), runs, inject, st)
	st.Fault("proxy cut after commit (fired)", proxy.Cuts())

	direct.Close()
	proxied.Close()
	faultgen.WaitForBackendsGone(t, admin, app)
	ledger, balances := tables.ReadState(t, dsn)
	faultgen.Verify(t, faultgen.WorkersOf(specs), outcomes, ledger, balances, st)
	faultgen.CheckFaults(t, cfg, st, faultgen.PGFaultMinimums)
}
