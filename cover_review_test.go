package dbop_test

// Review probes for 7a4630a/7ebede3 (a retry or fallback inside a
// transaction trusts a savepoint's 'undone' only from a scope listed inside
// it in the same pipeline).

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

func probeRetry(opts ...dbop.RetryOption) dbop.Decorator {
	return dbop.WithRetry(dbop.Constant(0), append([]dbop.RetryOption{dbop.MaxAttempts(3)}, opts...)...)
}

// Compositions that put decorators of dbop's own (and code inside the
// savepoint) between the retry and the savepoint scope: every one of them
// must still retry a lock wait timeout in place, inside a transaction.
func TestInTxRetriesInPlaceWithDecoratorsBetween(t *testing.T) {
	var flight dbop.Flight
	noop := func(context.Context) error { return nil }
	pass := dbop.Around(func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
	for _, c := range []struct {
		name string
		ds   func(tx *dboptest.Tx) []dbop.Decorator
		want []string
	}{
		{"retry, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry, ClassifyBy, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.Unclassified }), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry, WithTimeout, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), dbop.WithTimeout(time.Hour), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry, HotSpot, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), dbop.HotSpot(), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry, Bulkhead, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), dbop.Bulkhead(1), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry, Share, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), flight.Share("k"), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry with OnRetry and Named, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(dbop.OnRetry(func(context.Context, dbop.AttemptEvent) {}), dbop.Named("x")), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"Chain(retry, ClassifyBy), Chain(WithTimeout, InSavepoint)", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{dbop.Chain(probeRetry(), dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.Unclassified })), dbop.Chain(dbop.WithTimeout(time.Hour), scopes.InSavepoint(tx))}
		}, []string{"B"}},
		{"nested retries, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1)), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry, HotSpot, Bulkhead, WithTimeout, ClassifyBy, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), dbop.HotSpot(), dbop.Bulkhead(2), dbop.WithTimeout(time.Hour), dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.Unclassified }), scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"retry, Chain(InSavepoint, Around) (pgxdb settings shape)", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), dbop.Chain(scopes.InSavepoint(tx), pass)}
		}, []string{"B"}},
		{"retry, InSavepoint, Before (inside the scope)", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), scopes.InSavepoint(tx), dbop.Before(noop)}
		}, []string{"B"}},
		{"retry, InSavepoint, Around, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{probeRetry(), scopes.InSavepoint(tx), pass, scopes.InSavepoint(tx)}
		}, []string{"B"}},
		{"Around outside the retry, retry, InSavepoint", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{pass, probeRetry(), scopes.InSavepoint(tx)}
		}, []string{"B"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return framePlainStep(tx, "B", failsLeft(1), errLockWait).With(c.ds(tx)...).Run(ctx)
			}).Run(t.Context())
			if err != nil {
				t.Errorf("Run: %v; want the step retried in place", err)
			}
			if got := applied(t, &rec); !slices.Equal(got, c.want) {
				t.Errorf("committed %q, want %q; log %v", got, c.want, rec.Log())
			}
		})
	}
	t.Run("OrDefault, retry, InSavepoint: default after exhaustion", func(t *testing.T) {
		var rec dboptest.Recorder
		v, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			return framePlainStep(tx, "B", failsLeft(10), errLockWait).With(dbop.OrDefault(-1), probeRetry(), scopes.InSavepoint(tx)).Run(ctx)
		}).Run(t.Context())
		if err != nil || v != -1 || len(applied(t, &rec)) != 0 {
			t.Errorf("Run: %d, %v; committed %q; want -1, nil, nothing", v, err, applied(t, &rec))
		}
	})
}

