package dbop

import (
	"context"
	"fmt"
)

// Verdict says what an error did to the work in progress and so whether,
// and at which scope, the work may be tried again. Classifiers produce
// verdicts; [WithRetry] and the transaction scopes act on them.
type Verdict uint8

const (
	// Unclassified means no classifier had an opinion. [WithRetry] retries
	// unclassified errors, except the caller's own context errors.
	Unclassified Verdict = iota
	// NotRetryable means trying again cannot help: a constraint violation,
	// a syntax error, a query killed on purpose.
	NotRetryable
	// RetryStatement means the failed statement may be run again in the same
	// transaction, once it has been rolled back to a savepoint; retrying the
	// whole transaction is also safe. MySQL's lock wait timeout (1205) and
	// PostgreSQL's lock_timeout (55P03) are examples.
	RetryStatement
	// RetryTransaction means the enclosing transaction is gone or doomed:
	// only running the whole transaction again, reads included, can help.
	// PostgreSQL 40001 and 40P01, MySQL 1213, SQLite BUSY_SNAPSHOT and a lost
	// connection are examples. A retry running inside a transaction scope
	// (see [WithinTx]) does not retry it; the error travels out untouched to
	// the retry around the transaction.
	RetryTransaction
	// Ambiguous means the outcome is unknown: a COMMIT was sent and no answer
	// came back, so the work may or may not have been applied. It is retried
	// only when the retry is marked [Idempotent].
	Ambiguous
)

var verdictNames = [...]string{"unclassified", "not-retryable", "retry-statement", "retry-transaction", "ambiguous"}

// String returns the verdict's name in lower case, as it appears in logs and
// telemetry: "unclassified", "not-retryable", "retry-statement",
// "retry-transaction" or "ambiguous".
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Retryable reports whether v permits some retry: RetryStatement or
// RetryTransaction. Ambiguous outcomes and unclassified errors are not
// retryable by this test; [WithRetry] has its own rules for them.
func (v Verdict) Retryable() bool { return v == RetryStatement || v == RetryTransaction }

// A Classifier maps an error to a [Verdict]. It returns Unclassified when it
// has no opinion, so classifiers can be tried in turn. A Classifier must be
// safe for concurrent use and must not block; the classifiers in
// github.com/dbop-go/dbop/classifiers are.
type Classifier func(error) Verdict

// ClassifiedError is an error with a [Verdict] attached. It unwraps to the
// original error, so errors.Is and errors.As still reach the driver's error.
type ClassifiedError struct {
	Verdict Verdict
	Err     error
}

func (e *ClassifiedError) Error() string { return e.Err.Error() }

// Unwrap returns the classified error.
func (e *ClassifiedError) Unwrap() error { return e.Err }

// Classify attaches verdict v to err. It returns nil for a nil err, and err
// itself when it already carries v.
func Classify(err error, v Verdict) error {
	if err == nil {
		return nil
	}
	if ce, ok := err.(*ClassifiedError); ok && ce.Verdict == v {
		return err
	}
	return &ClassifiedError{Verdict: v, Err: err}
}

// Permanent marks err as not retryable: [WithRetry] returns it at once.
// Permanent(nil) is nil.
func Permanent(err error) error { return Classify(err, NotRetryable) }

// Transient marks err as retryable by retrying the whole unit of work, the
// safe choice when the scope is unknown. Transient(nil) is nil.
func Transient(err error) error { return Classify(err, RetryTransaction) }

// VerdictOf returns the verdict attached to err, looking through wrapped and
// joined errors; the outermost verdict wins. It returns Unclassified when no
// verdict is attached.
func VerdictOf(err error) Verdict {
	for err != nil {
		switch e := err.(type) {
		case *ClassifiedError:
			return e.Verdict
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if v := VerdictOf(inner); v != Unclassified {
					return v
				}
			}
			return Unclassified
		default:
			return Unclassified
		}
	}
	return Unclassified
}

// ClassifyBy returns a Decorator that attaches c's verdict to every error the
// decorated Op returns, unless the error already carries one. Placed inside
// [WithRetry], it decides what the retry does; the driver's error stays
// reachable with errors.As. ClassifyBy panics if c is nil.
func ClassifyBy(c Classifier) Decorator {
	if c == nil {
		panic("dbop: ClassifyBy(nil): a Classifier is required")
	}
	return classify(c)
}

type classify Classifier

func (classify) decorator() {}

func (c classify) apply(err error) error {
	if VerdictOf(err) != Unclassified {
		return err
	}
	if v := c(err); v != Unclassified {
		return &ClassifiedError{Verdict: v, Err: err}
	}
	return err
}

// FirstOf returns a Classifier that asks each of cs in turn and returns the
// first verdict other than Unclassified. Nil classifiers are skipped.
func FirstOf(cs ...Classifier) Classifier {
	list := make([]Classifier, 0, len(cs))
	for _, c := range cs {
		if c != nil {
			list = append(list, c)
		}
	}
	return func(err error) Verdict {
		for _, c := range list {
			if v := c(err); v != Unclassified {
				return v
			}
		}
		return Unclassified
	}
}

type txScopeKey struct{}

// WithinTx returns a context marking that work run with it is inside a
// transaction. Transaction scopes (github.com/dbop-go/dbop/scopes) call it
// for the context they hand to the operation. A [WithRetry] running with such
// a context retries only statement-level failures ([RetryStatement]); a
// transaction-level or ambiguous failure is returned untouched so that the
// retry around the transaction, which alone can help, sees it.
func WithinTx(ctx context.Context) context.Context {
	if IsWithinTx(ctx) {
		return ctx
	}
	return context.WithValue(ctx, txScopeKey{}, true)
}

// IsWithinTx reports whether ctx was marked by [WithinTx].
func IsWithinTx(ctx context.Context) bool {
	v, _ := ctx.Value(txScopeKey{}).(bool)
	return v
}
