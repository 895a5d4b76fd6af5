package dbop_test

// A release counts only where it stands: inside the savepoint or
// transaction it happened in. Once that transaction is rolled back by its
// owner, whatever the error (one no retry acts on inside the transaction
// scope, one only an outer ClassifyBy or WithTimeout makes retryable, a
// transaction begun by hand and marked WithinTx), a retry or a fallback
// around the owner treats the failure as the failure of work that did not
// take effect. Found by a review; each failed before the marks named
// their frame.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

func frameThen(a, b dbop.Op[int]) dbop.Op[int] {
	return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
}

// frameStep runs "INSERT name" in a savepoint of tx and then, while fails is
// positive, fails with failErr (waits for its context when failErr is nil).
func frameStep(tx *dboptest.Tx, name string, fails *atomic.Int32, failErr error) dbop.Op[int] {
	return framePlainStep(tx, name, fails, failErr).With(scopes.InSavepoint(tx))
}

// framePlainStep is frameStep with no savepoint.
func framePlainStep(tx *dboptest.Tx, name string, fails *atomic.Int32, failErr error) dbop.Op[int] {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if err := tx.Exec(ctx, "INSERT "+name); err != nil {
			return 0, err
		}
		if fails.Add(-1) >= 0 {
			if failErr == nil {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return 0, failErr
		}
		return 1, nil
	})
}

// OrDefault around a transaction scope (outside any transaction) whose
// Then of savepoint steps failed with a constraint violation: the
// transaction rolled back, nothing took effect; OrDefault promises the
// default. (f3fd48b refused it.)
func TestOrDefaultAroundARolledBackTransactionOfReleasedSteps(t *testing.T) {
	unique := dboptest.MySQLError(1062, "Duplicate entry")
	for _, plain := range []bool{false, true} {
		name := "B in a savepoint"
		if plain {
			name = "B plain"
		}
		t.Run(name, func(t *testing.T) {
			var rec dboptest.Recorder
			v, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				b := frameStep(tx, "B", failsLeft(1), unique)
				if plain {
					b = framePlainStep(tx, "B", failsLeft(1), unique)
				}
				return frameThen(frameStep(tx, "A", failsLeft(0), nil), b).Run(ctx)
			}).With(dbop.OrDefault(-1)).Run(t.Context())
			if got := applied(t, &rec); len(got) != 0 {
				t.Fatalf("committed %q", got)
			}
			if err != nil || v != -1 {
				t.Errorf("Run: %d, %v; want the default -1 (the transaction rolled back, nothing took effect)", v, err)
			}
		})
	}
}

// The same with Fallback around All inside the transaction.
func TestFallbackAroundARolledBackTransactionOfAll(t *testing.T) {
	unique := dboptest.MySQLError(1062, "Duplicate entry")
	var rec dboptest.Recorder
	called := false
	_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		all := dbop.All(1, frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(1), unique))
		_, err := all.Run(ctx)
		return 0, err
	}).With(dbop.Fallback(func(context.Context, error) (int, error) { called = true; return -1, nil })).Run(t.Context())
	if !called {
		t.Errorf("Fallback not called: %v (the transaction rolled back, nothing took effect)", err)
	}
}

// The documented place for ClassifyBy: after the retry, around the
// transaction's owner. An application error (a stale version) that the
// user's classifier calls RetryTransaction, after a savepoint step was
// released: the transaction rolled back, the retry around its owner should
// run it again ("and so does a retry around the transaction's owner").
func TestRetryWithClassifyByAroundATransactionOfReleasedSteps(t *testing.T) {
	errStale := errors.New("stale version")
	staleIsTx := func(err error) dbop.Verdict {
		if errors.Is(err, errStale) {
			return dbop.RetryTransaction
		}
		return dbop.Unclassified
	}
	for _, plain := range []bool{false, true} {
		name := "B in a savepoint"
		if plain {
			name = "B plain"
		}
		t.Run(name, func(t *testing.T) {
			var rec dboptest.Recorder
			bFails := failsLeft(1)
			_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				b := frameStep(tx, "B", bFails, errStale)
				if plain {
					b = framePlainStep(tx, "B", bFails, errStale)
				}
				return frameThen(frameStep(tx, "A", failsLeft(0), nil), b).Run(ctx)
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.ClassifyBy(staleIsTx)).Run(t.Context())
			if err != nil {
				t.Errorf("Run: %v; want the transaction run again", err)
			}
			if got, want := applied(t, &rec), []string{"A", "B"}; !slices.Equal(got, want) {
				t.Errorf("committed %q, want %q; log %v", got, want, rec.Log())
			}
		})
	}
}

