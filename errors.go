package dbop

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop/internal/txmark"
)

// The reasons a [WithRetry] gives up on a retryable error.
var (
	// ErrRetriesExhausted is matched, through errors.Is, by the error
	// [WithRetry] returns when it gives up on a retryable error because
	// the attempt limit or the elapsed-time limit was reached.
	ErrRetriesExhausted = errors.New("dbop: retries exhausted")
	// ErrBudgetExhausted is the Reason of the [*RetryError] a [WithRetry]
	// returns when its [Budget] refused a retry.
	ErrBudgetExhausted = errors.New("dbop: retry budget exhausted")
	// ErrAlreadyCommitted is the Reason of the [*RetryError] a
	// [WithRetry] returns instead of running again an operation built by
	// [Then] or [All] whose failure came after one of its steps had
	// committed its transaction, or, inside a transaction, released its
	// savepoint: running it again would apply that step twice. A retry
	// marked [Idempotent] runs it again.
	ErrAlreadyCommitted = errors.New("dbop: not run again (a step of the operation had committed its transaction or released its savepoint)")
)

// committedBefore reports whether err, the failure of an operation run
// with ctx, says that some of the operation's work took effect before it
// failed and still stands for whoever runs with ctx: a [Then] or [All]
// whose step committed a transaction (nothing undoes a commit), or
// released a savepoint in a savepoint or transaction ctx still runs in
// (outside it, that savepoint or transaction has been rolled back, or
// committed as a whole and counted as a commit).
func committedBefore(ctx context.Context, err error) bool { return committedMark(ctx, err) != nil }

// committedMark returns the first mark on err that makes committedBefore
// true, or nil.
func committedMark(ctx context.Context, err error) *txmark.After {
	for a := range txmark.Afters(err) {
		if !a.Released || txmark.Within(ctx, a.Frame) {
			return a
		}
	}
	return nil
}

// keepCommitted returns final, the error a retry ends on, marked as m, the
// mark of an earlier attempt's error (committedMark), when final carries
// none that counts: an Idempotent retry ran the Then or All again, and a
// later attempt that failed before any step took effect does not undo the
// first's. Without the mark, OrDefault and Fallback would replace a
// failure whose first part stands, and the caller would read a plain
// failure.
func keepCommitted(ctx context.Context, final error, m *txmark.After) error {
	if committedBefore(ctx, final) {
		return final
	}
	return &txmark.After{Err: final, Released: m.Released, Frame: m.Frame}
}

// markCommitted returns err, the failure of a Then or All,
// marked as coming after a commit or a savepoint release c counted, or err
// when c counted none. Every error is marked, whatever its verdict here: a
// decorator between the Then and a retry may still make it one the retry
// acts on (a ClassifyBy that knows the driver's error, a WithTimeout whose
// deadline cut the step), and a fallback must not replace a failure whose
// first part took effect. An error an inner Then or All marked as strongly
// is left as it is (never changed in place: a Flight may hand it to
// several callers).
func markCommitted(err error, c *txmark.Commits) error {
	n, rel := c.Count(), c.Releases()
	if n == 0 && rel == 0 {
		return err
	}
	for a := range txmark.Afters(err) {
		if !a.Released || n == 0 && a.Frame == c.Frame() {
			return err
		}
	}
	return &txmark.After{Err: err, Released: n == 0, Frame: c.Frame()}
}

// errElapsed is the reason for giving up at the elapsed-time limit.
var errElapsed = fmt.Errorf("%w: elapsed-time limit reached", ErrRetriesExhausted)

