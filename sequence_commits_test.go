package dbop_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// errSerial is a serialization failure: the whole transaction runs again.
var errSerial = dbop.Classify(errors.New("40001 serialization failure"), dbop.RetryTransaction)

// writeTx is a transaction on rec that runs "INSERT name" and then, while
// fails (if not nil) is positive, fails with failErr.
func writeTx(rec *dboptest.Recorder, name string, fails *atomic.Int32, failErr error, opts ...scopes.TxOption) dbop.Op[int] {
	return scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT "+name); err != nil {
			return 0, err
		}
		if fails != nil && fails.Add(-1) >= 0 {
			return 0, failErr
		}
		return 1, nil
	}, opts...)
}

// count returns how many statements of rec's log are stmt.
func count(rec *dboptest.Recorder, stmt string) int {
	n := 0
	for _, s := range rec.Log() {
		if s == stmt {
			n++
		}
	}
	return n
}

func failsLeft(n int32) *atomic.Int32 {
	f := new(atomic.Int32)
	f.Store(n)
	return f
}

// What a retry around a Then or All counts as a step that must not run
// again: a transaction that wrote and committed. A read-only transaction,
// or a step with no transaction, wrote nothing to apply twice, and a retry
// inside a step retries that step alone, as before. Nested, the innermost
// Then marks the error once, and the retry around the outermost refuses.
func TestRetryAroundStepsCountsWhatCommitted(t *testing.T) {
	retry := func(opts ...dbop.RetryOption) dbop.Decorator {
		return dbop.WithRetry(dbop.Constant(0), append([]dbop.RetryOption{dbop.MaxAttempts(3)}, opts...)...)
	}
	t.Run("a read-only first step", func(t *testing.T) {
		var rec dboptest.Recorder
		read := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) { return 1, tx.Exec(ctx, "SELECT x") }, scopes.ReadOnly())
		fails := failsLeft(1)
		_, err := dbop.Then(read, func(ctx context.Context, _ int) (int, error) { return writeTx(&rec, "B", fails, errSerial).Run(ctx) }).With(retry()).Run(t.Context())
		if err != nil || count(&rec, "INSERT B") != 2 {
			t.Errorf("Run: %v, log %v; want B retried after its 40001", err, rec.Log())
		}
	})
	t.Run("a first step with no transaction", func(t *testing.T) {
		var rec dboptest.Recorder
		fails := failsLeft(1)
		plain := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
		_, err := dbop.Then(plain, func(ctx context.Context, _ int) (int, error) { return writeTx(&rec, "B", fails, errSerial).Run(ctx) }).With(retry()).Run(t.Context())
		if err != nil || count(&rec, "INSERT B") != 2 {
			t.Errorf("Run: %v, log %v", err, rec.Log())
		}
	})
	t.Run("a retry inside the second step", func(t *testing.T) {
		var rec dboptest.Recorder
		fails := failsLeft(2)
		_, err := dbop.Then(writeTx(&rec, "A", nil, nil), func(ctx context.Context, _ int) (int, error) {
			return writeTx(&rec, "B", fails, errSerial).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(5))).Run(ctx)
		}).With(retry()).Run(t.Context())
		if err != nil || count(&rec, "INSERT A") != 1 || count(&rec, "INSERT B") != 3 {
			t.Errorf("Run: %v, log %v; want A once, B retried twice inside", err, rec.Log())
		}
	})
	t.Run("Then inside All inside Then", func(t *testing.T) {
		var rec dboptest.Recorder
		fails := failsLeft(1)
		inner := dbop.Then(writeTx(&rec, "C", nil, nil), func(ctx context.Context, _ int) (int, error) { return writeTx(&rec, "D", fails, errSerial).Run(ctx) })
		all := dbop.All(0, inner, writeTx(&rec, "E", nil, nil))
		outer := dbop.Then(writeTx(&rec, "A", nil, nil), func(ctx context.Context, _ int) ([]int, error) { return all.Run(ctx) })
		retries := 0
		_, err := outer.With(retry(dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { retries++ }))).Run(t.Context())
		if !errors.Is(err, dbop.ErrAlreadyCommitted) || !errors.Is(err, errSerial) || count(&rec, "INSERT A") != 1 || retries != 0 {
			t.Errorf("Run: %v, %d retries, log %v; want ErrAlreadyCommitted, A once", err, retries, rec.Log())
		}
	})
	t.Run("AllKeyed", func(t *testing.T) {
		var rec dboptest.Recorder
		ops := map[string]dbop.Op[int]{"a": writeTx(&rec, "A", nil, nil), "b": writeTx(&rec, "B", failsLeft(1), errSerial)}
		_, err := dbop.AllKeyed(1, ops).With(retry()).Run(t.Context())
		if a := count(&rec, "INSERT A"); a > 1 || (a == 1 && !errors.Is(err, dbop.ErrAlreadyCommitted)) {
			t.Errorf("Run: %v, A applied %d times", err, a)
		}
	})
}

