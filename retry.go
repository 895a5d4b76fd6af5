package dbop

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/dbop-go/dbop/internal/txmark"
)

// direct reports whether the first attempt may run before the loop starts,
// called straight from the typed closure: nothing (an observer, a budget
// deposit, an elapsed-time clock) needs doing before it. On that path a
// success costs two calls, not four.
func (r *retrier) direct() bool {
	return r.observer == nil && r.budget == nil && r.maxElapsed == 0
}

// loop runs attempts until one succeeds or the retry stops. A non-nil first
// is the error of a first attempt already made on the direct path. attempt
// runs the decorated Op once; it is only ever called, never stored, so the
// closure the caller builds around its result stays on the caller's stack.
//
// in.txKeys are the transactions of the scopes listed inside this retry in
// the same pipeline (see AroundTx): every attempt runs inside each of them,
// so an error that doomed one of them is never retried here.
//
// When a HotSpot is listed inside it (in.hotSpot), every attempt after the
// first carries a retryState in its context, allocated at the first
// failure, and an attempt that lost a conflict to work that got done
// meanwhile (the HotSpot's progress moved past mark, read before the
// attempt) runs again without the backoff's wait: the HotSpot's queue,
// where it goes before the operations that arrived after it, is its wait.
// After a failure with no progress anywhere (the database is down, say)
// the backoff applies as usual.
func (r *retrier) loop(ctx context.Context, in inner, attempt func(context.Context) error, first error, mark uint64) error {
	hs := in.hotSpot
	var rs *retryState
	obs := r.observer
	var start time.Time
	if r.maxElapsed > 0 || obs != nil {
		start = time.Now()
	}
	opCtx := ctx
	// With an observer, the attempt (n) whose span is open, if any, and
	// whether the operation's is: a panic (or runtime.Goexit) that leaves
	// the retry, from the Op or from a hook, ends them as errors on its
	// way, as a transaction scope rolls back on its way, with no recover,
	// so the panic goes on with its value and stack. A span never ended is
	// never exported, and its children point at a parent no backend
	// receives.
	var attemptCtx context.Context
	var n int
	attemptOpen, opOpen := false, false
	if obs != nil {
		opCtx = obs.OperationStart(ctx, r.name)
		opOpen = true
		defer func() {
			if attemptOpen {
				attemptOpen = false
				obs.AttemptEnd(attemptCtx, AttemptEvent{Attempt: n, Err: errPanicked, Verdict: VerdictOf(errPanicked)})
			}
			if opOpen {
				opOpen = false
				obs.OperationEnd(opCtx, OperationEvent{Name: r.name, Attempts: n, Err: errPanicked, Duration: time.Since(start)})
			}
		}()
	}
	if r.budget != nil {
		r.budget.deposit()
	}
	base := opCtx             // the context attempts derive from
	var doomed []*txmark.Mark // marks of errors retried after dooming a transaction
	var prev time.Duration
	var unknown error // the first retried error whose outcome is unknown
	// committed is the mark of the first retried error of a Then or All
	// after one of its steps took effect (an Idempotent retry runs it
	// again): whatever ends the retry afterwards, that step stands.
	var committed *txmark.After
	for n = 1; ; n++ {
		attemptCtx = base
		if obs != nil {
			attemptCtx = obs.AttemptStart(base, n)
			attemptOpen = true
		}
		err := first
		if n > 1 || first == nil {
			if hs != nil {
				mark = hs.progress.Load()
			}
			err = attempt(attemptCtx)
		}
		if err == nil {
			if obs != nil {
				attemptOpen = false
				obs.AttemptEnd(attemptCtx, AttemptEvent{Attempt: n})
				opOpen = false
				obs.OperationEnd(opCtx, OperationEvent{Name: r.name, Attempts: n, Duration: time.Since(start)})
			}
			return nil
		}

		v := VerdictOf(err)
		delay, stop := r.decide(ctx, n, err, v, &in, doomed, start, prev)
		if stop == nil && hs != nil && hs.paces(mark) {
			delay = 0
		}
		if stop == nil && v == Ambiguous && unknown == nil {
			unknown = err // retried: from here on, the work may already be applied
		}
		if stop == nil && committed == nil {
			committed = committedMark(ctx, err)
		}
		if obs != nil {
			attemptOpen = false
			obs.AttemptEnd(attemptCtx, AttemptEvent{Attempt: n, Err: err, Verdict: v, Retry: stop == nil, Delay: delay})
		}
		if stop == nil {
			if r.onRetry != nil {
				r.onRetry(opCtx, AttemptEvent{Attempt: n, Err: err, Verdict: v, Retry: true, Delay: delay})
			}
			stop = sleep(ctx, delay, n, err)
		}
		if stop != nil {
			doomIfRefused(ctx, err, v)
			if committed != nil {
				stop = keepCommitted(ctx, stop, committed)
			}
			if unknown != nil {
				stop = outcomeUnknown(stop, err, unknown, n)
			}
			if obs != nil {
				opOpen = false
				obs.OperationEnd(opCtx, OperationEvent{Name: r.name, Attempts: n, Err: stop, Duration: time.Since(start)})
			}
			return stop
		}
		if hs != nil {
			if rs == nil {
				rs = &retryState{first: time.Now().UnixNano(), hotSpot: hs}
				base = context.WithValue(base, retryStateKey{}, rs)
			}
			rs.attempt = n + 1
			// Its next attempt gets a longer bound if this one timed
			// out, not on a lock wait (hotSpot.bound).
			rs.timedOut = escalates(err)
		}
		if keys := txmark.DoomKeys(err); len(keys) > 0 {
			// The next attempts must not run in a transaction err doomed:
			// a scope on one of them returns err at once instead.
			base = txmark.WithRetried(base, keys, err)
			doomed = append(doomed, txmark.Of(err))
		}
		prev = delay
	}
}

