package dbop_test

// Compositions of the public API probed for broken promises by a review
// (2026-12-04). Each test states the composition and the promise it
// checks; where a comment describes a failure, that is what the review
// found before the fix the test now holds the code to.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

var (
	reviewLockTimeout = dbop.Classify(dboptest.MySQLError(1205, "Lock wait timeout exceeded"), dbop.RetryStatement)
	reviewDuplicate   = dbop.Classify(dboptest.MySQLError(1062, "Duplicate entry"), dbop.NotRetryable)
	reviewSerial      = dboptest.PgError("40001", "could not serialize access") // recognised without a classifier
)

// reviewStmt runs "stmt" on tx and then, while fails is positive, fails
// with failErr.
func reviewStmt(tx *dboptest.Tx, stmt string, fails *atomic.Int32, failErr error) dbop.Op[int] {
	return func(ctx context.Context) (int, error) {
		if err := tx.Exec(ctx, stmt); err != nil {
			return 0, err
		}
		if fails != nil && fails.Add(-1) >= 0 {
			return 0, failErr
		}
		return 1, nil
	}
}

func reviewFails(n int32) *atomic.Int32 {
	f := new(atomic.Int32)
	f.Store(n)
	return f
}

func reviewCount(log []string, stmt string) int {
	n := 0
	for _, s := range log {
		if s == stmt {
			n++
		}
	}
	return n
}

// Invariant 2: "A statement is run again inside a transaction only where
// the backend kept the transaction usable: after a savepoint scope rolled
// it back to its savepoint (the scope certifies it)." Invariant 8: "a
// retry never runs again work that took effect".
//
// Inside InTx, with the context InTx handed over (marked WithinTx), a
// retry around a unit of work that first runs a plain statement on the
// transaction and then a step in a savepoint scope (or a transaction of
// its own on another connection) that fails retryably. The savepoint
// scope certifies only its own part as undone (or the inner owner marks
// only its own transaction as released), yet the retry takes the mark as
// covering the whole attempt and runs it again: "UPDATE a" is applied
// twice in the transaction, which then commits.
func TestRetryInTxDoesNotRunAPlainStatementBeforeAScopedStepAgain(t *testing.T) {
	type build func(tx *dboptest.Tx, inner *dboptest.Recorder) dbop.Op[int]
	for _, c := range []struct {
		name  string
		build build
	}{
		{"own Op: UPDATE a, then a savepoint step failing with 1205", func(tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			b := reviewStmt(tx, "UPDATE b", reviewFails(1), reviewLockTimeout).With(scopes.InSavepoint(tx))
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				if err := tx.Exec(ctx, "UPDATE a"); err != nil {
					return 0, err
				}
				return b.Run(ctx)
			})
		}},
		{"Then(plain UPDATE a, savepoint step failing with 1205)", func(tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			a := reviewStmt(tx, "UPDATE a", nil, nil)
			b := reviewStmt(tx, "UPDATE b", reviewFails(1), reviewLockTimeout).With(scopes.InSavepoint(tx))
			return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
		}},
		{"All(1, plain UPDATE a, savepoint step failing with 1205)", func(tx *dboptest.Tx, _ *dboptest.Recorder) dbop.Op[int] {
			a := reviewStmt(tx, "UPDATE a", nil, nil)
			b := reviewStmt(tx, "UPDATE b", reviewFails(1), reviewLockTimeout).With(scopes.InSavepoint(tx))
			return dbop.Then(dbop.All(1, a, b), func(context.Context, []int) (int, error) { return 1, nil })
		}},
		{"Then(plain UPDATE a, own transaction failing with 40001)", func(tx *dboptest.Tx, inner *dboptest.Recorder) dbop.Op[int] {
			a := reviewStmt(tx, "UPDATE a", nil, nil)
			fails := reviewFails(1)
			audit := scopes.InTx(inner.Begin, func(ctx context.Context, itx *dboptest.Tx) (int, error) {
				return reviewStmt(itx, "INSERT audit", fails, reviewSerial)(ctx)
			})
			return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return audit.Run(ctx) })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec, inner dboptest.Recorder
			owner := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return c.build(tx, &inner).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
			})
			_, err := owner.Run(t.Context())
			log := rec.Log()
			t.Logf("err=%v\nlog=%q\ninner log=%q", err, log, inner.Log())
			if err == nil && reviewCount(log, "UPDATE a") > 1 && log[len(log)-1] == "COMMIT" {
				t.Errorf("UPDATE a ran %d times in one transaction, which committed: a statement ran again that no savepoint undid (invariants 2 and 8)", reviewCount(log, "UPDATE a"))
			}
		})
	}
}

