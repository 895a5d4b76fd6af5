package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// An error that joins another with one whose outcome is unknown — a
// COMMIT whose answer was lost — says that some of the work may have been
// applied, whichever of the two comes first: errors.Join (and fmt.Errorf
// with several %w) puts the errors side by side, and none is outermost.
// Taking the first one's verdict let a fallback replace the unknown
// outcome with its default, and a retry run it again (invariant 6).
func TestJoinedUnknownOutcomeIsAmbiguous(t *testing.T) {
	unknown := dbop.Classify(errors.New("commit: connection reset"), dbop.Ambiguous)
	exhausted := &dbop.RetryError{Attempts: 6, Reason: dbop.ErrRetriesExhausted,
		Err: dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction)}
	refused := dbop.Classify(errors.New("check violation"), dbop.NotRetryable)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"join, retryable first", errors.Join(exhausted, unknown)},
		{"join, final first", errors.Join(refused, unknown)},
		{"Errorf with two %w", fmt.Errorf("audit: %w; order: %w", exhausted, unknown)},
		{"nested join", fmt.Errorf("batch: %w", errors.Join(refused, fmt.Errorf("order: %w", unknown)))},
		{"SQLSTATE 40003 after a classified error", errors.Join(exhausted, &sqlStateError{"40003"})},
		{"SQLSTATE 40003 after 40001", errors.Join(&sqlStateError{"40001"}, &sqlStateError{"40003"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dbop.VerdictOf(tc.err); got != dbop.Ambiguous {
				t.Errorf("VerdictOf = %v, want ambiguous", got)
			}
			op, calls := counted(tc.err)
			v, err := op.With(dbop.OrDefault(-1), dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
			if *calls != 1 || v == -1 || err == nil {
				t.Errorf("got %d calls, value %d, error %v; want one call and the error, no default", *calls, v, err)
			}
		})
	}
	// The verdict of a join with no unknown outcome in it is the first
	// one found, as before.
	if got := dbop.VerdictOf(errors.Join(exhausted, refused)); got != dbop.RetryTransaction {
		t.Errorf("VerdictOf(join of retryable, final) = %v, want retry-transaction", got)
	}
}

// What a user writes: two transactions one after the other, their errors
// joined, and a default for when the pair failed. The second COMMIT's
// answer is lost; the first transaction's retry gave up on lost
// connections, which the classifier marked retryable.
// The caller must not read the default: the order may be saved.
func TestJoinOfTwoTransactionsKeepsALostCommit(t *testing.T) {
	var audit, orders dboptest.Recorder
	audit.FailNext("INSERT audit", dboptest.NetworkError(), dboptest.NetworkError())
	orders.FailNext("COMMIT", dboptest.NetworkError())
	retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))
	writeAudit := scopes.InTx(audit.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return 0, tx.Exec(ctx, "INSERT audit")
	}, scopes.ClassifyBy(classifiers.Default)).With(retry)
	saveOrder := scopes.InTx(orders.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return 1, tx.Exec(ctx, "INSERT order")
	}, scopes.ClassifyBy(classifiers.Default)).With(retry)
	both := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, auditErr := writeAudit.Run(ctx)
		id, orderErr := saveOrder.Run(ctx)
		return id, errors.Join(auditErr, orderErr)
	})
	v, err := both.With(dbop.OrDefault(-1)).Run(context.Background())
	if got := orders.Log(); len(got) != 3 || got[2] != "COMMIT" {
		t.Fatalf("the order's transaction ran %q; want one COMMIT, cut", got)
	}
	if v == -1 || dbop.VerdictOf(err) != dbop.Ambiguous || !errors.Is(err, scopes.ErrAmbiguousCommit) {
		t.Errorf("got value %d, error %v (%v); want the ambiguous commit, not the default", v, err, dbop.VerdictOf(err))
	}
}