// errPanicked is the error an [Observer] is told an attempt, and the
// operation, ended with when a panic or runtime.Goexit left the retry: the
// panic itself goes on unrecovered.
var errPanicked = errors.New("dbop: the operation panicked or called runtime.Goexit")

// doomIfRefused records in the transaction ctx runs in, if any, that err
// doomed it, when err says the whole transaction must run again
// (RetryTransaction) or its outcome is unknown (Ambiguous) and no scope
// marked it: the database rolled the transaction back (MySQL and MariaDB
// after a deadlock, and then run later statements on their own, each
// committed at once) or aborted it, and the retry, inside it, could not run
// again. Should the function swallow the error and go on, the
// transaction's owner then rolls back instead of committing a fragment
// (invariant 1). An error a scope marked was judged there: undone by a
// savepoint, released by a transaction of its own, or doomed already. A
// deadline's error is left alone: it says the attempt took too long, not
// what became of the transaction (if it cut a statement short, the driver
// ended that statement; on SQLite an interrupted write also ends the
// transaction, which its owner finds at its ROLLBACK or COMMIT: sqldb.InTx
// reports that Ambiguous).
func doomIfRefused(ctx context.Context, err error, v Verdict) {
	if v != RetryTransaction && v != Ambiguous {
		return
	}
	if te, deadline := errors.AsType[*TimeoutError](err); deadline && deadlineOnly(te.Err) {
		return
	}
	if s := txmark.StateOf(ctx); s != nil && txmark.Of(err) == nil {
		s.Doom(err)
	}
}

