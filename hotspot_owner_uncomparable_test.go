package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// fieldErrors is an error type that cannot be compared with ==: a slice,
// as validation libraries return (a list of field errors).
type fieldErrors []error

func (e fieldErrors) Error() string   { return errors.Join(e...).Error() }
func (e fieldErrors) Unwrap() []error { return e }

// A transaction scope whose fn returns an error of a type that cannot be
// compared (a slice) when a HotSpot's backstop cuts the attempt: the
// HotSpot asks whether the error is the scope's (txmark.OwnerWatch), and
// must not panic doing so, as errors.Is does not. Classified retryable, the
// scope's error carries the scope's mark, and the cut is retried as any
// timed-out attempt (the scope rolled back). Unclassified, it came back as
// fn returned it, and an error that is not the scope's own value proves
// nothing of where the cut fell: Ambiguous, not run again.
func TestHotSpotCutOfAScopeWithAnUncomparableErrorDoesNotPanic(t *testing.T) {
	for _, retryable := range []bool{true, false} {
		t.Run(fmt.Sprintf("classified retryable %v", retryable), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var rec dboptest.Recorder
				attempts := 0
				op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
					attempts++
					switch attempts {
					case 1:
						time.Sleep(time.Millisecond)
						return 0, errConflict // the HotSpot bounds attempts from now on
					case 2:
						<-ctx.Done() // cut by the backstop while it waits
						return 0, fieldErrors{ctx.Err()}
					}
					return 1, nil
				}, scopes.ClassifyBy(func(err error) dbop.Verdict {
					if errors.Is(err, errConflict) || retryable && errors.Is(err, context.DeadlineExceeded) {
						return dbop.RetryTransaction
					}
					return dbop.Unclassified
				}))
				var v int
				var err error
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("Run panicked: %v", p)
						}
					}()
					v, err = op.With(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot()).Run(context.Background())
				}()
				if retryable && (v != 1 || err != nil || attempts != 3) {
					t.Errorf("Run = %d, %v after %d attempts; want 1 after 3: the cut scope rolled back", v, err, attempts)
				}
				if !retryable && (dbop.VerdictOf(err) != dbop.Ambiguous || attempts != 2) {
					t.Errorf("Run = %d, %v (verdict %v) after %d attempts; want Ambiguous after 2", v, err, dbop.VerdictOf(err), attempts)
				}
			})
		})
	}
}
