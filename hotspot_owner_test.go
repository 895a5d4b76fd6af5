package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// A HotSpot's backstop cut is retried only where the attempt's error came
// from transaction scopes of dbop's: that a scope ran in the attempt says
// nothing of the rest. Here an Op of your own runs a read-only scope (a
// lookup) and then a transaction of its own, whose COMMIT the server
// applies while its answer comes late; the backstop cuts that wait. The
// cut is Ambiguous, and the write is not run again. Before, the lookup's
// scope made the whole attempt count as the scope's, and the retry applied
// the write twice (a review of the fix that made such cuts Ambiguous).
func TestHotSpotCutAfterAScopeInAnOpOfYourOwnIsAmbiguous(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec dboptest.Recorder
		attempts := 0
		var writesApplied atomic.Int32
		lookup := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			return 1, tx.Exec(ctx, "SELECT balance")
		}, scopes.ReadOnly())
		op := dbop.Op[int](func(ctx context.Context) (int, error) {
			attempts++
			if _, err := lookup.Run(ctx); err != nil {
				return 0, err
			}
			switch attempts {
			case 1:
				time.Sleep(time.Millisecond)
				return 0, errConflict // the HotSpot bounds attempts from now on
			case 2:
				// Its own BEGIN, INSERT, COMMIT: the server applies the
				// COMMIT, the answer comes late, the backstop cuts the wait.
				writesApplied.Add(1)
				<-ctx.Done()
				return 0, ctx.Err()
			}
			writesApplied.Add(1)
			return 1, nil
		})
		_, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot()).Run(context.Background())
		if n := writesApplied.Load(); n != 1 || dbop.VerdictOf(err) != dbop.Ambiguous {
			t.Errorf("own write applied %d times (attempts %d), Run = %v (verdict %v); want once, the cut Ambiguous and not run again", n, attempts, err, dbop.VerdictOf(err))
		}
	})
}

// All of two transaction scopes, both cut by the backstop while they wait
// for locks: each ended its transaction (rolled back), so All's error is
// the scopes' and the retry runs the whole again.
func TestHotSpotCutOfAllOfScopesIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec dboptest.Recorder
		var round atomic.Int32
		scope := func(name string) dbop.Op[int] {
			return scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				switch round.Load() {
				case 1:
					time.Sleep(time.Millisecond)
					return 0, errConflict // the HotSpot bounds attempts from now on
				case 2:
					<-ctx.Done() // waits for a lock; cut, rolled back
					return 0, ctx.Err()
				}
				return 1, tx.Exec(ctx, "UPDATE "+name)
			}, scopes.ClassifyBy(func(error) dbop.Verdict { return dbop.RetryTransaction }))
		}
		all := dbop.All(2, scope("a"), scope("b"))
		op := dbop.Op[[]int](func(ctx context.Context) ([]int, error) {
			round.Add(1)
			return all(ctx)
		})
		v, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot()).Run(context.Background())
		if err != nil || len(v) != 2 || round.Load() != 3 {
			t.Errorf("Run = %v, %v after %d attempts; want both results after 3: the cut scopes rolled back", v, err, round.Load())
		}
	})
}

// The HotSpot knows a scope's error by its value. A scope whose function
// returned a value that is not its own — context.DeadlineExceeded, which
// every context that timed out returns — made every error holding that
// value look like the scope's. Here an Op of your own runs a scoped lookup
// with a budget of its own, which times out (its function returns
// ctx.Err(), and the scope, with no classifier, returns it as it is), goes
// on without it, and then commits a transaction of its own whose answer the
// backstop cuts: the driver's error wraps context.DeadlineExceeded too. The
// cut is Ambiguous and the write is not run again; before, it was taken for
// the scope's and retried, and the write applied twice.
//
// The driver's error may be the shared value itself: database/sql's
// Tx.Commit returns ctx.Err() as it is, and go-sql-driver returns the
// context's error for a read its cancellation cut. The cut is Ambiguous
// then too.
func TestHotSpotCutOfAnOpOfYourOwnIsNotTheScopesForASharedValue(t *testing.T) {
	for _, bare := range []bool{false, true} {
		t.Run(fmt.Sprintf("commit error bare %v", bare), func(t *testing.T) { cutOfOwnOpAfterSharedValue(t, bare) })
	}
}

func cutOfOwnOpAfterSharedValue(t *testing.T, bare bool) {
	synctest.Test(t, func(t *testing.T) {
		var rec dboptest.Recorder
		attempts := 0
		var writesApplied atomic.Int32
		lookup := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			<-ctx.Done() // a slow lookup: its own budget ends it
			return 0, ctx.Err()
		}, scopes.ReadOnly())
		op := dbop.Op[int](func(ctx context.Context) (int, error) {
			attempts++
			if attempts == 1 {
				time.Sleep(time.Millisecond)
				return 0, errConflict // the HotSpot bounds attempts from now on
			}
			lctx, cancel := context.WithTimeout(ctx, time.Millisecond)
			_, err := lookup.Run(lctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				return 0, err
			}
			// Goes on with a default, then its own BEGIN, UPDATE, COMMIT:
			// the server applies the COMMIT, the answer comes late.
			writesApplied.Add(1)
			if attempts == 2 {
				<-ctx.Done()
				if bare {
					return 0, ctx.Err()
				}
				return 0, fmt.Errorf("commit: %w", ctx.Err())
			}
			return 1, nil
		})
		_, err := op.With(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot()).Run(context.Background())
		if n := writesApplied.Load(); n != 1 || dbop.VerdictOf(err) != dbop.Ambiguous {
			t.Errorf("own write applied %d times (attempts %d), Run = %v (verdict %v); want once, the cut Ambiguous and not run again", n, attempts, err, dbop.VerdictOf(err))
		}
	})
}
