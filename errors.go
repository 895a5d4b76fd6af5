package dbop

import (
	"errors"
	"fmt"
)

// ErrRetriesExhausted is matched, through errors.Is, by the error
// [WithRetry] returns when it gives up on a retryable error because the
// attempt limit or the elapsed-time limit was reached.
var ErrRetriesExhausted = errors.New("dbop: retries exhausted")

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
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("%v after %d attempts: %v", e.Reason, e.Attempts, e.Err)
}

// Unwrap returns the reason and the last attempt's error.
func (e *RetryError) Unwrap() []error { return []error{e.Reason, e.Err} }

// Attempts returns how many attempts the outermost [WithRetry] made before
// returning err, and false when err did not come from giving up (a success
// or an error returned without retrying carries no count).
func Attempts(err error) (int, bool) {
	var re *RetryError
	if errors.As(err, &re) {
		return re.Attempts, true
	}
	return 0, false
}
