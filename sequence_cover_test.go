package dbop_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// Inside a transaction, a savepoint scope certifies that it rolled back
// its own part of an attempt, not what the attempt ran on the transaction
// before it: a plain statement, a Then's first step, the statements of an
// Op of your own. A retry runs the attempt again, and a fallback replaces
// its error, only when a savepoint scope listed inside it, with none of
// the caller's code between, undid the whole attempt — or when the retry
// is Idempotent (the fallback AcceptAmbiguous). Found by a review: a
// retry around Then(plain A, savepoint step B) put A in twice, and
// OrDefault there committed A without B.
func TestRetryInsideATransactionTrustsOnlyAScopeThatCoversTheAttempt(t *testing.T) {
	retry := func(opts ...dbop.RetryOption) dbop.Decorator {
		return dbop.WithRetry(dbop.Constant(0), append([]dbop.RetryOption{dbop.MaxAttempts(3)}, opts...)...)
	}
	then := func(a, b dbop.Op[int]) dbop.Op[int] {
		return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
	}
	// A is a plain statement; B runs in a savepoint and fails once with a
	// lock wait timeout, which its scope undoes.
	type steps struct{ a, b dbop.Op[int] }
	for _, c := range []struct {
		name    string
		body    func(s steps, tx *dboptest.Tx, rec *dboptest.Recorder) dbop.Op[int]
		wantErr bool     // the transaction's function returns B's error, and InTx rolls back
		want    []string // the INSERTs committed
	}{
		{"a retry around a Then", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(retry())
		}, true, nil},
		{"a retry around an All", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return dbop.Then(dbop.All(1, s.a, s.b), func(_ context.Context, vs []int) (int, error) { return len(vs), nil }).With(retry())
		}, true, nil},
		{"a retry around an Op of your own", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				if _, err := s.a.Run(ctx); err != nil {
					return 0, err
				}
				return s.b.Run(ctx)
			}).With(retry())
		}, true, nil},
		{"a retry decorating the savepoint step apart", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			// The retry is in a pipeline of its own around the step's
			// (two calls of With): it cannot know that the step's
			// savepoint covers the attempt, and does not run it again.
			return s.b.With(retry())
		}, true, nil},
		{"a retry with Around between it and the savepoint", func(s steps, tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			runA := dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
				if _, err := s.a.Run(ctx); err != nil {
					return err
				}
				return next(ctx)
			})
			return framePlainStep(tx, "B", failsLeft(1), errLockWait).With(retry(), runA, scopes.InSavepoint(tx))
		}, true, nil},
		{"OrDefault around a Then", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(dbop.OrDefault(-1))
		}, true, nil},
		{"Fallback around a Then", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(dbop.Fallback(func(context.Context, error) (int, error) { return -1, nil }))
		}, true, nil},
		{"a retry around a Then of a transaction on another connection", func(s steps, _ *dboptest.Tx, rec *dboptest.Recorder) dbop.Op[int] {
			// B in a transaction of its own (released when it fails):
			// A, on the enclosing one, stands.
			var other dboptest.Recorder
			fails := failsLeft(1)
			b := scopes.InTx(other.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return framePlainStep(tx, "B", fails, dbop.Classify(errLockWait, dbop.RetryTransaction)).Run(ctx)
			})
			return then(s.a, b).With(retry())
		}, true, nil},

		// Controls: what the retry may run again.
		{"a retry with a savepoint around the Then", func(s steps, tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(retry(), scopes.InSavepoint(tx))
		}, false, []string{"A", "B"}},
		{"a retry, ClassifyBy and WithTimeout with a savepoint around the Then", func(s steps, tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(retry(), dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.Unclassified }), dbop.WithTimeout(time.Hour), scopes.InSavepoint(tx))
		}, false, []string{"A", "B"}},
		{"OrDefault with a savepoint around the Then", func(s steps, tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(dbop.OrDefault(-1), scopes.InSavepoint(tx))
		}, false, nil},
		{"an Idempotent retry around a Then", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(retry(dbop.Idempotent()))
		}, false, []string{"A", "A", "B"}},
		{"OrDefault with AcceptAmbiguous around a Then", func(s steps, _ *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			return then(s.a, s.b).With(dbop.OrDefault(-1, dbop.AcceptAmbiguous()))
		}, false, []string{"A"}},
		{"a retry around the savepoint step alone", func(s steps, tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			step := framePlainStep(tx, "B", failsLeft(1), errLockWait).With(retry(), scopes.InSavepoint(tx))
			return then(s.a, step)
		}, false, []string{"A", "B"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				s := steps{a: framePlainStep(tx, "A", failsLeft(0), nil), b: frameStep(tx, "B", failsLeft(1), errLockWait)}
				return c.body(s, tx, &rec).Run(ctx)
			}).Run(t.Context())
			switch {
			case c.wantErr && !errors.Is(err, errLockWait):
				t.Errorf("Run: %v, want B's error", err)
			case !c.wantErr && err != nil:
				t.Errorf("Run: %v, want success", err)
			}
			if got := applied(t, &rec); !slices.Equal(got, c.want) {
				t.Errorf("committed %q, want %q; log %v", got, c.want, rec.Log())
			}
		})
	}
}
