package dbop

import (
	"context"
	"fmt"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/txmark"
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
// context deadline (pgx, go-sql-driver): the adapters set those per attempt,
// from the deadline, and where the server reports its limit as a cancel
// rather than a timeout (SQLSTATE 57014 "… due to user request",
// docs/backends.md §1.8), the retry goes on all the same: an attempt that
// ran for at least that limit, while the caller's context is live, fails
// with the driver's error wrapped and classified RetryStatement. A cancel
// the driver sent as this deadline fired (pgx with
// CancelRequestContextWatcherHandler, §2.7), answered with that same
// 57014, is the deadline's too: the error is classified RetryTransaction,
// so that a [ClassifyBy] listed around the WithTimeout does not read it as
// a cancel on purpose. Listed
// before an adapter's InSavepoint in the same pipeline, its deadline
// becomes server limits for each step attempt, also in a transaction you
// began yourself (which marks the attempt's context, one allocation).
// WithTimeout panics if d <= 0.
func WithTimeout(d time.Duration) Decorator {
	if d <= 0 {
		panic(fmt.Sprintf("dbop: WithTimeout(%v): the timeout must be positive", d))
	}
	limit, _ := hotlock.LimitFor(d)
	return &timeout{d: d, limit: limit, cause: &TimeoutError{Timeout: d, Err: context.DeadlineExceeded}}
}

type timeout struct {
	d time.Duration
	// limit is the server-side limit the adapters derive from a deadline
	// d away (hotlock.LimitFor), 0 if none: an attempt that failed with a
	// cancel after running that long may have met it (serverLimitFired).
	limit time.Duration
	cause *TimeoutError // built once: a deadline costs only what context.WithTimeoutCause allocates
}

func (*timeout) decorator() {}

// run runs attempt under the timeout. mark says that a scope is listed
// after it in the same pipeline: the attempt's context is then marked as
// carrying an attempt's deadline (txmark.WithAttemptDeadline), which a
// savepoint step in a transaction the caller began turns into server limits.
func (t *timeout) run(ctx context.Context, mark bool, attempt func(context.Context) error) error {
	tctx, cancel := context.WithTimeoutCause(ctx, t.d, t.cause)
	defer cancel() // also when the attempt panics: no timer outlives the call
	actx := tctx
	if mark {
		actx = txmark.WithAttemptDeadline(tctx)
	}
	err := attempt(actx)
	fired := context.Cause(tctx) == error(t.cause)
	if err != nil && fired {
		te := &TimeoutError{Timeout: t.d, Err: err}
		if sqlState(err) == "57014" && VerdictOf(err).final() {
			// A cancel answered the statement this deadline cut: the
			// driver's own, sent as the context ended (pgx with
			// CancelRequestContextWatcherHandler, docs/backends.md §2.7),
			// which PostgreSQL reports as "… due to user request" (§1.7,
			// §1.8). It is this deadline's, not a cancel on purpose: the
			// verdict of a deadline, which a classifier listed around
			// the WithTimeout must not read as the driver's final one.
			return Classify(te, RetryTransaction)
		}
		return te
	}
	if err != nil && t.limit > 0 {
		// The time the attempt ran, read from its deadline, where that
		// is this one's (an earlier deadline of the caller's sets the
		// server's limits itself): nothing is timed on success.
		dl, _ := tctx.Deadline()
		if parent, has := ctx.Deadline(); !has || parent.After(dl) {
			err = serverLimitFired(ctx, err, t.d-time.Until(dl), t.limit)
		}
	}
	return err
}

// serverLimitError reports that the server ended a statement of an attempt
// at the limit the adapters set from the attempt's deadline (a
// [WithTimeout] listed after the retry, or a [HotSpot]'s bound), and
// reported it as a cancel: SQLSTATE 57014 "canceling statement due to
// user request" rather than "… due to statement timeout". PostgreSQL
// names the cause by a flag that the next statement's start clears, so a
// statement_timeout whose signal arrives late, after its statement
// ended, on a busy server, fails the next statement with the message of a
// deliberate cancel (docs/backends.md §1.8; seen live under a HotSpot,
// benchmarks/results/disjoint.txt). No client sent one: dbop's deadline had
// not ended the attempt's context, the caller's context was live, and the
// attempt had run for at least the limit. It carries the verdict
// RetryStatement, as a statement timeout does, and unwraps to the
// driver's error.
type serverLimitError struct {
	limit time.Duration // the server-side limit derived from the deadline
	err   error         // the driver's error, SQLSTATE 57014
}

func (e *serverLimitError) Error() string {
	return fmt.Sprintf("dbop: the server ended a statement at the attempt's limit (%v) and reported it as a cancel: %v", e.limit, e.err)
}

func (e *serverLimitError) Unwrap() error { return e.err }

// serverLimitFired returns err as a serverLimitError classified
// RetryStatement when it is the server's statement limit of an attempt
// reported as a cancel (see serverLimitError): SQLSTATE 57014 (read
// through an SQLState() method) with a verdict that no retry acts on,
// after the attempt ran at least limit, while ctx, the context the
// attempt's deadline was derived from, is live. Otherwise err as it is.
func serverLimitFired(ctx context.Context, err error, elapsed, limit time.Duration) error {
	if elapsed < limit || ctx.Err() != nil || !VerdictOf(err).final() || sqlState(err) != "57014" {
		return err
	}
	return Classify(&serverLimitError{limit: limit, err: err}, RetryStatement)
}