// WithTimeout per attempt around a transaction scope with no classifier
// inside: the deadline cuts step B after A's savepoint was released; the
// transaction rolls back; the retry should run it again.
func TestRetryWithTimeoutAroundATransactionOfReleasedSteps(t *testing.T) {
	var rec dboptest.Recorder
	bFails := failsLeft(1)
	_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return frameThen(frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", bFails, nil)).Run(ctx)
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.WithTimeout(30*time.Millisecond)).Run(t.Context())
	if err != nil {
		t.Errorf("Run: %v; want the transaction run again", err)
	}
	if got, want := applied(t, &rec), []string{"A", "B"}; !slices.Equal(got, want) {
		t.Errorf("committed %q, want %q; log %v", got, want, rec.Log())
	}
}

// A transaction begun by hand and marked WithinTx (as WithinTx's doc
// says to), a Then of savepoint steps in it, a serialization failure: the
// caller rolls back and returns the error; invariant 1 says a retry around
// the caller's own begin-and-commit may run it again.
func TestRetryAroundAHandBegunTransactionOfReleasedSteps(t *testing.T) {
	var rec dboptest.Recorder
	bFails := failsLeft(1)
	own := dbop.Op[int](func(ctx context.Context) (int, error) {
		tx, err := rec.Begin(ctx, scopes.BeginOptions{})
		if err != nil {
			return 0, err
		}
		n, err := frameThen(frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", bFails, errSerial)).Run(dbop.WithinTx(ctx))
		if err != nil {
			_ = tx.Rollback(ctx)
			return 0, err
		}
		return n, tx.Commit(ctx)
	})
	_, err := own.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
	if err != nil {
		t.Errorf("Run: %v; want the caller's transaction run again", err)
	}
	if got, want := applied(t, &rec), []string{"A", "B"}; !slices.Equal(got, want) {
		t.Errorf("committed %q, want %q; log %v", got, want, rec.Log())
	}
}

// nested retries, MaxElapsed, All inside Then
// inside a transaction, errors.As through the mark.
func TestMarksAfterACommitCompose(t *testing.T) {
	t.Run("retry in step B and around the Then, B exhausts", func(t *testing.T) {
		var rec dboptest.Recorder
		b := writeTx(&rec, "B", failsLeft(10), errSerial).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))
		_, err := frameThen(writeTx(&rec, "A", nil, nil), b).
			With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.MaxElapsed(time.Second))).Run(t.Context())
		var re *dbop.RetryError
		if !errors.Is(err, dbop.ErrAlreadyCommitted) || !errors.Is(err, dbop.ErrRetriesExhausted) || !errors.As(err, &re) || count(&rec, "INSERT A") != 1 || count(&rec, "INSERT B") != 2 {
			t.Errorf("Run: %v; log %v", err, rec.Log())
		}
	})
	t.Run("All inside Then inside a tx, retry around the owner", func(t *testing.T) {
		var rec dboptest.Recorder
		cFails := failsLeft(1)
		_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			all := dbop.Then(dbop.All(1, frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(0), nil)),
				func(ctx context.Context, _ []int) (int, error) { return frameStep(tx, "C", cFails, errSerial).Run(ctx) })
			return frameThen(frameStep(tx, "X", failsLeft(0), nil), all).With(dbop.WithRetry(dbop.Constant(0))).Run(ctx)
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
		if got, want := applied(t, &rec), []string{"X", "A", "B", "C"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("Run: %v; committed %q want %q; log %v", err, got, want, rec.Log())
		}
	})
	t.Run("errors.As to MySQLError and Is ctx.Canceled through the mark", func(t *testing.T) {
		var rec dboptest.Recorder
		my := dboptest.MySQLError(1205, "Lock wait timeout exceeded")
		_, err := frameThen(writeTx(&rec, "A", nil, nil), dbop.Op[int](func(context.Context) (int, error) { return 0, dbop.Classify(my, dbop.RetryStatement) })).
			With(dbop.WithRetry(dbop.Constant(0))).Run(t.Context())
		if !errors.Is(err, my) || dbop.VerdictOf(err) != dbop.RetryStatement {
			t.Errorf("Run: %v verdict %v", err, dbop.VerdictOf(err))
		}
		ctx, cancel := context.WithCancel(t.Context())
		_, err = frameThen(writeTx(&rec, "A2", nil, nil), dbop.Op[int](func(context.Context) (int, error) { cancel(); return 0, context.Canceled })).Run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
}

// A step that runs its savepoint scope with the transaction's context
// rather than the one Then handed it still counts: the release reaches the
// transaction the Then runs in, and the retry around the Then refuses
// instead of putting A in the transaction twice (found by a review).
func TestAStepRunWithTheTransactionsContextStillCounts(t *testing.T) {
	lockWait := dbop.Classify(dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.RetryStatement)
	var rec dboptest.Recorder
	_, err := scopes.InTx(rec.Begin, func(txctx context.Context, tx *dboptest.Tx) (int, error) {
		a, b := frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(1), lockWait)
		first := dbop.Op[int](func(context.Context) (int, error) { return a.Run(txctx) })
		return frameThen(first, b).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(txctx)
	}).Run(t.Context())
	if got := applied(t, &rec); len(got) != 0 || !errors.Is(err, dbop.ErrAlreadyCommitted) {
		t.Errorf("Run: %v, committed %q; want ErrAlreadyCommitted and nothing (InTx rolled back)", err, got)
	}
}