// The same shape with a fallback instead of a retry: OrDefault inside the
// transaction around a Then whose first step (a plain statement on the
// transaction) took effect and whose second (in a savepoint) failed with a
// constraint violation. The fallback promises to pass through "the failure
// of a Then or All after one of its steps took effect"; here it gives the
// default and the transaction commits UPDATE a.
func TestOrDefaultInTxDoesNotHideAPlainStepThatTookEffect(t *testing.T) {
	var rec dboptest.Recorder
	owner := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		a := reviewStmt(tx, "UPDATE a", nil, nil)
		b := reviewStmt(tx, "UPDATE b", reviewFails(1), reviewDuplicate).With(scopes.InSavepoint(tx))
		both := dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
		return both.With(dbop.OrDefault(-1)).Run(ctx)
	})
	v, err := owner.Run(t.Context())
	log := rec.Log()
	t.Logf("v=%d err=%v log=%q", v, err, log)
	if err == nil && v == -1 && slices.Contains(log, "UPDATE a") && log[len(log)-1] == "COMMIT" {
		t.Errorf("OrDefault replaced the failure of a Then whose first step took effect in the transaction (UPDATE a committed); the documented rule is only for savepoint releases")
	}
}

// The doc of invariant 8's exception: "A savepoint scope run with the
// transaction's own context instead is counted". The count watches at
// most four frames above a Then (txmark.maxFramesAbove): with the Then
// nested in four savepoints, the transaction's frame is the fifth, and a
// step whose savepoint scope ran with the transaction's context is not
// counted: the retry around the Then runs it again, and "INSERT A" is
// twice in the transaction. At three savepoints it is counted.
func TestStepWithTheTransactionsContextDeepInSavepoints(t *testing.T) {
	for _, depth := range []int{3, 4} {
		t.Run(fmt.Sprintf("%d savepoints around the Then", depth), func(t *testing.T) {
			var rec dboptest.Recorder
			owner := scopes.InTx(rec.Begin, func(txCtx context.Context, tx *dboptest.Tx) (int, error) {
				a := reviewStmt(tx, "INSERT A", nil, nil).With(scopes.InSavepoint(tx))
				b := reviewStmt(tx, "INSERT B", reviewFails(1), reviewLockTimeout).With(scopes.InSavepoint(tx))
				then := dbop.Then(
					dbop.Op[int](func(context.Context) (int, error) { return a.Run(txCtx) }), // the transaction's context
					func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) },
				).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
				var sps []dbop.Decorator
				for range depth {
					sps = append(sps, scopes.InSavepoint(tx))
				}
				return then.With(sps...).Run(txCtx)
			})
			_, err := owner.Run(t.Context())
			log := rec.Log()
			t.Logf("err=%v log=%q", err, log)
			if n := reviewCount(log, "INSERT A"); n > 1 && log[len(log)-1] == "COMMIT" {
				t.Errorf("INSERT A ran %d times in one committed transaction: the release made with the transaction's context was not counted", n)
			}
		})
	}
}

// Panics in classifiers. scopes.InTx's doc: "if fn panics (or calls
// runtime.Goexit), it rolls back and lets the panic continue". A panic in
// the classifier InTx applies to fn's error happens after fn returned,
// and the deferred rollback is skipped (returned is already true): the
// transaction stays open. net/http, and many job runners, recover panics
// per request, so its connection and locks are never given back.
func TestClassifierPanicInInTxRollsBack(t *testing.T) {
	boom := scopes.ClassifyBy(func(err error) dbop.Verdict {
		if strings.Contains(err.Error(), "boom") {
			panic("classifier bug")
		}
		return dbop.Unclassified
	})
	for _, c := range []struct {
		name string
		fn   func(ctx context.Context, tx *dboptest.Tx) (int, error)
	}{
		{"fn's error", func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			if err := tx.Exec(ctx, "INSERT a"); err != nil {
				return 0, err
			}
			return 0, errors.New("boom")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			op := scopes.InTx(rec.Begin, c.fn, boom)
			func() {
				defer func() { _ = recover() }()
				_, _ = op.Run(t.Context())
			}()
			log := rec.Log()
			if last := log[len(log)-1]; last != "ROLLBACK" && last != "COMMIT" {
				t.Errorf("a panic in InTx's classifier left the transaction open: log %q", log)
			}
		})
	}
}

