package scopes_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// A savepoint step whose function ran a transaction of its own (another
// connection) whose COMMIT's answer was lost fails Ambiguous: that
// transaction may have committed. When the step's savepoint then cannot
// be rolled back, the error dooms the enclosing transaction, and must
// still say that the other one may have committed: it was called
// NotRetryable, a failure for good, for work that may have been applied.
func TestFailedUndoKeepsAnUnknownOutcome(t *testing.T) {
	var orders, audit dboptest.Recorder
	audit.FailNext("COMMIT", errNetwork)
	orders.FailNext("ROLLBACK TO SAVEPOINT dbop_sp_1", errors.New("connection broken"))
	writeAudit := scopes.InTx(audit.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return 0, tx.Exec(ctx, "INSERT audit")
	}, scopes.ClassifyBy(classifier))
	op := scopes.InTx(orders.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT order"); err != nil {
			return 0, err
		}
		return writeAudit.With(scopes.InSavepoint(tx, scopes.ClassifyBy(classifier))).Run(ctx)
	}, scopes.ClassifyBy(classifier))

	v, err := op.With(dbop.OrDefault(-1)).Run(t.Context())
	checkLog(t, []string{"BEGIN", "INSERT audit", "COMMIT"}, audit.Log())
	if got := orders.Log(); len(got) < 4 || got[3] != "ROLLBACK TO SAVEPOINT dbop_sp_1" {
		t.Fatalf("the enclosing transaction ran %q; want its ROLLBACK TO SAVEPOINT, failed", got)
	}
	if v == -1 || err == nil || dbop.VerdictOf(err) != dbop.Ambiguous || !errors.Is(err, scopes.ErrAmbiguousCommit) {
		t.Errorf("got %d, %v (%v); want the audit's unknown outcome, Ambiguous, no default", v, err, dbop.VerdictOf(err))
	}
}
