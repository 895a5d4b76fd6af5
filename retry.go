package dbop

import (
	"context"
	"math/rand/v2"
	"time"
)

// direct reports whether the first attempt may run before the loop starts,
// called straight from the typed closure: nothing (an observer, a budget
// deposit, an elapsed-time clock) needs doing before it. On that path a
// success costs two calls, not four.
func (r *retrier) direct() bool {
	return r.observer == nil && r.budget == nil && r.maxElapsed == 0
}

// run is the retry loop. attempt runs the decorated Op once; it is only ever
// called, never stored, so the closure the caller builds around its result
// stays on the caller's stack.
func (r *retrier) run(ctx context.Context, attempt func(context.Context) error) error {
	return r.loop(ctx, attempt, nil)
}

// loop runs attempts until one succeeds or the retry stops. A non-nil first
// is the error of a first attempt already made on the direct path.
func (r *retrier) loop(ctx context.Context, attempt func(context.Context) error, first error) error {
	obs := r.observer
	var start time.Time
	if r.maxElapsed > 0 || obs != nil {
		start = time.Now()
	}
	opCtx := ctx
	if obs != nil {
		opCtx = obs.OperationStart(ctx, r.name)
	}
	if r.budget != nil {
		r.budget.deposit()
	}
	var prev time.Duration
	var unknown error // the first retried error whose outcome is unknown
	for n := 1; ; n++ {
		attemptCtx := opCtx
		if obs != nil {
			attemptCtx = obs.AttemptStart(opCtx, n)
		}
		err := first
		if n > 1 || first == nil {
			err = attempt(attemptCtx)
		}
		if err == nil {
			if obs != nil {
				obs.AttemptEnd(attemptCtx, AttemptEvent{Attempt: n})
				obs.OperationEnd(opCtx, OperationEvent{Name: r.name, Attempts: n, Duration: time.Since(start)})
			}
			return nil
		}

		v := VerdictOf(err)
		delay, stop := r.decide(ctx, n, err, v, start, prev)
		if stop == nil && v == Ambiguous && unknown == nil {
			unknown = err // retried: from here on, the work may already be applied
		}
		if obs != nil {
			obs.AttemptEnd(attemptCtx, AttemptEvent{Attempt: n, Err: err, Verdict: v, Retry: stop == nil, Delay: delay})
		}
		if stop == nil {
			if r.onRetry != nil {
				r.onRetry(opCtx, RetryEvent{Attempt: n, Err: err, Verdict: v, Delay: delay})
			}
			stop = sleep(ctx, delay, n, err)
		}
		if stop != nil {
			if unknown != nil {
				stop = outcomeUnknown(stop, unknown, n)
			}
			if obs != nil {
				obs.OperationEnd(opCtx, OperationEvent{Name: r.name, Attempts: n, Err: stop, Duration: time.Since(start)})
			}
			return stop
		}
		prev = delay
	}
}

// decide returns the wait before the next attempt, or a non-nil error to
// return instead of retrying.
func (r *retrier) decide(ctx context.Context, n int, err error, v Verdict, start time.Time, prev time.Duration) (time.Duration, error) {
	if ctx.Err() != nil {
		// The caller's context is done: nothing may be retried.
		return 0, err
	}
	switch v {
	case NotRetryable:
		return 0, err
	case Ambiguous:
		// Only the retry around the transaction can act on an unknown
		// outcome, and only for idempotent work.
		if !r.idempotent || IsWithinTx(ctx) {
			return 0, err
		}
	case RetryTransaction:
		if IsWithinTx(ctx) {
			return 0, err
		}
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

// sleep waits d or until ctx is done, whichever comes first; it returns a
// *RetryError when the context ended first. A zero wait does not touch the
// timer machinery.
func sleep(ctx context.Context, d time.Duration, n int, last error) error {
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			t.Stop()
		}
	} else if ctx.Err() == nil {
		return nil
	}
	return &RetryError{Attempts: n, Reason: context.Cause(ctx), Err: last}
}