// WRONG ACCEPTANCE: a decorator of the caller's own declared with AroundTx
// (as AroundTx's doc says a decorator that runs each attempt inside the
// caller's transaction should be) is not counted as the caller's code: it
// does not clear inner.covers, and its key counts as a covering scope.
// Expected: A (run by the caller's code outside any savepoint) committed
// once, or the retry refused. Observed: A committed twice.
func TestAnAroundTxOfYourOwnDoesNotCertify(t *testing.T) {
	type ownKey struct{ name string }
	for _, c := range []struct {
		name string
		op   func(tx *dboptest.Tx, a dbop.Op[int]) dbop.Op[int]
	}{
		{"retry, AroundTx(own key) that runs A, InSavepoint(tx)", func(tx *dboptest.Tx, a dbop.Op[int]) dbop.Op[int] {
			runA := dbop.AroundTx(&ownKey{"audit"}, func(ctx context.Context, next func(context.Context) error) error {
				if _, err := a.Run(ctx); err != nil {
					return err
				}
				return next(ctx)
			})
			return framePlainStep(tx, "B", failsLeft(1), errLockWait).With(probeRetry(), runA, scopes.InSavepoint(tx))
		}},
		{"retry, AroundTx(tx) that runs A, around a step decorated apart", func(tx *dboptest.Tx, a dbop.Op[int]) dbop.Op[int] {
			runA := dbop.AroundTx(tx, func(ctx context.Context, next func(context.Context) error) error {
				if _, err := a.Run(ctx); err != nil {
					return err
				}
				return next(ctx)
			})
			step := framePlainStep(tx, "B", failsLeft(1), errLockWait).With(scopes.InSavepoint(tx))
			return step.With(probeRetry(), runA)
		}},
		{"retry, pass-through AroundTx(tx) around Then(plain A, savepoint step B)", func(tx *dboptest.Tx, a dbop.Op[int]) dbop.Op[int] {
			// The composition 7a4630a fixed, with one scope of the
			// caller's own (a tracing or settings scope, say) that
			// declares the transaction as AroundTx asks.
			own := dbop.AroundTx(tx, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
			b := frameStep(tx, "B", failsLeft(1), errLockWait)
			return frameThen(a, b).With(probeRetry(), own)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return c.op(tx, framePlainStep(tx, "A", failsLeft(0), nil)).Run(ctx)
			}).Run(t.Context())
			got := applied(t, &rec)
			if count := len(slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s != "A" })); count > 1 {
				t.Errorf("A committed %d times (%q, err %v); log %v", count, got, err, rec.Log())
			}
		})
	}
	t.Run("OrDefault, pass-through AroundTx(tx) around Then(plain A, savepoint step B)", func(t *testing.T) {
		var rec dboptest.Recorder
		v, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			own := dbop.AroundTx(tx, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
			return frameThen(framePlainStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(1), errLockWait)).With(dbop.OrDefault(-1), own).Run(ctx)
		}).Run(t.Context())
		if got := applied(t, &rec); v == -1 && err == nil && slices.Equal(got, []string{"A"}) {
			t.Errorf("OrDefault gave its default and A committed without B (%q); log %v", got, rec.Log())
		}
	})
}

// WRONG REFUSAL (regression): a retry around a transaction of its own on
// another database (a nested InTx: a pattern dbopvet's outsidetx analysis
// treats as legitimate), run with the context the outer InTx handed over.
// Everything the attempt ran was in the inner transaction, which its owner
// rolled back (txmark.Released); before 7a4630a the retry ran it again.
func TestRetryAroundANestedInTxInsideAnotherTransaction(t *testing.T) {
	var outer, other dboptest.Recorder
	fails := failsLeft(1)
	var innerRuns atomic.Int32
	_, err := scopes.InTx(outer.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT O"); err != nil {
			return 0, err
		}
		audit := scopes.InTx(other.Begin, func(ctx context.Context, itx *dboptest.Tx) (int, error) {
			innerRuns.Add(1)
			if err := itx.Exec(ctx, "INSERT X"); err != nil {
				return 0, err
			}
			if fails.Add(-1) >= 0 {
				return 0, errSerial
			}
			return 1, nil
		})
		return audit.With(probeRetry()).Run(ctx)
	}).Run(t.Context())
	if err != nil || innerRuns.Load() != 2 {
		t.Errorf("Run: %v after %d runs of the nested InTx; want it retried (its transaction was rolled back, nothing of the attempt stands); outer log %v, other log %v",
			err, innerRuns.Load(), outer.Log(), other.Log())
	}
}

