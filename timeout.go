package dbop

import (
	"context"
	"fmt"
	"time"
)

// TimeoutError reports that a deadline set by [WithTimeout] expired. It is
// both the cause of the context WithTimeout hands to the Op (see
// [context.Cause]) and, wrapping the Op's own error, what WithTimeout returns
// when that deadline fired: errors.As(err, &timeoutErr) tells this deadline
// from the caller's. It matches [context.DeadlineExceeded] with errors.Is,
// and unwraps to the Op's error so the driver's error stays reachable.
type TimeoutError struct {
	Timeout time.Duration // the limit that expired
	Err     error         // the Op's error, or context.DeadlineExceeded for the cause
}

func (e *TimeoutError) Error() string {
	if e.Err == nil || e.Err == context.DeadlineExceeded {
		return fmt.Sprintf("dbop: timed out after %v", e.Timeout)
	}
	return fmt.Sprintf("dbop: timed out after %v: %v", e.Timeout, e.Err)
}

// Is reports whether target is context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Unwrap returns the Op's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// WithTimeout returns a Decorator that runs the decorated Op with a context
// that expires after d. Listed after [WithRetry] it bounds each attempt, and
// the retry goes on when only that deadline fired; listed before it, it
// bounds the whole operation. The context's cause ([context.Cause]) is a
// [*TimeoutError], which tells this deadline from the caller's, and when the
// Op fails after the deadline fired the error is wrapped in one too.
//
// Prefer a server-side limit where the driver closes the connection on a
// context deadline (pgx, go-sql-driver): the adapters set those per attempt.
// WithTimeout panics if d <= 0.
func WithTimeout(d time.Duration) Decorator {
	if d <= 0 {
		panic(fmt.Sprintf("dbop: WithTimeout(%v): the timeout must be positive", d))
	}
	return &timeout{d: d, cause: &TimeoutError{Timeout: d, Err: context.DeadlineExceeded}}
}

type timeout struct {
	d     time.Duration
	cause *TimeoutError // built once: a deadline costs only what context.WithTimeoutCause allocates
}

func (*timeout) decorator() {}

func (t *timeout) run(ctx context.Context, attempt func(context.Context) error) error {
	tctx, cancel := context.WithTimeoutCause(ctx, t.d, t.cause)
	err := attempt(tctx)
	fired := context.Cause(tctx) == error(t.cause)
	cancel()
	if err != nil && fired {
		return &TimeoutError{Timeout: t.d, Err: err}
	}
	return err
}