// RetryError is returned by [WithRetry] when it stops retrying an error it
// would otherwise have retried: the attempt or elapsed-time limit was
// reached, a retry budget refused, or the caller's context ended while
// waiting for the next attempt. It matches both its Reason and its last
// error with errors.Is and errors.As (the last error first), and the
// caller's context's error when the Reason is a cause of the context's
// own (an errgroup's: a sibling's error), so
//
//	errors.Is(err, dbop.ErrRetriesExhausted) // gave up at a limit
//	errors.Is(err, context.Canceled)         // the caller cancelled while waiting
//	errors.As(err, &pgErr)                   // the driver's error of the last attempt
//
// all work on the same value.
type RetryError struct {
	// Attempts is the number of attempts made.
	Attempts int
	// Reason says why retrying stopped: an error matching
	// ErrRetriesExhausted, ErrBudgetExhausted, or the cause of the
	// caller's context.
	Reason error
	// Err is the error of the last attempt.
	Err error
	// Unknown, when not nil, is the error of an earlier attempt whose
	// outcome is unknown ([Ambiguous]): a COMMIT that may have been
	// applied, retried because the retry is [Idempotent]. Whatever ended
	// the retry afterwards, the operation may have taken effect, so the
	// error WithRetry returns then carries the Ambiguous verdict too.
	Unknown error

	// ctxErr is the caller's context's error when Reason is a cause of
	// its own (context.WithCancelCause; an errgroup's context, whose
	// cause is a sibling's error), so that errors.Is(err,
	// context.Canceled) still holds.
	ctxErr error
}

// errStoppedAfterUnknown is the reason for a retry that ended on an error
// it does not retry after an earlier attempt's outcome was unknown.
var errStoppedAfterUnknown = errors.New("dbop: retry stopped")

func (e *RetryError) Error() string {
	reason := fmt.Sprint(e.Reason)
	if e.ctxErr != nil {
		// The cause is other work's error (an errgroup's sibling's): say
		// that it ended the context, lest it read as this operation's.
		reason = fmt.Sprintf("%v (its cause: %v)", e.ctxErr, e.Reason)
	}
	s := fmt.Sprintf("%s after %d attempts: %v", reason, e.Attempts, e.Err)
	if e.Unknown != nil {
		s += fmt.Sprintf(" (an earlier attempt may have been applied: %v)", e.Unknown)
	}
	return s
}

// Unwrap returns the last attempt's error, the reason, the earlier
// attempt's error whose outcome is unknown, if any, and the caller's
// context's error when the reason is a cause of its own. The last
// attempt's error comes first: where the reason is a context's cause, an
// error of other work (an errgroup's sibling), errors.As and [VerdictOf]
// find the operation's own error before it, and reach it only through
// errors.Is and errors.As: its verdict and transaction marks are that
// other work's, not the operation's.
func (e *RetryError) Unwrap() []error {
	reason := e.Reason
	if e.ctxErr != nil {
		// The cause of the caller's context, not its error: other
		// work's (an errgroup's sibling's). errors.Is and errors.As
		// reach it, but the verdict and the transaction marks it
		// carries are that work's: an unknown outcome or a commit of
		// the sibling's would make this retry's error say that its own
		// work may have been applied.
		reason = foreignCause{reason}
	}
	errs := []error{e.Err, reason}
	if e.Unknown != nil {
		errs = append(errs, e.Unknown)
	}
	if e.ctxErr != nil {
		errs = append(errs, e.ctxErr)
	}
	return errs
}

// foreignCause is a context's cause that is not the context's error (an
// errgroup's: a sibling's error), as a [RetryError] unwraps to it. It
// matches what the cause matches with errors.Is and errors.As, but has no
// Unwrap: [VerdictOf] and the transaction marks stop at it, so the
// sibling's verdict (Ambiguous, say) and marks (a commit) are not read as
// the retry's.
type foreignCause struct{ err error }

func (f foreignCause) Error() string        { return f.err.Error() }
func (f foreignCause) Is(target error) bool { return errors.Is(f.err, target) }
func (f foreignCause) As(target any) bool   { return errors.As(f.err, target) }

// outcomeUnknown returns what a retry that ends on final, after attempt
// n's predecessors included one whose outcome was unknown, must return: an
// error that keeps the Ambiguous verdict and reaches both errors, so the
// caller never reads "failed" for work that may have been applied. last is
// attempt n's error: a *RetryError the retry made itself (decide, sleep)
// is given the unknown outcome, but one the attempt returned (an inner
// retry's) is the Op's error, which others may hold and read (the other
// callers of a Flight's shared run), so it is wrapped, never changed.
func outcomeUnknown(final, last, unknown error, n int) error {
	re, ok := final.(*RetryError)
	if inner, same := last.(*RetryError); ok && same && inner == re {
		ok = false
	}
	if !ok {
		re = &RetryError{Attempts: n, Reason: errStoppedAfterUnknown, Err: final}
	}
	re.Unknown = unknown
	return &classified{verdict: Ambiguous, err: re}
}