// The same in a savepoint scope inside a transaction begun by hand and
// marked WithinTx: the panic in the scope's classifier skips the undo, so
// the savepoint is neither rolled back nor released, and the failed
// step's statement stays in the transaction.
func TestClassifierPanicInSavepointRollsBackToIt(t *testing.T) {
	var rec dboptest.Recorder
	tx, _ := rec.Begin(t.Context(), scopes.BeginOptions{})
	ctx := dbop.WithinTx(t.Context())
	step := reviewStmt(tx, "UPDATE b", reviewFails(1), errors.New("boom")).With(scopes.InSavepoint(tx, scopes.ClassifyBy(func(err error) dbop.Verdict {
		if strings.Contains(err.Error(), "boom") {
			panic("classifier bug")
		}
		return dbop.Unclassified
	})))
	func() {
		defer func() { _ = recover() }()
		_, _ = step.Run(ctx)
	}()
	log := rec.Log()
	t.Logf("log=%q", log)
	if !slices.Contains(log, "ROLLBACK TO SAVEPOINT dbop_sp_1") {
		t.Errorf("a panic in the savepoint scope's classifier skipped the rollback to the savepoint: log %q", log)
	}
}

// Invariant 5: "Bad input is refused at construction, with a message
// naming it." A nil DecoratorFunc (a typed nil, so With's nil check does
// not see it) fails in With with the runtime's nil-dereference message.
func TestNilDecoratorFuncIsNamed(t *testing.T) {
	var d dbop.DecoratorFunc[int]
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	msg := func() (msg string) {
		defer func() {
			if p := recover(); p != nil {
				msg = fmt.Sprint(p)
			}
		}()
		op.With(d)
		return "no panic"
	}()
	t.Logf("With(nil DecoratorFunc) panicked with: %s", msg)
	if strings.Contains(msg, "nil pointer dereference") || !strings.Contains(msg, "DecoratorFunc") {
		t.Errorf("With(DecoratorFunc[int](nil)): %q does not name the bad input", msg)
	}
	msg = func() (msg string) {
		defer func() {
			if p := recover(); p != nil {
				msg = fmt.Sprint(p)
			}
		}()
		dbop.Chain(d)
		return "no panic"
	}()
	t.Logf("Chain(nil DecoratorFunc): %s", msg)
}

// A nil Classifier used through its Classify method: a nil-func panic at
// run time (Classifier.Or and ClassifyBy refuse it at construction).
func TestNilClassifierClassifyIsNamed(t *testing.T) {
	var c dbop.Classifier
	msg := func() (msg string) {
		defer func() {
			if p := recover(); p != nil {
				msg = fmt.Sprint(p)
			}
		}()
		_ = c.Classify(errors.New("x"))
		return "no panic"
	}()
	t.Logf("Classifier(nil).Classify: %s", msg)
	if strings.Contains(msg, "nil pointer dereference") {
		t.Errorf("Classifier(nil).Classify panics with %q, not a message naming the nil classifier", msg)
	}
}

// A typed nil Savepointer passes InSavepoint's nil check and panics at run
// time with a nil dereference.
func TestTypedNilSavepointerIsRefused(t *testing.T) {
	var tx *dboptest.Tx
	msg := func() (msg string) {
		defer func() {
			if p := recover(); p != nil {
				msg = fmt.Sprint(p)
			}
		}()
		_ = scopes.InSavepoint(tx)
		return "accepted at construction"
	}()
	t.Logf("InSavepoint((*dboptest.Tx)(nil)): %s", msg)
	if msg == "accepted at construction" {
		op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(scopes.InSavepoint(tx))
		run := func() (msg string) {
			defer func() {
				if p := recover(); p != nil {
					msg = fmt.Sprint(p)
				}
			}()
			_, _ = op.Run(t.Context())
			return "no panic"
		}()
		t.Errorf("a typed nil Savepointer is accepted at construction; at run time: %s", run)
	}
}