// REFUSAL of the README's placement rows combined: "Before after WithRetry:
// runs before every attempt (dbop-core's pre_attempt)" and "InSavepoint
// after WithRetry". Listed in that order, the retry no longer retries
// inside a transaction, and nothing at build time or in the error says so.
func TestBeforeBetweenRetryAndSavepointKeepsTheRetry(t *testing.T) {
	var rec dboptest.Recorder
	var attempts atomic.Int32
	_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return framePlainStep(tx, "B", failsLeft(1), errLockWait).With(
			probeRetry(),
			dbop.Before(func(context.Context) error { attempts.Add(1); return nil }),
			scopes.InSavepoint(tx),
		).Run(ctx)
	}).Run(t.Context())
	if err != nil {
		var re *dbop.RetryError
		t.Errorf("Run: %v (a *RetryError: %v) after %d attempts; want the step retried in place", err, errors.As(err, &re), attempts.Load())
	}
}

// The same with a Fallback between the retry and the scope whose function
// passes the lock timeout on (handles only ErrNoRows, say).
func TestFallbackBetweenRetryAndSavepointKeepsTheRetry(t *testing.T) {
	errNoRows := errors.New("no rows")
	var rec dboptest.Recorder
	_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return framePlainStep(tx, "B", failsLeft(1), errLockWait).With(
			probeRetry(),
			dbop.Fallback(func(_ context.Context, err error) (int, error) {
				if errors.Is(err, errNoRows) {
					return 0, nil
				}
				return 0, err
			}),
			scopes.InSavepoint(tx),
		).Run(ctx)
	}).Run(t.Context())
	if err != nil {
		t.Errorf("Run: %v; want the step retried in place", err)
	}
}

// PRE-EXISTING (not from this change): a Share listed between a retry and
// a savepoint scope, run with a plain context (a transaction begun by
// hand; InSavepoint is documented to work "with any context"): two callers
// in two different transactions share one run, so the second caller's
// transaction never runs the step and gets a value read in the first
// caller's transaction. HotSpot lets attempts through when a transaction
// scope is listed inside it (in.txKeys); Share does not look.
func TestShareDoesNotShareAcrossTransactionsOfASavepointStep(t *testing.T) {
	var flight dbop.Flight
	var rec1, rec2 dboptest.Recorder
	tx1, _ := rec1.Begin(t.Context(), scopes.BeginOptions{})
	tx2, _ := rec2.Begin(t.Context(), scopes.BeginOptions{})
	entered := make(chan struct{})
	release := make(chan struct{})
	var runs atomic.Int32
	read := func(tx *dboptest.Tx, name string) dbop.Op[string] {
		return dbop.Op[string](func(ctx context.Context) (string, error) {
			if runs.Add(1) == 1 {
				close(entered)
				<-release
			}
			return name, tx.Exec(ctx, "SELECT "+name)
		}).With(probeRetry(), flight.Share("k"), scopes.InSavepoint(tx))
	}
	done := make(chan string, 1)
	go func() {
		v, _ := read(tx1, "tx1").Run(context.Background())
		done <- v
	}()
	<-entered
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	v2, err := read(tx2, "tx2").Run(context.Background())
	<-done
	t.Logf("caller 2: %q, %v; runs %d; tx2 log %v", v2, err, runs.Load(), rec2.Log())
	if v2 != "tx2" || count(&rec2, "SELECT tx2") != 1 {
		t.Errorf("caller 2 (transaction 2) got %q and its transaction ran %v: the run was shared with another transaction", v2, rec2.Log())
	}
}
