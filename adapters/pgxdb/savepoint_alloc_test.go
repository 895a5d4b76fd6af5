//go:build !race

package pgxdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// A step whose attempt has no deadline earlier than its transaction's
// costs what the bare savepoint scope costs: the step-limits layer
// InSavepoint adds sends nothing and allocates nothing. (The race detector
// instruments allocations: ordinary builds only.)
func TestSavepointWithoutStepDeadlineAllocatesNothingMore(t *testing.T) {
	db := &fakeDB{}
	tx, err := db.BeginTx(context.Background(), pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// InTx's context: its deadline is the one its limits came from.
	owner := new(txmark.State)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	deadline, _ := ctx.Deadline()
	owner.SetLimitsDeadline(deadline)
	ctx = txmark.WithState(ctx, owner)
	ok := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	bare := ok.With(dbop.WithRetry(dbop.Constant(0)), scopes.InSavepoint(pgxdb.Savepoints(tx), scopes.ClassifyBy(pgxdb.Classifier)))
	ours := ok.With(dbop.WithRetry(dbop.Constant(0)), pgxdb.InSavepoint(tx))
	measure := func(op dbop.Op[int]) float64 {
		for range 100 {
			op.Run(ctx)
		}
		db.log = nil
		return testing.AllocsPerRun(200, func() {
			if _, err := op.Run(ctx); err != nil {
				t.Fatal(err)
			}
			db.log = db.log[:0]
		})
	}
	if b, o := measure(bare), measure(ours); o > b {
		t.Errorf("InSavepoint: %v allocations per step, the bare scope %v", o, b)
	}
	db.log = nil
	if _, err := ours.Run(ctx); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{`SAVEPOINT "dbop_sp_1"`, `RELEASE SAVEPOINT "dbop_sp_1"`}, db.Log())
}