// The same Bulkhead listed twice in one pipeline (say, once directly and
// once in a Chain): the outer holds the only slot, and the inner waits for
// it until the context ends — for ever without a deadline. HotSpot lets
// itself through when listed twice; Bulkhead is not refused at build time
// though the pipeline shows the repetition.
func TestBulkheadListedTwiceIsRefused(t *testing.T) {
	pool := dbop.Bulkhead(1)
	resilient := dbop.Chain(dbop.WithRetry(dbop.Constant(0)), pool)
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	var built dbop.Op[int]
	msg := func() (msg string) {
		defer func() {
			if p := recover(); p != nil {
				msg = fmt.Sprint(p)
			}
		}()
		built = op.With(pool, resilient)
		return ""
	}()
	if msg != "" {
		t.Logf("refused when built: %s", msg)
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := built.Run(ctx)
	if err != nil {
		t.Errorf("op.With(pool, Chain(WithRetry, pool)) with nothing else running: %v (it waits for its own slot until the context ends)", err)
	}
}

// What held: slots are given back after All's fail-fast cancellation,
// for Bulkhead and HotSpot, and nobody waits for ever.
func TestSlotsAfterAllFailsFast(t *testing.T) {
	for _, c := range []struct {
		name string
		d    func() dbop.Decorator
	}{
		{"Bulkhead(1)", func() dbop.Decorator { return dbop.Bulkhead(1) }},
		{"HotSpot", func() dbop.Decorator { return dbop.HotSpot() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := c.d()
			var started atomic.Int32
			slow := dbop.Op[int](func(ctx context.Context) (int, error) {
				started.Add(1)
				<-ctx.Done()
				return 0, ctx.Err()
			}).With(dbop.WithRetry(dbop.Constant(0)), d)
			fail := dbop.Op[int](func(ctx context.Context) (int, error) {
				for started.Load() == 0 {
					time.Sleep(time.Millisecond)
				}
				return 0, reviewDuplicate
			})
			_, err := dbop.All(0, slow, slow, slow, fail).Run(t.Context())
			if err != reviewDuplicate {
				t.Errorf("All: %v, want the failing op's error itself", err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			ok := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(dbop.WithRetry(dbop.Constant(0)), d)
			if _, err := ok.Run(ctx); err != nil {
				t.Errorf("after All failed fast, a new run could not get a slot: %v", err)
			}
		})
	}
}

// What held: a Flight never shares a run whose context is inside a
// transaction, so callers in two transactions each run their own read,
// and one caller's doomed transaction's error does not reach the other.
func TestFlightAcrossTransactions(t *testing.T) {
	var flight dbop.Flight
	var rec dboptest.Recorder
	var runs atomic.Int32
	gate := make(chan struct{})
	read := func(tx *dboptest.Tx, fail bool) dbop.Op[int] {
		return dbop.Op[int](func(ctx context.Context) (int, error) {
			runs.Add(1)
			<-gate
			if err := tx.Exec(ctx, "SELECT x"); err != nil {
				return 0, err
			}
			if fail {
				return 0, dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction)
			}
			return 7, nil
		}).With(flight.Share("x"))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return read(tx, i == 0).Run(ctx)
			}).Run(t.Context())
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runs.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if runs.Load() != 2 || errs[1] != nil {
		t.Errorf("runs %d, errors %v: a run inside a transaction was shared", runs.Load(), errs)
	}
}

// Invariant 1: "After an error that rolled back or aborted a transaction
// …, no retry that runs inside that transaction runs another attempt, and
// no fallback turns it into a success: the error reaches the
// transaction's owner … a caller who began the transaction gets the
// error".
//
// All inside a transaction, with one op on the transaction and one that
// runs a transaction of its own on another connection, which would fail
// retryably (its owner rolled it back: a Released mark). Side by side, the
// other op could fail first and All cancel the op on the transaction,
// whose statement, already on the wire, fails with a deadlock that rolled
// the transaction back (MySQL 1213); returning the first error only would
// drop the deadlock, and a retry or Fallback around the All would act on
// the other op's error. Inside a transaction All runs its ops one at a
// time: the op on the transaction (it waits a moment for a cancellation
// that must not come) fails with the deadlock, the other never starts, and
// nothing around the All acts on the deadlock:
//
//   - a retry around the All, inside the transaction, does not run the
//     statement again in the rolled-back transaction (on MySQL in
//     autocommit), nor does InTx commit;
//   - a Fallback around the All, in a transaction begun by hand and
//     marked WithinTx, does not turn the failure into a success.
func TestAllWithASiblingsDoomInsideATransaction(t *testing.T) {
	deadlock := dbop.Classify(dboptest.MySQLError(1213, "Deadlock found when trying to get lock"), dbop.RetryTransaction)
	// onTx runs "UPDATE a" on tx once its siblings were cancelled, the
	// statement being already sent (WithoutCancel); rec fails the first.
	var started chan struct{} // closed when onTx's first run has begun
	onTx := func(tx *dboptest.Tx, savepoint bool) dbop.Op[int] {
		started = make(chan struct{})
		first := new(atomic.Bool)
		first.Store(true)
		op := dbop.Op[int](func(ctx context.Context) (int, error) {
			if first.Swap(false) {
				close(started)
				select {
				case <-ctx.Done():
					ctx = context.WithoutCancel(ctx)
				case <-time.After(50 * time.Millisecond):
				}
			}
			return 1, tx.Exec(ctx, "UPDATE a")
		})
		if savepoint {
			op = op.With(scopes.InSavepoint(tx))
		}
		return op
	}
	ownTx := func(inner *dboptest.Recorder) dbop.Op[int] {
		fails := reviewFails(1)
		wait := started
		return scopes.InTx(inner.Begin, func(ctx context.Context, itx *dboptest.Tx) (int, error) {
			<-wait // the sibling on the transaction is running its statement
			return reviewStmt(itx, "INSERT audit", fails, reviewSerial)(ctx)
		})
	}

	t.Run("retry inside InTx", func(t *testing.T) {
		var rec, inner dboptest.Recorder
		rec.FailNext("UPDATE a", deadlock)
		owner := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			all := dbop.All(0, onTx(tx, false), ownTx(&inner))
			_, err := all.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
			return 1, err
		})
		_, err := owner.Run(t.Context())
		log := rec.Log()
		t.Logf("err=%v\nlog=%q", err, log)
		if reviewCount(log, "UPDATE a") > 1 {
			t.Errorf("after UPDATE a deadlocked (the transaction rolled back), the retry inside the transaction ran it again: log %q, err %v", log, err)
		}
		if err == nil && log[len(log)-1] == "COMMIT" {
			t.Errorf("the transaction whose statement deadlocked was committed")
		}
	})

	for _, savepoint := range []bool{false, true} {
		t.Run(fmt.Sprintf("Fallback in a transaction begun by hand, savepoint %t", savepoint), func(t *testing.T) {
			var rec, inner dboptest.Recorder
			rec.FailNext("UPDATE a", deadlock)
			tx, _ := rec.Begin(t.Context(), scopes.BeginOptions{})
			ctx := dbop.WithinTx(t.Context())
			all := dbop.All(0, onTx(tx, savepoint), ownTx(&inner)).With(
				dbop.Fallback(func(context.Context, error) ([]int, error) { return nil, nil }))
			_, err := all.Run(ctx)
			if err == nil {
				_ = tx.Commit(ctx)
			} else {
				_ = tx.Rollback(ctx)
			}
			log := rec.Log()
			t.Logf("err=%v log=%q", err, log)
			if err == nil {
				t.Errorf("a Fallback turned the failure of an All whose op deadlocked the caller's transaction into a success; the caller committed: log %q", log)
			}
		})
	}

	t.Run("Fallback inside InTx (held by the scope's state?)", func(t *testing.T) {
		var rec, inner dboptest.Recorder
		rec.FailNext("UPDATE a", deadlock)
		owner := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			all := dbop.All(0, onTx(tx, false), ownTx(&inner)).With(
				dbop.Fallback(func(context.Context, error) ([]int, error) { return nil, nil }))
			_, err := all.Run(ctx)
			return 1, err
		})
		_, err := owner.Run(t.Context())
		log := rec.Log()
		t.Logf("err=%v log=%q", err, log)
		if err == nil && log[len(log)-1] == "COMMIT" {
			t.Errorf("InTx committed a transaction whose statement deadlocked: the Fallback replaced the All's error")
		}
	})
}