// Inside a transaction, a retry that refuses a transaction's error dooms
// it, so that its owner rolls back if the function swallows the error —
// safely from several goroutines at once (All's ops), and not for a
// statement's error (MySQL's 1205 leaves the transaction usable), a
// deadline's (it may have cut work that is not the database's), or an
// inner transaction's own (released by its owner).
func TestRetryInsideATransactionDoomsItOnlyForTheTransactionsErrors(t *testing.T) {
	refused := func(err error) dbop.Op[int] {
		return dbop.Op[int](func(context.Context) (int, error) { return 0, err }).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
	}
	for _, c := range []struct {
		name    string
		inside  func(rec *dboptest.Recorder) dbop.Op[int]
		commits bool
	}{
		{"a 40001", func(*dboptest.Recorder) dbop.Op[int] { return refused(errSerial) }, false},
		{"a 1213 in each of two ops of an All", func(*dboptest.Recorder) dbop.Op[int] {
			var both sync.WaitGroup
			both.Add(2)
			op := dbop.Op[int](func(context.Context) (int, error) {
				both.Done()
				both.Wait()
				return 0, dbop.Classify(dboptest.MySQLError(1213, "Deadlock found"), dbop.RetryTransaction)
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
			return dbop.Then(dbop.All(0, op, op), func(context.Context, []int) (int, error) { return 0, nil })
		}, false},
		{"a 1205", func(*dboptest.Recorder) dbop.Op[int] {
			return refused(dbop.Classify(dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.RetryStatement))
		}, true},
		{"a deadline of other work", func(*dboptest.Recorder) dbop.Op[int] {
			slow := dbop.Op[int](func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
			return slow.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)), dbop.WithTimeout(time.Millisecond))
		}, true},
		{"an inner transaction's exhausted 40001", func(rec *dboptest.Recorder) dbop.Op[int] {
			return writeTx(rec, "inner", failsLeft(10), errSerial).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)))
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			tx := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				if err := tx.Exec(ctx, "INSERT a"); err != nil {
					return 0, err
				}
				if _, err := c.inside(&rec).Run(ctx); err == nil {
					t.Error("the step inside did not fail")
				}
				return 1, tx.Exec(ctx, "INSERT b") // the error swallowed
			})
			_, err := tx.Run(t.Context())
			log := rec.Log()
			if committed := err == nil && log[len(log)-1] == "COMMIT"; committed != c.commits {
				t.Errorf("Run: %v, log %v; want committed: %t", err, log, c.commits)
			}
		})
	}
}

// OrDefault around a Then that failed after a step committed passes the
// error through, as it does an unknown outcome: part of the work took
// effect. AcceptAmbiguous lets it replace that too.
func TestOrDefaultKeepsAPartlyCommittedFailure(t *testing.T) {
	for _, accept := range []bool{false, true} {
		var rec dboptest.Recorder
		then := dbop.Then(writeTx(&rec, "A", nil, nil), func(ctx context.Context, _ int) (int, error) {
			return writeTx(&rec, "B", failsLeft(1), errSerial).Run(ctx)
		})
		var opts []dbop.FallbackOption
		if accept {
			opts = append(opts, dbop.AcceptAmbiguous())
		}
		v, err := then.With(dbop.OrDefault(-1, opts...), dbop.WithRetry(dbop.Constant(0))).Run(t.Context())
		if replaced := err == nil && v == -1; replaced != accept || (!accept && !errors.Is(err, dbop.ErrAlreadyCommitted)) {
			t.Errorf("AcceptAmbiguous %t: %d, %v", accept, v, err)
		}
	}
}

// Steps in savepoint scopes commit nothing, so they never stop a retry: a
// retry with a savepoint scope of its own around a Then of such steps
// (the savepoint undoes the whole Then before the next attempt), and a
// retry around the transaction's owner (which rolled it back), run it all
// again, and the transaction that commits holds each write once.
func TestRetryAroundStepsInSavepoints(t *testing.T) {
	step := func(tx *dboptest.Tx, name string, fails *atomic.Int32, err error) dbop.Op[int] {
		return dbop.Op[int](func(ctx context.Context) (int, error) {
			if err := tx.Exec(ctx, "INSERT "+name); err != nil {
				return 0, err
			}
			if fails != nil && fails.Add(-1) >= 0 {
				return 0, err
			}
			return 1, nil
		}).With(scopes.InSavepoint(tx))
	}
	lockWait := dbop.Classify(dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.RetryStatement)
	for _, c := range []struct {
		name  string
		err   error
		inner func(tx *dboptest.Tx) dbop.Decorator // decorates the Then inside the transaction
		outer dbop.Decorator                       // decorates the transaction
	}{
		{"a retry and a savepoint around the Then", lockWait,
			func(tx *dboptest.Tx) dbop.Decorator {
				return dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), scopes.InSavepoint(tx))
			}, nil},
		{"a retry around the transaction's owner", errSerial, nil, dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			fails := failsLeft(1)
			op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				a, b := step(tx, "A", nil, nil), step(tx, "B", fails, c.err)
				then := dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
				if c.inner != nil {
					then = then.With(c.inner(tx))
				}
				return then.Run(ctx)
			})
			if c.outer != nil {
				op = op.With(c.outer)
			}
			if _, err := op.Run(t.Context()); err != nil || count(&rec, "INSERT A") != 2 || count(&rec, "COMMIT") != 1 {
				t.Errorf("Run: %v, log %v; want the Then run again and committed once", err, rec.Log())
			}
		})
	}
}
