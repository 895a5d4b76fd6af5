package dbop_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
)

// An errgroup cancels its context with the first error a sibling returned
// as the cause. A retry waiting there when that happens stops with a
// *RetryError whose Reason is that cause: as documented, errors.Is(err,
// context.Canceled) must still say the caller cancelled, and errors.As
// must reach the last attempt's driver error, not the sibling's.
func TestRetryStoppedByACauseKeepsItsOwnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, ctx := errgroup.WithContext(context.Background())
		sibling := dboptest.PgError("23505", "duplicate key value violates unique constraint")
		var errA error
		g.Go(func() error {
			op := dbop.Op[int](func(context.Context) (int, error) {
				return 0, dboptest.PgError("40P01", "deadlock detected")
			})
			_, errA = op.With(dbop.WithRetry(dbop.Constant(time.Hour))).Run(ctx)
			return errA
		})
		g.Go(func() error {
			time.Sleep(time.Second)
			return sibling
		})
		if err := g.Wait(); err != sibling {
			t.Fatalf("the group's error = %v, want the sibling's", err)
		}
		var re *dbop.RetryError
		if !errors.As(errA, &re) || re.Reason != error(sibling) {
			t.Fatalf("errA = %v: want a *RetryError whose Reason is the group's cause", errA)
		}
		var pgErr *pgconn.PgError
		if !errors.As(errA, &pgErr) || pgErr.Code != "40P01" {
			t.Errorf("errors.As(errA, &pgErr) found %v; want the last attempt's 40P01", pgErr)
		}
		if !errors.Is(errA, context.Canceled) || !errors.Is(errA, sibling) {
			t.Errorf("errA = %v: want it to match context.Canceled and reach the cause", errA)
		}
		if got := dbop.VerdictOf(errA); got != dbop.RetryTransaction {
			t.Errorf("VerdictOf(errA) = %v, want the last attempt's retry-transaction", got)
		}
		// The text says the context ended, and names the sibling's error
		// as its cause, not as this operation's reason.
		if want := "context canceled (its cause: " + sibling.Error() + ") after "; !strings.HasPrefix(errA.Error(), want) {
			t.Errorf("errA.Error() = %q, want it to start with %q", errA.Error(), want)
		}
	})
}

// A retry stopped in an errgroup whose sibling failed with an error of its
// own verdict and marks (an unknown outcome, a step that committed) is not
// that sibling's work: its error must not say its own work may have been
// applied, and an OrDefault around it decides as it would after any other
// sibling's failure. The cause stays reachable with errors.Is.
func TestRetryStoppedByASiblingsAmbiguousCauseIsNotAmbiguous(t *testing.T) {
	for _, sib := range []struct {
		name string
		err  error
	}{
		{"plain", dboptest.PgError("23505", "duplicate key value violates unique constraint")},
		{"ambiguous", dbop.Classify(errors.New("sibling: COMMIT's answer lost"), dbop.Ambiguous)},
		{"ambiguous sqlstate", dboptest.PgError("40003", "statement completion unknown")},
		{"committed", siblingThatCommitted(t)},
	} {
		t.Run(sib.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, ctx := errgroup.WithContext(context.Background())
				var (
					errA, errD error
					v          int
					calls      atomic.Int32
				)
				op := dbop.Op[int](func(context.Context) (int, error) {
					calls.Add(1)
					return 0, dboptest.PgError("40P01", "deadlock detected")
				})
				g.Go(func() error {
					_, errA = op.With(dbop.WithRetry(dbop.Constant(time.Hour))).Run(ctx)
					return errA
				})
				g.Go(func() error {
					v, errD = op.With(dbop.OrDefault(42), dbop.WithRetry(dbop.Constant(time.Hour))).Run(ctx)
					return errD
				})
				g.Go(func() error {
					time.Sleep(time.Second)
					return sib.err
				})
				if err := g.Wait(); err != sib.err {
					t.Fatalf("the group's error = %v, want the sibling's", err)
				}
				if calls.Load() != 2 {
					t.Fatalf("the op ran %d times, want once in each retry", calls.Load())
				}
				var re *dbop.RetryError
				if !errors.As(errA, &re) || re.Reason != sib.err {
					t.Fatalf("errA = %v: want a *RetryError whose Reason is the sibling's error (the retry was stopped while waiting)", errA)
				}
				if got := dbop.VerdictOf(errA); got != dbop.RetryTransaction {
					t.Errorf("VerdictOf(errA) = %v, want the last attempt's retry-transaction, not the sibling's", got)
				}
				if v != 42 || errD != nil {
					t.Errorf("OrDefault gave %d, %v; want 42: it decides on this op's error as after any other sibling's failure", v, errD)
				}
				if !errors.Is(errA, sib.err) || !errors.Is(errA, context.Canceled) {
					t.Errorf("errA = %v: want it to reach the cause and match context.Canceled", errA)
				}
			})
		})
	}
}

// siblingThatCommitted returns the error of a Then whose first step
// committed its transaction: it carries the mark that stops a retry at
// dbop.ErrAlreadyCommitted and keeps a fallback from replacing it.
func siblingThatCommitted(t *testing.T) error {
	rec := &dboptest.Recorder{}
	step := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return 1, tx.Exec(ctx, "INSERT")
	})
	_, err := dbop.Then(step, func(context.Context, int) (int, error) {
		return 0, errors.New("sibling: the second step failed")
	})(context.Background())
	_, fallbackErr := dbop.Op[int](func(context.Context) (int, error) { return 0, err }).With(dbop.OrDefault(7)).Run(context.Background())
	if err == nil || fallbackErr == nil {
		t.Fatalf("the sibling's Then: err = %v, OrDefault's = %v; want a failure after a commit that OrDefault keeps", err, fallbackErr)
	}
	return err
}
