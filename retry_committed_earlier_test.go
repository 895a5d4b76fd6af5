package dbop_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// An Idempotent retry around a Then runs it again after a step committed;
// when a later attempt then fails before any step commits, the work of the
// first attempt still stands (the debit of a transfer whose credit never
// ran). OrDefault and Fallback must not replace that failure, as they do
// not replace the failure of the attempt that committed, nor the failure
// after an attempt whose outcome was unknown (RetryError.Unknown): the
// caller would read "failed, here is the default" for work that took
// effect. Found by the generated-pipelines workload of internal/faulttest
// (PostgreSQL, a COMMIT of the debit, the credit's attempt timed out, the
// next attempts timed out in BEGIN): the retry remembered an earlier
// Ambiguous attempt, not an earlier attempt whose error carried a Then's or
// All's committed mark.
func TestIdempotentRetryKeepsAStepAnEarlierAttemptCommitted(t *testing.T) {
	build := func(rec *dboptest.Recorder) dbop.Op[int] {
		var attempts atomic.Int32
		debit := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			if attempts.Add(1) > 1 {
				return 0, errSerial // every later attempt fails before it writes
			}
			return 1, tx.Exec(ctx, "INSERT debit")
		})
		return dbop.Then(debit, func(context.Context, int) (int, error) {
			return 0, errSerial // the credit fails; retryable
		})
	}
	retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.Idempotent())

	t.Run("OrDefault", func(t *testing.T) {
		var rec dboptest.Recorder
		v, err := build(&rec).With(dbop.OrDefault(-1), retry).Run(t.Context())
		if count(&rec, "INSERT debit") != 1 || count(&rec, "COMMIT") != 1 {
			t.Fatalf("setup: log %v; want the debit committed once", rec.Log())
		}
		if err == nil && v == -1 {
			t.Errorf("OrDefault gave its default (%d, nil) though the first attempt's debit committed: log %v", v, rec.Log())
		}
		if err == nil || !strings.Contains(err.Error(), "had committed") {
			t.Errorf("Run = %d, %v; want the last attempt's error, saying a step had committed", v, err)
		}
	})
	t.Run("Fallback", func(t *testing.T) {
		var rec dboptest.Recorder
		var called error
		_, err := build(&rec).With(dbop.Fallback(func(_ context.Context, err error) (int, error) {
			called = err
			return -1, nil
		}), retry).Run(t.Context())
		if called != nil {
			t.Errorf("Fallback was called (%v) though the first attempt's debit committed; returned %v; log %v", called, err, rec.Log())
		}
	})
}
