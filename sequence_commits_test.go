package dbop_test

import (
	"context"
	"errors"
	"slices"
	"strings"
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
		// The map's order decides: A first commits, and B's failure is
		// not retried; B first fails before A starts, and the retry runs
		// both.
		got := applied(t, &rec)
		switch {
		case err == nil && !(slices.Equal(got, []string{"A", "B"}) || slices.Equal(got, []string{"B", "A"})):
			t.Errorf("Run succeeded, committed %q; want A and B once each", got)
		case err != nil && (!errors.Is(err, dbop.ErrAlreadyCommitted) || !slices.Equal(got, []string{"A"})):
			t.Errorf("Run: %v, committed %q; want ErrAlreadyCommitted with A committed once", err, got)
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
		{"a 1213 in an op of an All", func(*dboptest.Recorder) dbop.Op[int] {
			op := dbop.Op[int](func(context.Context) (int, error) {
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

// A released savepoint step stops a retry only while its release stands:
// a retry with a savepoint scope of its own around a Then of such steps
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

// applied replays rec's log as a database would and returns the INSERTs
// that committed, in order: a savepoint's work joins the enclosing level
// when it is released and is dropped when rolled back to, a transaction's
// when it commits or rolls back.
func applied(t *testing.T, rec *dboptest.Recorder) []string {
	t.Helper()
	var out []string
	var levels [][]string // levels[0]: the transaction; one more per savepoint
	for _, s := range rec.Log() {
		switch {
		case strings.HasPrefix(s, "BEGIN"):
			levels = [][]string{nil}
		case strings.HasPrefix(s, "INSERT "):
			levels[len(levels)-1] = append(levels[len(levels)-1], strings.TrimPrefix(s, "INSERT "))
		case strings.HasPrefix(s, "SAVEPOINT "):
			levels = append(levels, nil)
		case strings.HasPrefix(s, "ROLLBACK TO SAVEPOINT "):
			levels[len(levels)-1] = nil
		case strings.HasPrefix(s, "RELEASE SAVEPOINT "):
			top := levels[len(levels)-1]
			levels = levels[:len(levels)-1]
			levels[len(levels)-1] = append(levels[len(levels)-1], top...)
		case s == "COMMIT":
			if len(levels) != 1 {
				t.Fatalf("COMMIT with %d savepoints open: %v", len(levels)-1, rec.Log())
			}
			out = append(out, levels[0]...)
			levels = nil
		case s == "ROLLBACK":
			levels = nil
		}
	}
	return out
}

// Inside a transaction, a step in a savepoint scope that released its
// savepoint has put its work in the transaction: a retry there around a
// Then or All of such steps must not run that step again (its work would
// be in the transaction twice), unless it is Idempotent. A savepoint or
// transaction rolled back around the steps undoes their releases, and the
// retry around it runs everything again: the release is counted only up to
// the savepoint or transaction it happened in.
func TestRetryInsideATransactionNeverRunsAReleasedStepAgain(t *testing.T) {
	lockWait := errLockWait
	retry := func(opts ...dbop.RetryOption) dbop.Decorator {
		return dbop.WithRetry(dbop.Constant(0), append([]dbop.RetryOption{dbop.MaxAttempts(3)}, opts...)...)
	}
	then := func(a, b dbop.Op[int]) dbop.Op[int] {
		return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
	}
	all := func(a, b dbop.Op[int]) dbop.Op[int] {
		return dbop.Then(dbop.All(1, a, b), func(_ context.Context, vs []int) (int, error) { return len(vs), nil })
	}
	// In each case B fails once; C, when it fails, fails once after B.
	type steps struct{ a, b, c dbop.Op[int] }
	for _, c := range []struct {
		name    string
		body    func(s steps, tx *dboptest.Tx) dbop.Op[int] // what runs inside the transaction
		cFails  bool
		outer   dbop.Decorator // decorates the transaction, if not nil
		wantErr error          // nil: success
		want    []string       // the INSERTs committed
	}{
		{"a retry around a Then", func(s steps, _ *dboptest.Tx) dbop.Op[int] {
			return then(s.a, s.b).With(retry())
		}, false, nil, dbop.ErrAlreadyCommitted, nil},
		{"a retry around an All", func(s steps, _ *dboptest.Tx) dbop.Op[int] {
			return all(s.a, s.b).With(retry())
		}, false, nil, dbop.ErrAlreadyCommitted, nil},
		{"an Idempotent retry around a Then", func(s steps, _ *dboptest.Tx) dbop.Op[int] {
			return then(s.a, s.b).With(retry(dbop.Idempotent()))
		}, false, nil, nil, []string{"A", "A", "B"}},
		{"a retry around the owner of the transaction the refusal ended", func(s steps, _ *dboptest.Tx) dbop.Op[int] {
			return then(s.a, s.b).With(retry())
		}, false, retry(), nil, []string{"A", "B"}},
		{"a retry around a savepoint around the Then", func(s steps, tx *dboptest.Tx) dbop.Op[int] {
			return then(s.a, s.b).With(retry(), scopes.InSavepoint(tx))
		}, false, nil, nil, []string{"A", "B"}},
		{"a retry around a Then whose savepoint step undid an inner Then", func(s steps, tx *dboptest.Tx) dbop.Op[int] {
			// A's release is undone by the savepoint around then(A, B),
			// but the first step, which the retry cannot see into, could
			// have written outside any savepoint: the retry does not run
			// it again, and the transaction's owner gets B's error.
			read := dbop.Op[int](func(context.Context) (int, error) { return 0, nil })
			return then(read, then(s.a, s.b).With(scopes.InSavepoint(tx))).With(retry())
		}, false, nil, errLockWait, nil},
		{"a retry with a savepoint around a Then whose savepoint step undid an inner Then", func(s steps, tx *dboptest.Tx) dbop.Op[int] {
			// The same inside a savepoint listed in the retry: it undid
			// all of the attempt, and the retry runs it again.
			read := dbop.Op[int](func(context.Context) (int, error) { return 0, nil })
			return then(read, then(s.a, s.b).With(scopes.InSavepoint(tx))).With(retry(), scopes.InSavepoint(tx))
		}, false, nil, nil, []string{"A", "B"}},
		{"a retry around a Then after a release a savepoint undid", func(s steps, tx *dboptest.Tx) dbop.Op[int] {
			// then(A, B) fails in its savepoint (A undone) and a default
			// replaces it; C then fails once in its own savepoint, which
			// covers C alone: the retry around the Then does not run it
			// again.
			first := then(s.a, s.b).With(dbop.OrDefault(0), scopes.InSavepoint(tx))
			return then(first, s.c).With(retry())
		}, true, nil, errLockWait, nil},
		{"a retry with a savepoint around a Then after a release a savepoint undid", func(s steps, tx *dboptest.Tx) dbop.Op[int] {
			// The same inside a savepoint listed in the retry: nothing
			// of the first run stands, and the retry runs it all again.
			first := then(s.a, s.b).With(dbop.OrDefault(0), scopes.InSavepoint(tx))
			return then(first, s.c).With(retry(), scopes.InSavepoint(tx))
		}, true, nil, nil, []string{"A", "B", "C"}},
		{"a retry around a Then of a released step and a savepoint that undid a Then", func(s steps, tx *dboptest.Tx) dbop.Op[int] {
			// C stands; then(A, B) is undone in its savepoint: the retry
			// must not run C again.
			return then(s.c, then(s.a, s.b).With(scopes.InSavepoint(tx))).With(retry())
		}, false, nil, dbop.ErrAlreadyCommitted, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			bFails, cFails := failsLeft(1), failsLeft(0)
			// step runs "INSERT name" in a savepoint of tx and then, while
			// fails is positive, fails with lockWait (the savepoint undoes
			// the INSERT).
			step := func(tx *dboptest.Tx, name string, fails *atomic.Int32) dbop.Op[int] {
				return dbop.Op[int](func(ctx context.Context) (int, error) {
					if err := tx.Exec(ctx, "INSERT "+name); err != nil {
						return 0, err
					}
					if fails.Add(-1) >= 0 {
						if name == "B" && c.cFails {
							cFails.Store(1)
						}
						return 0, lockWait
					}
					return 1, nil
				}).With(scopes.InSavepoint(tx))
			}
			op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return c.body(steps{step(tx, "A", failsLeft(0)), step(tx, "B", bFails), step(tx, "C", cFails)}, tx).Run(ctx)
			})
			if c.outer != nil {
				op = op.With(c.outer)
			}
			_, err := op.Run(t.Context())
			switch {
			case c.wantErr == nil && err != nil:
				t.Errorf("Run: %v, want success", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Errorf("Run: %v, want an error matching %v", err, c.wantErr)
			case c.wantErr != nil && !errors.Is(err, lockWait):
				t.Errorf("Run: %v, want it to reach B's error", err)
			}
			if got := applied(t, &rec); !slices.Equal(got, c.want) {
				t.Errorf("committed %q, want %q; log %v", got, c.want, rec.Log())
			}
		})
	}
}

// errLockWait is a lock wait timeout, which a retry runs again after only
// where a savepoint undid it.
var errLockWait = dbop.Classify(dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.RetryStatement)

// A transaction rolled back undoes the savepoints released in it: a Then
// around the transaction scope does not count them, and the retry around
// it runs the transaction again.
func TestRetryAroundAThenOfARolledBackTransactionWithReleasedSavepoints(t *testing.T) {
	var rec dboptest.Recorder
	fails := failsLeft(1)
	tx := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		a := dbop.Op[int](func(ctx context.Context) (int, error) { return 1, tx.Exec(ctx, "INSERT A") }).With(scopes.InSavepoint(tx))
		if _, err := a.Run(ctx); err != nil {
			return 0, err
		}
		if fails.Add(-1) >= 0 {
			return 0, errSerial
		}
		return 1, tx.Exec(ctx, "INSERT B")
	})
	op := dbop.Then(tx, func(context.Context, int) (int, error) { return 2, nil })
	if _, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context()); err != nil {
		t.Errorf("Run: %v, want success", err)
	}
	if got, want := applied(t, &rec), []string{"A", "B"}; !slices.Equal(got, want) {
		t.Errorf("committed %q, want %q; log %v", got, want, rec.Log())
	}
}

// A decorator between a Then and the retry around it can make a step's
// error one the retry acts on: a ClassifyBy that alone knows the driver's
// error (the documented place, after the retry), a WithTimeout whose
// deadline cut the step. The Then marks every error after a step took
// effect, whatever its verdict there, so the retry never runs that step
// again — a committed transaction, or inside a transaction a released
// savepoint. And a fallback inside a transaction does not replace a
// failure of a Then whose first step's work stands in it.
func TestThenMarksWhatAnOuterDecoratorMakesRetryable(t *testing.T) {
	rawLockWait := dboptest.MySQLError(1205, "Lock wait timeout exceeded")
	lockWaitIsStatement := func(err error) dbop.Verdict {
		if errors.Is(err, rawLockWait) {
			return dbop.RetryStatement
		}
		return dbop.Unclassified
	}
	retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))
	then := func(a, b dbop.Op[int]) dbop.Op[int] {
		return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
	}
	waitingTx := func(rec *dboptest.Recorder, fails *atomic.Int32) dbop.Op[int] {
		return scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			if err := tx.Exec(ctx, "INSERT B"); err != nil {
				return 0, err
			}
			if fails.Add(-1) >= 0 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return 1, nil
		})
	}
	for _, c := range []struct {
		name string
		run  func(rec *dboptest.Recorder) (int, error)
		want []string // committed; the error must be ErrAlreadyCommitted
	}{
		{"ClassifyBy, savepoint steps in a transaction", func(rec *dboptest.Recorder) (int, error) {
			return scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				a, b := frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(1), rawLockWait)
				return then(a, b).With(retry, dbop.ClassifyBy(lockWaitIsStatement)).Run(ctx)
			}).Run(t.Context())
		}, nil},
		{"WithTimeout, savepoint steps in a transaction", func(rec *dboptest.Recorder) (int, error) {
			return scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				a, b := frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(1), nil)
				return then(a, b).With(retry, dbop.WithTimeout(20*time.Millisecond)).Run(ctx)
			}).Run(t.Context())
		}, nil},
		{"ClassifyBy, transactions", func(rec *dboptest.Recorder) (int, error) {
			return then(writeTx(rec, "A", nil, nil), writeTx(rec, "B", failsLeft(1), rawLockWait)).
				With(retry, dbop.ClassifyBy(lockWaitIsStatement)).Run(t.Context())
		}, []string{"A"}},
		{"WithTimeout, transactions", func(rec *dboptest.Recorder) (int, error) {
			return then(writeTx(rec, "A", nil, nil), waitingTx(rec, failsLeft(1))).
				With(retry, dbop.WithTimeout(20*time.Millisecond)).Run(t.Context())
		}, []string{"A"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			_, err := c.run(&rec)
			if !errors.Is(err, dbop.ErrAlreadyCommitted) {
				t.Errorf("Run: %v, want ErrAlreadyCommitted", err)
			}
			if got := applied(t, &rec); !slices.Equal(got, c.want) {
				t.Errorf("committed %q, want %q; log %v", got, c.want, rec.Log())
			}
		})
	}
	t.Run("OrDefault inside the transaction", func(t *testing.T) {
		var rec dboptest.Recorder
		unique := dboptest.MySQLError(1062, "Duplicate entry")
		_, err := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			a, b := frameStep(tx, "A", failsLeft(0), nil), frameStep(tx, "B", failsLeft(1), unique)
			return then(a, b).With(dbop.OrDefault(-1)).Run(ctx)
		}).Run(t.Context())
		if !errors.Is(err, unique) {
			t.Errorf("Run: %v, want B's error passed through (A's work stands in the transaction)", err)
		}
		if got := applied(t, &rec); len(got) != 0 {
			t.Errorf("committed %q (A without B), want nothing; log %v", got, rec.Log())
		}
	})
}
