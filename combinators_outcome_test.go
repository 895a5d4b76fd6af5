package dbop_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
)

// commitTx is a transaction whose COMMIT takes a while and then fails as
// a lost connection does: its outcome is unknown.
type commitTx struct{ commitErr error }

func (tx *commitTx) Commit(context.Context) error {
	time.Sleep(50 * time.Millisecond)
	return tx.commitErr
}

func (tx *commitTx) Rollback(context.Context) error { return nil }

// An All whose op fails while a sibling's COMMIT is on the wire, and then
// loses its answer, does not report the first error alone: the sibling's
// work may have been applied (invariant 5), so the error All returns
// carries the Ambiguous verdict and reaches both errors, and OrDefault
// does not turn it into a default without AcceptAmbiguous.
func TestAllKeepsASiblingsUnknownOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lost := errors.New("read tcp: connection reset by peer")
		unknown := scopes.InTx(func(context.Context, scopes.BeginOptions) (*commitTx, error) {
			return &commitTx{commitErr: lost}, nil
		}, func(context.Context, *commitTx) (int, error) { return 1, nil })
		invalid := errors.New("validation failed")
		failing := dbop.Op[int](func(context.Context) (int, error) {
			time.Sleep(10 * time.Millisecond)
			return 0, invalid
		})
		all := dbop.All(0, unknown, failing)
		_, err := all.Run(t.Context())
		if v := dbop.VerdictOf(err); v != dbop.Ambiguous || !errors.Is(err, invalid) || !errors.Is(err, lost) {
			t.Errorf("All: %v (verdict %v); want an Ambiguous error reaching both errors", err, v)
		}
		if vs, err := all.With(dbop.OrDefault([]int{})).Run(t.Context()); err == nil {
			t.Errorf("All with OrDefault: %v, nil; an unknown outcome became a default", vs)
		}
		if _, err := all.With(dbop.OrDefault([]int{}, dbop.AcceptAmbiguous())).Run(t.Context()); err != nil {
			t.Errorf("All with OrDefault(AcceptAmbiguous): %v, want the default", err)
		}
	})
}

// A Then whose first step committed marks every error after it, so that a
// retry or a fallback around it, whatever stands between, knows part of
// the work took effect; errors.Is and errors.As still reach the step's
// error. A retry returns ErrAlreadyCommitted only for an error it would
// otherwise have acted on. A Then where nothing committed returns the
// step's error as it is (err ==).
func TestThenMarksAnErrorAfterACommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		committed := scopes.InTx(func(context.Context, scopes.BeginOptions) (*commitTx, error) {
			return &commitTx{}, nil
		}, func(context.Context, *commitTx) (int, error) { return 1, nil })
		nothing := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
		final := errors.New("no such account")
		for _, c := range []struct {
			name      string
			err       error
			retryable bool
		}{
			{"final", final, false},
			{"retryable", dbop.Classify(final, dbop.RetryTransaction), true},
		} {
			op := dbop.Then(committed, func(context.Context, int) (int, error) { return 0, c.err })
			_, err := op.Run(t.Context())
			if err == c.err || !errors.Is(err, final) {
				t.Errorf("%s: Run: %v; want it marked, reaching the step's error", c.name, err)
			}
			_, err = op.With(dbop.WithRetry(dbop.Constant(0))).Run(t.Context())
			if got := errors.Is(err, dbop.ErrAlreadyCommitted); got != c.retryable || !errors.Is(err, final) {
				t.Errorf("%s: with a retry: %v; want ErrAlreadyCommitted: %t", c.name, err, c.retryable)
			}
			_, err = dbop.Then(nothing, func(context.Context, int) (int, error) { return 0, c.err }).Run(t.Context())
			if err != c.err {
				t.Errorf("%s: with nothing committed: %v; want the step's error as it is", c.name, err)
			}
		}
	})
}
