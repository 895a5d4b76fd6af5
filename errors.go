package dbop

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	// [Then] or [All] whose failure came after one of its steps had taken
	// effect: committed its transaction, or, for a retry inside a
	// transaction, released its savepoint in it. Running it again would
	// apply that step twice. A retry marked [Idempotent] runs it again.
	ErrAlreadyCommitted = errors.New("dbop: not run again (a step of the operation had taken effect)")
)

// committedError is the error of a [Then] or [All] run in which a step's
// work had taken effect before it failed (txmark.Commits): its transaction
// committed (committed), or its savepoint was released in one of the
// transactions kept, which keep the work until they end. A retry around it
// does not run it again unless it is [Idempotent]: at all after a commit,
// and inside one of the kept transactions after a release.
type committedError struct {
	err       error
	committed bool
	kept      []*txmark.State
}

func (e *committedError) Error() string {
	if e.committed {
		return fmt.Sprintf("%v (after a step of the operation had committed its transaction)", e.err)
	}
	return fmt.Sprintf("%v (after a step of the operation had released its savepoint, keeping its work in the transaction)", e.err)
}

func (e *committedError) Unwrap() error { return e.err }

// appliedBefore reports whether err, or an error it wraps, says that a step
// of a Then or All took effect in a way that running the operation again
// with ctx would repeat: a commit, or a savepoint released in the
// transaction ctx runs in. It walks the chain itself: errors.As would make
// its target escape, an allocation on every failed attempt.
func appliedBefore(ctx context.Context, err error) bool {
	ce := findCommitted(err)
	if ce == nil {
		return false
	}
	if ce.committed {
		return true
	}
	s := txmark.StateOf(ctx)
	return s != nil && slices.Contains(ce.kept, s)
}

// findCommitted returns the committedError on err's chain, or nil.
func findCommitted(err error) *committedError {
	for err != nil {
		switch e := err.(type) {
		case *committedError:
			return e
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if ce := findCommitted(inner); ce != nil {
					return ce
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// markCommitted returns err marked with what c recorded (commits, kept
// savepoints), or err when c recorded nothing or no retry would run again
// after it: only an error a retry would act on is marked, any other
// reaches the caller unchanged (invariant 7). A mark an inner Then or All
// put on err is completed with what the outer one saw.
func markCommitted(err error, c *txmark.Commits) error {
	committed, kept := c.Count() > 0, c.Kept()
	if (!committed && len(kept) == 0) || !VerdictOf(err).Retryable() {
		return err
	}
	if ce := findCommitted(err); ce != nil {
		ce.committed = ce.committed || committed
		for _, s := range kept {
			if !slices.Contains(ce.kept, s) {
				ce.kept = append(ce.kept, s)
			}
		}
		return err
	}
	return &committedError{err: err, committed: committed, kept: kept}
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