type reviewNopObserver struct{}

func (reviewNopObserver) OperationStart(ctx context.Context, _ string) context.Context { return ctx }
func (reviewNopObserver) AttemptStart(ctx context.Context, _ int) context.Context      { return ctx }
func (reviewNopObserver) AttemptEnd(context.Context, dbop.AttemptEvent)                {}
func (reviewNopObserver) OperationEnd(context.Context, dbop.OperationEvent)            {}

// What held (invariant 7): an error dbop does not act on reaches the
// caller as the very value the operation returned, through every
// decorator and combinator, at every position.
func TestErrorIdentityEverywhere(t *testing.T) {
	errX := errors.New("no rows")
	errAmb := dbop.Classify(errors.New("conn lost during COMMIT"), dbop.Ambiguous)
	var flight dbop.Flight
	var budget dbop.Budget
	retry := func(opts ...dbop.RetryOption) dbop.Decorator { return dbop.WithRetry(dbop.Constant(0), opts...) }
	for _, c := range []struct {
		name string
		err  error
		ds   []dbop.Decorator
		wrap func(dbop.Op[int]) dbop.Op[int]
	}{
		{"retry, every option", errX, []dbop.Decorator{retry(dbop.MaxAttempts(2), dbop.MaxElapsed(time.Second), dbop.Named("n"),
			dbop.Observe(reviewNopObserver{}), dbop.WithBudget(&budget), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) {}))}, nil},
		{"nested retries", errX, []dbop.Decorator{retry(), retry(dbop.Idempotent())}, nil},
		{"retry, Bulkhead", errX, []dbop.Decorator{retry(), dbop.Bulkhead(2)}, nil},
		{"Bulkhead, retry", errX, []dbop.Decorator{dbop.Bulkhead(2), retry()}, nil},
		{"retry, HotSpot", errX, []dbop.Decorator{retry(), dbop.HotSpot()}, nil},
		{"Share, retry", errX, []dbop.Decorator{flight.Share("k"), retry()}, nil},
		{"retry, Share", errX, []dbop.Decorator{retry(), flight.Share("k2")}, nil},
		{"timeouts", errX, []dbop.Decorator{dbop.WithTimeout(time.Hour), retry(), dbop.WithTimeout(time.Hour)}, nil},
		{"ClassifyBy NotRetryable", errX, []dbop.Decorator{retry(), dbop.ClassifyBy(func(error) dbop.Verdict { return dbop.NotRetryable })}, nil},
		{"hooks", errX, []dbop.Decorator{dbop.Before(func(context.Context) error { return nil }), retry(),
			dbop.Around(func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })}, nil},
		{"OrDefault, Ambiguous", errAmb, []dbop.Decorator{dbop.OrDefault(1), retry()}, nil},
		{"Fallback, Ambiguous", errAmb, []dbop.Decorator{retry(), dbop.Fallback(func(context.Context, error) (int, error) { return 1, nil })}, nil},
		{"retry around Ambiguous", errAmb, []dbop.Decorator{retry()}, nil},
		{"Then, first step", errX, []dbop.Decorator{retry()}, func(op dbop.Op[int]) dbop.Op[int] {
			return dbop.Then(op, func(_ context.Context, v int) (int, error) { return v, nil })
		}},
		{"Then, second step", errX, []dbop.Decorator{retry()}, func(op dbop.Op[int]) dbop.Op[int] {
			ok := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
			return dbop.Then(ok, func(ctx context.Context, _ int) (int, error) { return op.Run(ctx) })
		}},
		{"All", errX, []dbop.Decorator{retry()}, func(op dbop.Op[int]) dbop.Op[int] {
			return dbop.Then(dbop.All(2, op, op, op), func(context.Context, []int) (int, error) { return 0, nil })
		}},
		{"AllKeyed", errX, []dbop.Decorator{retry()}, func(op dbop.Op[int]) dbop.Op[int] {
			return dbop.Then(dbop.AllKeyed(0, map[string]dbop.Op[int]{"a": op}), func(context.Context, map[string]int) (int, error) { return 0, nil })
		}},
		{"InTx", errX, []dbop.Decorator{retry()}, func(op dbop.Op[int]) dbop.Op[int] {
			var rec dboptest.Recorder
			return scopes.InTx(rec.Begin, func(ctx context.Context, _ *dboptest.Tx) (int, error) { return op.Run(ctx) })
		}},
		{"retry inside InTx", errX, nil, func(op dbop.Op[int]) dbop.Op[int] {
			var rec dboptest.Recorder
			return scopes.InTx(rec.Begin, func(ctx context.Context, _ *dboptest.Tx) (int, error) {
				return op.With(retry(), dbop.HotSpot(), dbop.Bulkhead(1)).Run(ctx)
			})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			op := dbop.Op[int](func(context.Context) (int, error) { return 0, c.err })
			if c.wrap != nil {
				op = c.wrap(op)
			}
			_, err := op.With(c.ds...).Run(t.Context())
			if err != c.err {
				t.Errorf("err = %#v (%v), want the operation's own error", err, err)
			}
		})
	}
}