// deadlineOnly reports whether err, the error an attempt returned when its
// deadline fired, is the deadline's own: a context error and nothing the
// server said.
func deadlineOnly(err error) bool {
	if sqlState(err) != "" {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// decide returns the wait before the next attempt, or a non-nil error to
// return instead of retrying.
func (r *retrier) decide(ctx context.Context, n int, err error, v Verdict, in *inner, doomed []*txmark.Mark, start time.Time, prev time.Duration) (time.Duration, error) {
	if ctx.Err() != nil {
		// The caller's context is done: nothing may be retried.
		return 0, err
	}
	switch {
	case v == Ambiguous:
		// Only the retry around the transaction can act on an unknown
		// outcome, and only for idempotent work.
		if !r.idempotent {
			return 0, err
		}
	case !v.Retryable():
		// NotRetryable, Unclassified, and a value that is no verdict
		// (a classifier's arithmetic): nothing says running again helps.
		return 0, err
	}
	m := txmark.Of(err)
	if !retryableHere(ctx, m, in, doomed) {
		return 0, err
	}
	if !r.idempotent && committedBefore(ctx, err) {
		// A Then or All whose step committed, then failed: running it
		// again would apply that step again.
		return 0, &RetryError{Attempts: n, Reason: ErrAlreadyCommitted, Err: err}
	}
	if !r.idempotent && !coveredHere(ctx, m, in.covers) {
		// Inside a transaction, a scope undid only part of the attempt:
		// what ran before it stands, and would run twice.
		return 0, err
	}
	if n >= r.maxAttempts {
		return 0, &RetryError{Attempts: n, Reason: ErrRetriesExhausted, Err: err}
	}
	random := r.random
	if random == nil {
		random = rand.Uint64
	}
	delay := max(r.backoff.Delay(n, prev, random()), 0)
	if r.maxElapsed > 0 && time.Since(start)+delay > r.maxElapsed {
		return 0, &RetryError{Attempts: n, Reason: errElapsed, Err: err}
	}
	if r.budget != nil && !r.budget.withdraw() {
		// Last, so that a token pays only for a retry that would happen.
		return 0, &RetryError{Attempts: n, Reason: ErrBudgetExhausted, Err: err}
	}
	return delay, nil
}

// retryableHere reports whether a retry running with ctx, with the scopes
// in lists inside it, may run again after an error whose outermost mark is
// m (nil: none), as far as transactions are
// concerned (invariants 1 and 2 of the package documentation):
//
//   - an error a savepoint scope undid may run again: the transaction is
//     usable (inside a transaction, coveredHere asks whether the scope
//     undid all of the attempt);
//   - an error whose transaction's owner ended it may run again: the next
//     attempt begins a new transaction;
//   - an error that doomed a transaction may not run again inside that
//     transaction: not when ctx is marked as inside a transaction, not when
//     a scope on that transaction is listed inside this retry, and not when
//     a retry already ran again after it; elsewhere the retry is above the
//     transaction's owner, and the next attempt is told not to use it;
//   - an error this retry already ran again after, that came back as it
//     was, came from the scope of a transaction it had doomed, which
//     refused to run: the retry runs inside that transaction after all;
//   - any other error may run again only outside a transaction: inside
//     one, nothing certified that the failed statement was undone.
func retryableHere(ctx context.Context, m *txmark.Mark, in *inner, doomed []*txmark.Mark) bool {
	if m == nil {
		return !isWithinTx(ctx)
	}
	if slices.Contains(doomed, m) {
		return false
	}
	switch m.Kind {
	case txmark.Undone, txmark.Released:
		return true // inside a transaction, coveredHere judges an Undone one
	case txmark.Doomed:
		switch {
		case isWithinTx(ctx),
			slices.Contains(in.txKeys, m.Key),
			txmark.RetriedErr(ctx, m.Key) != nil:
			return false
		}
		return true
	}
	return !isWithinTx(ctx)
}

// coveredHere reports whether running the attempt again after an error
// whose outermost mark is m, once retryableHere allows it, runs nothing
// twice that the scopes do not undo. Outside a transaction it does. Inside
// one, an error a savepoint scope undid says nothing of what the attempt
// ran on the transaction before that scope — a Then's first step,
// statements of an Op of your own —, which stands: only a savepoint scope
// listed inside the retry with none of the caller's code between (covers,
// inner.covers) undid all of the attempt. A transaction of the attempt's
// own (another connection) that its owner ended is a new transaction the
// next time, as outside; a Then or All whose earlier step took effect in
// the enclosing transaction says so (committedBefore).
func coveredHere(ctx context.Context, m *txmark.Mark, covers []any) bool {
	if m == nil || m.Kind != txmark.Undone || !isWithinTx(ctx) {
		return true
	}
	return undoneHere(m, covers)
}

// undoneHere reports whether m certifies that a savepoint scope listed in
// covers (inner.covers) rolled the failed attempt back: that scope's
// savepoint held all the attempt ran in the transaction.
func undoneHere(m *txmark.Mark, covers []any) bool {
	return m != nil && m.Kind == txmark.Undone && slices.Contains(covers, m.Key)
}

// sleep waits d or until ctx is done, whichever comes first; it returns a
// *RetryError when the context ended first, or by the time the wait did. A
// zero wait does not touch the timer machinery.
func sleep(ctx context.Context, d time.Duration, n int, last error) error {
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
			// The context may have ended too by the time the timer was
			// received (an OnRetry hook or an Observer took a while, the
			// goroutine waited to be scheduled): select then chooses
			// between the two at random, and the next attempt must not
			// run after the caller's context ended.
			if ctx.Err() == nil {
				return nil
			}
		case <-ctx.Done():
			t.Stop()
		}
	} else if ctx.Err() == nil {
		return nil
	}
	re := &RetryError{Attempts: n, Reason: context.Cause(ctx), Err: last}
	if !errors.Is(re.Reason, ctx.Err()) {
		re.ctxErr = ctx.Err()
	}
	return re
}
