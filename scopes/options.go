package scopes

import (
	"context"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// DefaultRollbackTimeout bounds a rollback run on failure when no
// [RollbackTimeout] option is given.
const DefaultRollbackTimeout = 5 * time.Second

// A TxOption configures [InTx] and [Do]: [ReadOnly], [CommitOutcome],
// [ResolveCommit], and every [Option].
type TxOption interface{ applyTx(*config) }

// A SavepointOption configures [InSavepoint]: every [Option]. A TxOption
// that is not an Option does not compile as a SavepointOption, so a
// transaction-only setting cannot be given to a savepoint.
type SavepointOption interface{ applySavepoint(*config) }

// An Option configures transactions and savepoints alike: [ClassifyBy] and
// [RollbackTimeout].
type Option interface {
	TxOption
	SavepointOption
}

// txOnly is a TxOption that is not an Option.
type txOnly func(*config)

func (f txOnly) applyTx(c *config) { f(c) }

// both is an Option.
type both func(*config)

func (f both) applyTx(c *config)        { f(c) }
func (f both) applySavepoint(c *config) { f(c) }

// config is what the options set. It is built once, when the scope is
// built, and never changed afterwards.
type config struct {
	readOnly        bool
	classifier      dbop.Classifier
	commitOutcome   func(error) dbop.Verdict
	resolve         bool // ResolveCommit
	rollbackTimeout time.Duration
	rollbackCause   error // the cause of a rollback's expired deadline, built once
	commitCause     error // the cause of a COMMIT's expired deadline, built once
	// inside, when not nil, runs each savepoint attempt inside its
	// savepoint, after SAVEPOINT (txmark.InsideSavepoint).
	inside func(ctx context.Context, next func(context.Context) error) error
}

// savepointOnly is a SavepointOption that is not a TxOption.
type savepointOnly func(*config)

func (f savepointOnly) applySavepoint(c *config) { f(c) }

func init() {
	// The adapters' InSavepoint sets an attempt's server limits inside its
	// savepoint this way, at no cost to an attempt that needs none: a
	// Decorator chained inside the scope would cost the pipeline's
	// allocations on every attempt.
	txmark.InsideSavepoint = func(fn func(ctx context.Context, next func(context.Context) error) error) any {
		return savepointOnly(func(c *config) { c.inside = fn })
	}
}

// ReadOnly makes [InTx] begin read-only transactions: the begin function
// receives [BeginOptions] with ReadOnly set, which an adapter turns into the
// driver's own option (BEGIN READ ONLY, sql.TxOptions{ReadOnly: true}).
func ReadOnly() TxOption {
	return txOnly(func(c *config) { c.readOnly = true })
}

// ClassifyBy attaches a verdict, from the first of cs that recognises the
// error, to the errors a scope returns that carry none yet: the
// operation's error, and the errors of BEGIN and of the savepoint
// statements, where the verdict changes what a retry does (see
// [dbop.Classifier.Classify]). A retry around the scope then acts on the
// verdicts, and [InSavepoint] uses them to decide whether rolling back to
// the savepoint can help. Adapters pass their backend's classifier after
// the caller's. Several ClassifyBy options are asked in the order given.
// It panics if cs is empty or one of cs is nil.
func ClassifyBy(cs ...dbop.Classifier) Option {
	if len(cs) == 0 {
		panic("scopes: ClassifyBy(): a Classifier is required")
	}
	for i, c := range cs {
		if c == nil {
			panic(fmt.Sprintf("scopes: ClassifyBy: classifier %d of %d is nil", i+1, len(cs)))
		}
	}
	cs = append([]dbop.Classifier(nil), cs...)
	return both(func(cfg *config) {
		for _, c := range cs {
			if cfg.classifier == nil {
				cfg.classifier = c
			} else {
				cfg.classifier = cfg.classifier.Or(c)
			}
		}
	})
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
func CommitOutcome(fn func(err error) dbop.Verdict) TxOption {
	if fn == nil {
		panic("scopes: CommitOutcome(nil): a function is required")
	}
	return txOnly(func(c *config) { c.commitOutcome = fn })
}

// RollbackTimeout bounds the rollback a scope runs when its operation fails
// or panics (ROLLBACK for [InTx]; ROLLBACK TO SAVEPOINT and RELEASE for
// [InSavepoint]) to d; the default is [DefaultRollbackTimeout]. The rollback
// runs with [context.WithoutCancel] of the caller's context, so it still
// happens when the caller's context was cancelled or a per-attempt timeout
// fired, and the deadline keeps a dead connection from blocking the caller.
//
// InTx's COMMIT and the resolution of [ResolveCommit] run the same way,
// with the same bound: a deadline of the caller's that expires while
// COMMIT is on the wire must not make the driver close the connection and
// leave the outcome unknown. It panics if d <= 0.
func RollbackTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("scopes: RollbackTimeout(%v): the timeout must be positive", d))
	}
	return both(func(c *config) { c.rollbackTimeout = d })
}

// newTxConfig applies the options of InTx or Do, panicking on a nil one.
func newTxConfig(caller string, opts []TxOption) *config {
	c := &config{rollbackTimeout: DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("scopes: %s: option %d of %d is nil", caller, i+1, len(opts)))
		}
		o.applyTx(c)
	}
	return c.done()
}

// newSavepointConfig applies the options of InSavepoint, panicking on a nil
// one.
func newSavepointConfig(opts []SavepointOption) *config {
	c := &config{rollbackTimeout: DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("scopes: InSavepoint: option %d of %d is nil", i+1, len(opts)))
		}
		o.applySavepoint(c)
	}
	return c.done()
}

func (c *config) done() *config {
	c.rollbackCause = fmt.Errorf("scopes: rollback did not finish within %v: %w", c.rollbackTimeout, context.DeadlineExceeded)
	c.commitCause = fmt.Errorf("scopes: commit did not finish within %v: %w", c.rollbackTimeout, context.DeadlineExceeded)
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

// commitContext returns the context a COMMIT runs with: ctx's values
// without its cancellation, bounded by the rollback timeout, whose expiry
// says so. The caller must call the returned cancel function.
func (c *config) commitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(context.WithoutCancel(ctx), c.rollbackTimeout, c.commitCause)
}