// HotSpot's doc: "listed before a WithRetry in the same pipeline, where it
// could tell retries from newcomers no more than free its slot between
// them, it panics when the pipeline is built". With another WithRetry
// listed before it, it is accepted, and holds its slot across the inner
// retry's waits.
func TestHotSpotBetweenTwoRetriesIsRefused(t *testing.T) {
	op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
	msg := func() (msg string) {
		defer func() {
			if p := recover(); p != nil {
				msg = fmt.Sprint(p)
			}
		}()
		op.With(dbop.WithRetry(dbop.Constant(0)), dbop.HotSpot(), dbop.WithRetry(dbop.Constant(time.Second)))
		return "accepted"
	}()
	t.Logf("With(WithRetry, HotSpot, WithRetry): %s", msg)
	if msg == "accepted" {
		hs := dbop.HotSpot()
		var calls atomic.Int32
		slow := dbop.Op[int](func(context.Context) (int, error) {
			if calls.Add(1) == 1 {
				return 0, reviewLockTimeout
			}
			return 1, nil
		}).With(dbop.WithRetry(dbop.Constant(0)), hs, dbop.WithRetry(dbop.Constant(300*time.Millisecond)))
		done := make(chan struct{})
		go func() { _, _ = slow.Run(context.Background()); close(done) }()
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		other := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(dbop.WithRetry(dbop.Constant(0)), hs)
		_, _ = other.Run(t.Context())
		waited := time.Since(start)
		<-done
		t.Errorf("a HotSpot listed before a WithRetry (with another retry outside) is accepted; another operation waited %v for the slot held across the inner retry's wait", waited)
	}
}

