package dbop

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop/internal/sqlstate"
	"github.com/dbop-go/dbop/internal/txmark"
)

// Verdict says what an error did to the work in progress and so whether,
// and at which scope, the work may be tried again. Classifiers produce
// verdicts; [WithRetry] and the transaction scopes act on them.
type Verdict uint8

const (
	// Unclassified means nothing recognised the error. [WithRetry] does not
	// retry it: an error nobody recognised may have done anything.
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
	// connection are examples. A retry running inside the transaction (see
	// [WithinTx]) does not retry it; the error travels out untouched to the
	// transaction's owner and the retry around it.
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
// RetryTransaction. [WithRetry] never retries NotRetryable or Unclassified
// errors, and retries Ambiguous ones only when marked [Idempotent].
func (v Verdict) Retryable() bool { return v == RetryStatement || v == RetryTransaction }

// final reports whether v ends a retry whatever else is known.
func (v Verdict) final() bool { return v == Unclassified || v == NotRetryable }

// A Classifier maps an error to a [Verdict]. It returns Unclassified when it
// has no opinion, so classifiers can be tried in turn. A Classifier must be
// safe for concurrent use and must not block; the classifiers in
// github.com/dbop-go/dbop/classifiers are. To ask several in turn, pass
// them all to [ClassifyBy], or use [Classifier.Or].
type Classifier func(error) Verdict

// Or returns a Classifier that asks c and, where c has no opinion
// (Unclassified), next.
func (c Classifier) Or(next Classifier) Classifier {
	return firstOf("Classifier.Or", []Classifier{c, next})
}

// Classify returns err with c's verdict attached, when that verdict changes
// what a retry does with err, and err itself otherwise: an error that
// already carries a verdict keeps it, and one that c does not recognise, or
// calls NotRetryable while [VerdictOf] finds nothing retryable in it, is
// returned as it is, so that err == the original error still holds. It is
// what [ClassifyBy] and the transaction scopes do with each error.
func (c Classifier) Classify(err error) error {
	if c == nil {
		panic("dbop: Classify called on a nil Classifier")
	}
	return classifyWith(c, err)
}

// classified is an error with a [Verdict] attached. It unwraps to the
// original error, so errors.Is and errors.As still reach the driver's error.
type classified struct {
	verdict Verdict
	err     error
}

func (e *classified) Error() string { return e.err.Error() }

func (e *classified) Unwrap() error { return e.err }

// Classify returns err with verdict v attached: the one way to say by hand
// what an error means to a retry. Classify(err, RetryTransaction) makes an
// error of your own retryable by running the whole unit of work again (the
// safe choice when the scope is unknown); Classify(err, NotRetryable) stops
// every retry at it. The result unwraps to err, so errors.Is and errors.As
// still reach it, and [VerdictOf] reads v. Classify returns nil for a nil
// err, and err itself when it already carries v.
func Classify(err error, v Verdict) error {
	if err == nil {
		return nil
	}
	if ce, ok := err.(*classified); ok && ce.verdict == v {
		return err
	}
	return &classified{verdict: v, err: err}
}

// VerdictOf returns the verdict [WithRetry] acts on for err:
//
//   - the verdict attached to err by a [Classifier], a transaction scope or
//     [Classify], looking through wrapped and joined errors (the outermost
//     wins; of errors joined side by side, errors.Join's or those of
//     fmt.Errorf with several %w, the first — but Ambiguous when one of them
//     is, attached or recognised as below: some of the work may have been
//     applied);
//   - otherwise the verdict of what dbop recognises by itself, without a
//     classifier and without importing a driver: a SQLSTATE of class 40
//     reported through an SQLState() string method (40001
//     serialization_failure and 40P01 deadlock_detected are
//     RetryTransaction, 40003 statement_completion_unknown is Ambiguous),
//     and a deadline of a [WithTimeout] inside the retry ([*TimeoutError])
//     is RetryTransaction;
//   - otherwise Unclassified, which no retry acts on.
func VerdictOf(err error) Verdict {
	if v := attached(err); v != Unclassified {
		return v
	}
	return recognised(err)
}

// attached returns the verdict attached to err, or Unclassified.
func attached(err error) Verdict {
	for err != nil {
		switch e := err.(type) {
		case *classified:
			return e.verdict
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			// Joined errors (errors.Join, fmt.Errorf with several %w) sit
			// side by side, none outermost: the first verdict found
			// decides, unless one of them says that its work may have
			// been applied. That one decides whatever comes before it,
			// or a fallback would give its default and a retry run the
			// work again (invariant 6).
			first := Unclassified
			for _, inner := range e.Unwrap() {
				if _, ok := inner.(foreignCause); ok {
					continue // other work's error (RetryError.Unwrap)
				}
				v := attached(inner)
				if v == Ambiguous || v == Unclassified && recognised(inner) == Ambiguous {
					return Ambiguous
				}
				if first == Unclassified {
					first = v
				}
			}
			return first
		default:
			return Unclassified
		}
	}
	return Unclassified
}

// recognised returns the verdict of what the root package recognises with
// no classifier: see VerdictOf.
func recognised(err error) Verdict {
	if err == nil {
		return Unclassified
	}
	state := sqlState(err)
	if state == "40003" {
		// The outcome is unknown, whatever else happened: a deadline
		// that fired while the server said so does not make it known.
		return Ambiguous
	}
	if _, ok := errors.AsType[*TimeoutError](err); ok {
		return RetryTransaction
	}
	switch state {
	case "40001", "40P01": // SQL standard class 40, transaction rollback
		return RetryTransaction
	}
	return Unclassified
}

// sqlState returns the SQLSTATE of the first error in err's chain that
// reports one through an SQLState() string method (*pgconn.PgError, lib/pq's
// *pq.Error), or "".
func sqlState(err error) string { return sqlstate.Of(err) }

// classifyWith returns err with c's verdict attached, when the verdict
// changes what a retry does with err: an error that already carries a
// verdict keeps it, and a final verdict (NotRetryable) is not attached to
// an error no retry would act on anyway, so that such an error reaches the
// caller as the very value the operation returned.
func classifyWith(c Classifier, err error) error {
	if err == nil || attached(err) != Unclassified {
		return err
	}
	v := c(err)
	if cur := recognised(err); v == Unclassified || v == cur || (v.final() && cur.final()) {
		return err
	}
	return &classified{verdict: v, err: err}
}

// ClassifyBy returns a Decorator that attaches a verdict to the errors the
// decorated Op returns: the first of cs, asked in order, that recognises
// the error decides. Listed after [WithRetry], it decides what the
// retry does; listing it before the retry in the same pipeline, where it
// could only label the final error, panics when the pipeline is built.
//
// An error that already carries a verdict keeps it. An error c does not
// recognise, or calls NotRetryable, is returned as it is (err == the Op's
// error holds), since no retry acts on it; so is an error whose verdict c
// agrees with [VerdictOf]. Otherwise the error is wrapped in a
// verdict, and errors.As still reaches the driver's error. ClassifyBy
// panics if cs is empty or one of cs is nil.
func ClassifyBy(cs ...Classifier) Decorator {
	return classify(firstOf("ClassifyBy", cs))
}

// firstOf returns a Classifier asking each of cs in turn, the first verdict
// other than Unclassified winning. It panics, naming caller, if cs is empty
// or holds a nil classifier.
func firstOf(caller string, cs []Classifier) Classifier {
	if len(cs) == 0 {
		panic("dbop: " + caller + "(): a Classifier is required")
	}
	for i, c := range cs {
		if c == nil {
			panic(fmt.Sprintf("dbop: %s: classifier %d of %d is nil", caller, i+1, len(cs)))
		}
	}
	if len(cs) == 1 {
		return cs[0]
	}
	list := append([]Classifier(nil), cs...)
	return func(err error) Verdict {
		for _, c := range list {
			if v := c(err); v != Unclassified {
				return v
			}
		}
		return Unclassified
	}
}

type classify Classifier

func (classify) decorator() {}

func (c classify) apply(err error) error { return classifyWith(Classifier(c), err) }

// WithinTx returns a context marking that work run with it is inside a
// transaction the caller owns. The transaction scopes
// (github.com/dbop-go/dbop/scopes and the adapters) mark the context they
// hand to the operation; call it yourself for work on a transaction you
// began by hand.
//
// A [WithRetry] running with such a context retries only what a savepoint
// scope certified as undone (a statement-level failure rolled back to its
// savepoint), and errors of transactions that were begun and ended inside
// it: a failure that doomed the transaction, or one no savepoint undid,
// travels out untouched to the transaction's owner.
func WithinTx(ctx context.Context) context.Context {
	if isWithinTx(ctx) {
		return ctx
	}
	return txmark.WithState(ctx, new(txmark.State))
}

// isWithinTx reports whether ctx was marked by WithinTx or by a
// transaction scope.
func isWithinTx(ctx context.Context) bool { return txmark.StateOf(ctx) != nil }
