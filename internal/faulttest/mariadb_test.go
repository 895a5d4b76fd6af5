package faulttest

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/scopes"
)

// TestFaultMariaDBTransfers runs the transfer workload on MariaDB through
// sqldb.InTx while an injector kills the workers' connections and queries,
// holds row locks past their per-attempt lock and statement timeouts, drops
// the proxied connections and cuts them right after a COMMIT reached the
// server.
//
// The workers use a database of their own, so that killing "every
// connection in the run's database" cannot reach another package's tests
// running at the same time.
func TestFaultMariaDBTransfers(t *testing.T) {
	base := faultgen.MyServer(t)
	cfg := faultgen.NewRunConfig(t)
	admin := faultgen.OpenMy(t, base, 3)
	faultDB := "dbop_fault_" + cfg.RunID
	q := faultgen.MyRunDatabase(t, admin, faultDB)
	for id := range faultgen.NumAccounts {
		if _, err := admin.ExecContext(t.Context(), "INSERT INTO "+q+".accounts VALUES (?, 0)", id); err != nil {
			t.Fatal(err)
		}
	}

	proxy := faultproxy.Start(t, base.Addr)
	workerCfg := base.Clone()
	workerCfg.DBName = faultDB
	direct := faultgen.OpenMy(t, workerCfg, 4)
	proxiedCfg := workerCfg.Clone()
	proxiedCfg.Addr = proxy.Addr()
	proxied := faultgen.OpenMy(t, proxiedCfg, 2)

	st := faultgen.NewStats()
	specs := faultgen.WorkerSpecs()
	runs := make([]faultgen.TransferFunc, len(specs))
	for w, spec := range specs {
		db := direct
		if spec.Proxied {
			db = proxied
		}
		// innodb_lock_wait_timeout takes whole seconds; max_statement_time
		// fails a lock wait well before that.
		limit := sqldb.StatementTimeout(250 * time.Millisecond)
		if spec.LockLimit {
			limit = sqldb.LockTimeout(time.Second)
		}
		retryOpts := []dbop.RetryOption{dbop.MaxAttempts(faultgen.MaxAttempts), dbop.OnRetry(st.OnRetry)}
		if spec.Idempotent {
			retryOpts = append(retryOpts, dbop.Idempotent())
		}
		retry := dbop.WithRetry(faultgen.Backoff, retryOpts...)
		opts := []sqldb.TxOption{limit}
		if spec.Resolve {
			opts = append(opts, sqldb.ResolveCommit())
		}
		runs[w] = func(ctx context.Context, tr faultgen.Transfer) (bool, error) {
			return sqldb.InTx(db, mysqldb.MariaDB, faultgen.MyTransferFn(tr), opts...).With(retry).Run(scopes.OnCommitResolved(ctx, st.OnResolved))
		}
		t.Logf("worker %d: %v", w, spec)
	}

	inject := faultgen.NewMyInjector(admin, proxy, faultDB)
	outcomes := faultgen.RunWorkload(t, cfg, faultgen.WorkersOf(specs), runs, inject, st)
	st.Fault("proxy cut after COMMIT (fired)", proxy.Cuts())

	direct.Close()
	proxied.Close()
	ledger, balances := faultgen.ReadMyState(t, base, q)
	faultgen.Verify(t, faultgen.WorkersOf(specs), outcomes, ledger, balances, st)
	faultgen.CheckFaults(t, cfg, st, faultgen.MyFaultMinimums)
}
