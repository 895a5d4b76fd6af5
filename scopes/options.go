package scopes

import (
	"context"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
)

// DefaultRollbackTimeout bounds a rollback run on failure when no
// [RollbackTimeout] option is given.
const DefaultRollbackTimeout = 5 * time.Second

// An Option configures [InTx] or [InSavepoint]. [ClassifyBy] and
// [RollbackTimeout] apply to both; [ReadOnly] and [CommitOutcome] apply to
// InTx only, and passing them to InSavepoint panics.
type Option func(*config)

// config is what the options set. It is built once, when the scope is
// built, and never changed afterwards.
type config struct {
	readOnly        bool
	classifier      dbop.Classifier
	commitOutcome   func(error) dbop.Verdict
	rollbackTimeout time.Duration
	rollbackCause   error // the cause of a rollback's expired deadline, built once
}

// ReadOnly makes [InTx] begin read-only transactions: the begin function
// receives [TxOptions] with ReadOnly set, which an adapter turns into the
// driver's own option (BEGIN READ ONLY, sql.TxOptions{ReadOnly: true}).
func ReadOnly() Option {
	return func(c *config) { c.readOnly = true }
}

// ClassifyBy attaches c's verdict to the errors a scope returns that carry
// none yet: the operation's error, and the errors of BEGIN and of the
// savepoint statements. A retry around the scope then acts on the verdicts,
// and [InSavepoint] uses them to decide whether rolling back to the
// savepoint can help. Adapters pass their backend's classifier. Several
// ClassifyBy options are asked in the order given, as [dbop.FirstOf] does.
// It panics if c is nil.
func ClassifyBy(c dbop.Classifier) Option {
	if c == nil {
		panic("scopes: ClassifyBy(nil): a Classifier is required")
	}
	return func(cfg *config) {
		if cfg.classifier == nil {
			cfg.classifier = c
			return
		}
		cfg.classifier = dbop.FirstOf(cfg.classifier, c)
	}
}

// CommitOutcome tells [InTx] how to judge an error from COMMIT. fn returns
// [dbop.Ambiguous] when the transaction may have been committed, and another
// verdict when it certainly was not: [dbop.Unclassified] lets the
// [ClassifyBy] classifiers decide, as for any other error.
//
// Without this option every COMMIT error is Ambiguous, the only safe default:
// the server may have committed before the answer was lost. Adapters supply
// a precise judgement for their driver; an error raised before anything was
// sent, or a server error answering the COMMIT, means "not committed", while
// a network or context error after the send is ambiguous (see
// [AmbiguousCommitError]). If several are given, the last wins. It panics if
// fn is nil.
func CommitOutcome(fn func(err error) dbop.Verdict) Option {
	if fn == nil {
		panic("scopes: CommitOutcome(nil): a function is required")
	}
	return func(c *config) { c.commitOutcome = fn }
}

// RollbackTimeout bounds the rollback a scope runs when its operation fails
// or panics (ROLLBACK for [InTx]; ROLLBACK TO SAVEPOINT and RELEASE for
// [InSavepoint]) to d; the default is [DefaultRollbackTimeout]. The rollback
// runs with [context.WithoutCancel] of the caller's context, so it still
// happens when the caller's context was cancelled or a per-attempt timeout
// fired, and the deadline keeps a dead connection from blocking the caller.
// It panics if d <= 0.
func RollbackTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("scopes: RollbackTimeout(%v): the timeout must be positive", d))
	}
	return func(c *config) { c.rollbackTimeout = d }
}

// newConfig applies opts for the function named caller, panicking on a nil
// option.
func newConfig(caller string, opts []Option) *config {
	c := &config{rollbackTimeout: DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("scopes: %s: option %d of %d is nil", caller, i+1, len(opts)))
		}
		o(c)
	}
	c.rollbackCause = fmt.Errorf("scopes: rollback did not finish within %v: %w", c.rollbackTimeout, context.DeadlineExceeded)
	return c
}

// classify attaches the configured verdict to err where it changes what a
// retry does (see [dbop.Classifier.Classify]).
func (c *config) classify(err error) error {
	if c.classifier == nil {
		return err
	}
	return c.classifier.Classify(err)
}

// cleanupContext returns the context a rollback runs with: ctx's values
// without its cancellation, bounded by the rollback timeout. The caller must
// call the returned cancel function, which stops the timer.
func (c *config) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(context.WithoutCancel(ctx), c.rollbackTimeout, c.rollbackCause)
}