// A Flight re-entered under the same key: a shared run that runs (directly,
// or through an Op it calls) another Op shared through the same Flight
// under the same key — the same Share listed twice, or two Ops stored once
// with one ShareBy keyed by the tenant, one calling the other. The inner
// run joins the outer one, which is itself, and waits for it: every caller
// hangs until its context ends, for ever without a deadline. (A HotSpot
// lets itself through when re-entered; a Bulkhead documents the hang.)
func TestFlightReentered(t *testing.T) {
	var flight dbop.Flight
	byTenant := flight.ShareBy(func(ctx context.Context) (string, bool) { return "tenant-1", true })
	for _, c := range []struct {
		name string
		op   func() dbop.Op[int]
	}{
		{"the same Share listed twice", func() dbop.Op[int] {
			return dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(flight.Share("k"), flight.Share("k"))
		}},
		{"one ShareBy on two Ops, one calling the other", func() dbop.Op[int] {
			settings := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).With(byTenant)
			return dbop.Op[int](func(ctx context.Context) (int, error) { return settings.Run(ctx) }).With(byTenant)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			v, err := c.op().Run(ctx)
			if err != nil {
				t.Errorf("Run: %d, %v: the shared run waited for itself until the caller's deadline", v, err)
			}
			time.Sleep(100 * time.Millisecond)
			if after := runtime.NumGoroutine(); after > before {
				t.Errorf("%d goroutines before, %d after the caller gave up: the shared run still waits for itself", before, after)
			}
			// The key stays taken by the stuck run: a plain read shared
			// under it afterwards joins that run and waits too.
			plain := dbop.Op[int](func(context.Context) (int, error) { return 2, nil }).With(flight.Share("k"))
			if c.name != "the same Share listed twice" {
				plain = dbop.Op[int](func(context.Context) (int, error) { return 2, nil }).With(byTenant)
			}
			pctx, pcancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer pcancel()
			if _, err := plain.Run(pctx); err != nil {
				t.Errorf("a later, plain run shared under the same key: %v (the key is held for ever by the stuck run)", err)
			}
		})
	}
}