// The mark on a Then's error names the frame its releases stand in without
// keeping it, or the contexts it was derived from, alive: an error kept in
// a log or a cache does not keep the request's context values.
func TestAThensErrorDoesNotKeepTheContextAlive(t *testing.T) {
	lockWait := dbop.Classify(dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.RetryStatement)
	type big [1 << 20]byte
	freed := make(chan struct{})
	var kept error
	func() {
		v := new(big)
		runtime.AddCleanup(v, func(ch chan struct{}) { close(ch) }, freed)
		ctx := context.WithValue(t.Context(), struct{ big int }{}, v)
		var rec dboptest.Recorder
		_, kept = scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			return frameThen(frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(1), lockWait)).Run(ctx)
		}).Run(ctx)
	}()
	var txmarkAfter bool
	for e := kept; e != nil; e = errors.Unwrap(e) {
		txmarkAfter = txmarkAfter || strings.Contains(fmt.Sprintf("%T", e), "After")
	}
	if !txmarkAfter {
		t.Fatalf("Run: %v (%T); want the Then's mark on it, or the test checks nothing", kept, kept)
	}
	for range 10 {
		runtime.GC()
		select {
		case <-freed:
			runtime.KeepAlive(kept)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Errorf("the error (%v) keeps the request's context values alive", kept)
}

// A step that runs its savepoint scope with the transaction's context
// inside a savepoint the Then runs in: the release reaches the transaction,
// not the savepoint's frame, yet it is part of the savepoint's work. It is
// counted by the Then inside the savepoint (the retry there refuses rather
// than put A in twice) and undone with the savepoint's rollback (a Then
// around the savepoint, in a savepoint of its own listed in the retry's
// pipeline, runs again, and OrDefault gives its default). Found by a
// review.
func TestAStepRunWithTheTransactionsContextInsideASavepoint(t *testing.T) {
	lockWait := dbop.Classify(dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.RetryStatement)
	retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))
	for _, c := range []struct {
		name    string
		body    func(txctx context.Context, tx *dboptest.Tx, aTx, b dbop.Op[int]) dbop.Op[int]
		wantErr error
		want    []string
	}{
		{"a retry inside the savepoint", func(_ context.Context, tx *dboptest.Tx, aTx, b dbop.Op[int]) dbop.Op[int] {
			return frameThen(aTx, b).With(retry).With(scopes.InSavepoint(tx))
		}, dbop.ErrAlreadyCommitted, nil},
		{"a retry around a Then around the savepoint", func(_ context.Context, tx *dboptest.Tx, aTx, b dbop.Op[int]) dbop.Op[int] {
			read := dbop.Op[int](func(context.Context) (int, error) { return 0, nil })
			return frameThen(read, frameThen(aTx, b).With(scopes.InSavepoint(tx))).With(retry, scopes.InSavepoint(tx))
		}, nil, []string{"A", "B"}},
		{"OrDefault around a Then around the savepoint", func(_ context.Context, tx *dboptest.Tx, aTx, b dbop.Op[int]) dbop.Op[int] {
			read := dbop.Op[int](func(context.Context) (int, error) { return 0, nil })
			return frameThen(read, frameThen(aTx, b).With(scopes.InSavepoint(tx))).With(dbop.OrDefault(7), scopes.InSavepoint(tx))
		}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			_, err := scopes.InTx(rec.Begin, func(txctx context.Context, tx *dboptest.Tx) (int, error) {
				a := frameStep(tx, "A", failsLeft(0), nil)
				aTx := dbop.Op[int](func(context.Context) (int, error) { return a.Run(txctx) })
				return c.body(txctx, tx, aTx, frameStep(tx, "B", failsLeft(1), lockWait)).Run(txctx)
			}).Run(t.Context())
			switch {
			case c.wantErr == nil && err != nil:
				t.Errorf("Run: %v, want success", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Errorf("Run: %v, want %v", err, c.wantErr)
			}
			if got := applied(t, &rec); !slices.Equal(got, c.want) {
				t.Errorf("committed %q, want %q; log %v", got, c.want, rec.Log())
			}
		})
	}
}
