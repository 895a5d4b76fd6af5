package dbop

import (
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

// committedError is the error of a [Then] or [All] run in which a step's
// work had taken effect before it failed (txmark.Commits): a transaction
// scope had committed, or, inside a transaction, a savepoint scope had
// released its savepoint. A retry around it does not run it again unless it
// is [Idempotent].
type committedError struct {
	err error
	// released: no transaction had committed, only savepoints been
	// released, whose work a savepoint or transaction rolled back around
	// the Then undoes again (commitsOf).
	released bool
}

func (e *committedError) Error() string {
	if e.released {
		return fmt.Sprintf("%v (after a step of the operation had released its savepoint)", e.err)
	}
	return fmt.Sprintf("%v (after a step of the operation had committed its transaction)", e.err)
}

func (e *committedError) Unwrap() error { return e.err }

// committedBefore reports whether err says that some of its operation's
// work took effect before it failed (a committedError that still stands).
func committedBefore(err error) bool {
	committed, released := commitsOf(err)
	return committed || released
}

// commitsOf reports what the committedErrors on err's chain say still
// stands: a commit, which nothing undoes, or a released savepoint, which
// stands unless a scope outside the mark rolled it back since (a savepoint
// scope that undid its attempt, or a transaction scope that ended its
// transaction: txmark.Undone and txmark.Released above the mark).
func commitsOf(err error) (committed, released bool) {
	var walk func(err error, undone bool)
	walk = func(err error, undone bool) {
		for err != nil && !committed {
			switch e := err.(type) {
			case *committedError:
				if !e.released {
					committed = true
					return
				}
				released = released || !undone
			case *txmark.Mark:
				undone = undone || e.Kind == txmark.Undone || e.Kind == txmark.Released
			}
			switch e := err.(type) {
			case interface{ Unwrap() error }:
				err = e.Unwrap()
			case interface{ Unwrap() []error }:
				for _, inner := range e.Unwrap() {
					walk(inner, undone)
				}
				return
			default:
				return
			}
		}
	}
	walk(err, false)
	return committed, released
}

// markCommitted returns err marked as a failure after a commit or a
// savepoint release c counted, or err when c counted none. Every error is
// marked, whatever its verdict here: a decorator between the Then and a
// retry may still make it one the retry acts on (a ClassifyBy that knows
// the driver's error, a WithTimeout whose deadline cut the step), and a
// fallback must not replace a failure whose first part took effect. An
// error an inner Then or All marked as strongly is left as it is (never
// changed in place: a Flight may hand it to several callers).
func markCommitted(err error, c *txmark.Commits) error {
	n, rel := c.Count(), c.Releases()
	if n == 0 && rel == 0 {
		return err
	}
	committed, released := commitsOf(err)
	if committed || released && n == 0 {
		return err
	}
	return &committedError{err: err, released: n == 0}
}

// errElapsed is the reason for giving up at the elapsed-time limit.
var errElapsed = fmt.Errorf("%w: elapsed-time limit reached", ErrRetriesExhausted)

// RetryError is returned by [WithRetry] when it stops retrying an error it
// would otherwise have retried: the attempt or elapsed-time limit was
// reached, a retry budget refused, or the caller's context ended while
// waiting for the next attempt. It matches both its Reason and its last
// error with errors.Is and errors.As, so
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
}

// errStoppedAfterUnknown is the reason for a retry that ended on an error
// it does not retry after an earlier attempt's outcome was unknown.
var errStoppedAfterUnknown = errors.New("dbop: retry stopped")

func (e *RetryError) Error() string {
	s := fmt.Sprintf("%v after %d attempts: %v", e.Reason, e.Attempts, e.Err)
	if e.Unknown != nil {
		s += fmt.Sprintf(" (an earlier attempt may have been applied: %v)", e.Unknown)
	}
	return s
}

// Unwrap returns the reason, the last attempt's error, and the earlier
// attempt's error whose outcome is unknown, if any.
func (e *RetryError) Unwrap() []error {
	if e.Unknown != nil {
		return []error{e.Reason, e.Err, e.Unknown}
	}
	return []error{e.Reason, e.Err}
}

// outcomeUnknown returns what a retry that ends on final, after attempt
// n's predecessors included one whose outcome was unknown, must return: an
// error that keeps the Ambiguous verdict and reaches both errors, so the
// caller never reads "failed" for work that may have been applied.
func outcomeUnknown(final, unknown error, n int) error {
	re, ok := final.(*RetryError)
	if !ok {
		re = &RetryError{Attempts: n, Reason: errStoppedAfterUnknown, Err: final}
	}
	re.Unknown = unknown
	return &classified{verdict: Ambiguous, err: re}
}