// Invariant 6: "Nothing turns an Ambiguous outcome into success or a
// default without an opt-in by name". With no classifier, VerdictOf reads
// SQLSTATE 40003 (statement_completion_unknown) as Ambiguous, and a retry
// not marked Idempotent does not run it again. When a per-attempt
// WithTimeout had also fired by the time the op returned that error, the
// TimeoutError wrapping it is read first, as RetryTransaction, and the
// retry runs the write whose outcome is unknown again.
func TestUnknownOutcomeAfterADeadlineIsNotRetried(t *testing.T) {
	unknown := dboptest.PgError("40003", "result is ambiguous")
	if v := dbop.VerdictOf(unknown); v != dbop.Ambiguous {
		t.Fatalf("VerdictOf(40003) = %v", v)
	}
	var calls atomic.Int32
	write := dbop.Op[int](func(ctx context.Context) (int, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done() // the answer came late, after the deadline
			return 0, unknown
		}
		return 1, nil
	})
	_, err := write.With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(10*time.Millisecond)).Run(t.Context())
	t.Logf("err=%v calls=%d verdict=%v", err, calls.Load(), dbop.VerdictOf(&dbop.TimeoutError{Timeout: time.Millisecond, Err: unknown}))
	if calls.Load() > 1 {
		t.Errorf("a retry not marked Idempotent ran again a write whose outcome was reported unknown (40003), because a per-attempt deadline had fired too (%d runs, err %v)", calls.Load(), err)
	}
}

type reviewPanickyObserver struct{ reviewNopObserver }

func (reviewPanickyObserver) AttemptEnd(context.Context, dbop.AttemptEvent) { panic("observer bug") }

// What held: a panic in a hook (Before, Around, a Fallback's function, an
// OnRetry, an Observer) gives back Bulkhead and HotSpot slots, and a
// savepoint scope around it rolls back; InTx around it rolls back.
func TestPanicsInHooks(t *testing.T) {
	boom := func() { panic("hook bug") }
	for _, c := range []struct {
		name string
		ds   func(tx *dboptest.Tx) []dbop.Decorator
	}{
		{"Before", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{dbop.WithRetry(dbop.Constant(0)), scopes.InSavepoint(tx), dbop.Before(func(context.Context) error { boom(); return nil })}
		}},
		{"Around after next", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{scopes.InSavepoint(tx), dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
				_ = next(ctx)
				boom()
				return nil
			})}
		}},
		{"Fallback's function", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{scopes.InSavepoint(tx), dbop.Fallback(func(context.Context, error) (int, error) { boom(); return 0, nil })}
		}},
		{"OnRetry", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{scopes.InSavepoint(tx), dbop.WithRetry(dbop.Constant(0), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { boom() })), scopes.InSavepoint(tx)}
		}},
		{"Observer", func(tx *dboptest.Tx) []dbop.Decorator {
			return []dbop.Decorator{scopes.InSavepoint(tx), dbop.WithRetry(dbop.Constant(0), dbop.Observe(reviewPanickyObserver{})), scopes.InSavepoint(tx)}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rec dboptest.Recorder
			bh := dbop.Bulkhead(1)
			hs := dbop.HotSpot()
			owner := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				step := reviewStmt(tx, "UPDATE b", reviewFails(1), reviewLockTimeout)
				ds := append([]dbop.Decorator{bh}, c.ds(tx)...)
				return step.With(ds...).Run(ctx)
			})
			outer := owner.With(dbop.WithRetry(dbop.Constant(0)), hs)
			func() {
				defer func() { _ = recover() }()
				_, _ = outer.Run(t.Context())
			}()
			log := rec.Log()
			if log[len(log)-1] != "ROLLBACK" {
				t.Errorf("after a panic in the hook: log %q", log)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			ok := dbop.Op[int](func(context.Context) (int, error) { return 1, nil })
			if _, err := ok.With(dbop.WithRetry(dbop.Constant(0)), hs, bh).Run(ctx); err != nil {
				t.Errorf("a slot was kept after the panic: %v", err)
			}
		})
	}
}
