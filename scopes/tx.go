package scopes

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// Tx is what [InTx] needs of a transaction: a way to end it. pgx.Tx has
// these methods as they are; adapters wrap *sql.Tx and *gorm.DB.
//
// Commit must end the transaction whatever its outcome: InTx does not call
// Rollback after a failed Commit (pgx, database/sql and GORM all end the
// transaction, or close the connection, when COMMIT fails).
type Tx interface {
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// BeginFunc starts a transaction with the given options. An adapter returns
// one bound to its pool or connection; InTx calls it once per attempt.
type BeginFunc[X Tx] func(ctx context.Context, opts BeginOptions) (X, error)

// BeginOptions are the options [InTx] passes to its [BeginFunc]. Adapters map
// them onto their driver's options and add what only their driver has, such
// as an isolation level, themselves.
type BeginOptions struct {
	// ReadOnly asks for a read-only transaction (see [ReadOnly]).
	ReadOnly bool
}

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs: one run, one transaction. It begins a transaction with
// begin, calls fn with it and with a context marked
// [github.com/dbop-go/dbop.WithinTx], and then:
//
//   - if fn succeeds, it commits and returns fn's value; a COMMIT error is
//     judged by [CommitOutcome], by default as an [*AmbiguousCommitError],
//     and with [ResolveCommit] an ambiguous one is resolved by asking the
//     transaction (a [CommitResolver]) what became of it;
//   - if fn fails, it rolls back and returns fn's error, classified by the
//     [ClassifyBy] options; a failed rollback is joined to it, fn's error
//     first, without changing its verdict, unless the rollback's error has
//     the verdict [github.com/dbop-go/dbop.Ambiguous]: a Tx reports so a
//     transaction fn committed or rolled back itself, whose outcome InTx
//     cannot know, and the error is then Ambiguous (an
//     [*AmbiguousCommitError] the rollback returned is reached by
//     errors.Is and errors.As);
//   - if fn panics (or calls runtime.Goexit), it rolls back and lets the
//     panic continue with its original value and stack;
//   - if the caller's context ended while fn ran, it rolls back instead of
//     sending a COMMIT that could only fail ambiguously, and returns the
//     context's cause ([context.Cause]) when it matches the context's
//     error (a [github.com/dbop-go/dbop.WithTimeout]'s
//     [*github.com/dbop-go/dbop.TimeoutError]), and otherwise the context's
//     error, naming the cause in its text only: in an errgroup the cause is
//     a sibling's error, which must not be taken for this transaction's
//     (its verdict, its SQLSTATE);
//   - if fn ran a transaction of its own that committed (a scope on the
//     pool, run with the context fn was handed) and this one then failed,
//     that work stands: the error says so, and as for a
//     [github.com/dbop-go/dbop.Then] whose step committed, a retry around
//     InTx does not run fn again unless it is Idempotent
//     ([github.com/dbop-go/dbop.ErrAlreadyCommitted]), and a fallback does
//     not replace the error.
//
// A BEGIN error is classified and returned; nothing is rolled back. The
// COMMIT and the rollback run with a context that ignores the caller's
// cancellation, bounded by [RollbackTimeout]: a deadline that expires once
// fn has returned cannot cut a COMMIT short and leave its outcome unknown. The errors InTx returns wrap the driver's
// errors, so errors.As reaches them. On any error the value is the zero T.
//
// Retrying the returned operation ([github.com/dbop-go/dbop.WithRetry])
// retries the whole transaction, fn's reads included, which is what
// transaction-level failures (serialization failures, deadlocks, lost
// connections) require.
//
// The operation is safe for concurrent use if begin and fn are: each run has
// its own transaction. InTx panics if begin or fn is nil, or an option is
// nil.
func InTx[X Tx, T any](begin BeginFunc[X], fn func(ctx context.Context, tx X) (T, error), opts ...TxOption) dbop.Op[T] {
	return inTx("InTx", begin, fn, opts)
}

// inTx is InTx for the function named caller.
func inTx[X Tx, T any](caller string, begin BeginFunc[X], fn func(ctx context.Context, tx X) (T, error), opts []TxOption) dbop.Op[T] {
	if begin == nil {
		panic("scopes: " + caller + ": the BeginFunc is nil")
	}
	if fn == nil {
		panic("scopes: " + caller + ": the function to run in the transaction is nil")
	}
	c := newTxConfig(caller, opts)
	txOpts := BeginOptions{ReadOnly: c.readOnly}
	return func(ctx context.Context) (T, error) {
		return runTx(ctx, c, txOpts, begin, fn)
	}
}

// Do is [InTx] for work with no result: fn returns only an error, and the
// operation's value is struct{}. It panics as InTx does.
func Do[X Tx](begin BeginFunc[X], fn func(ctx context.Context, tx X) error, opts ...TxOption) dbop.Op[struct{}] {
	if fn == nil {
		panic("scopes: Do: the function to run in the transaction is nil")
	}
	return inTx("Do", begin, func(ctx context.Context, tx X) (struct{}, error) { return struct{}{}, fn(ctx, tx) }, opts)
}

// runTx runs one transaction. InTx is the transaction's owner: every error
// it returns leaves the transaction ended, so an error a retry may act on
// is marked released (txmark.Released), and any retry around InTx may run
// it again, whatever marks scopes inside the transaction left on it.
func runTx[X Tx, T any](ctx context.Context, c *config, opts BeginOptions, begin BeginFunc[X], fn func(context.Context, X) (T, error)) (T, error) {
	var zero T
	tx, err := begin(ctx, opts)
	if err != nil {
		return zero, ended(ctx, released(fmt.Errorf("scopes: begin: %w", c.classify(err))))
	}

	// A deferred rollback without recover: a panic (or runtime.Goexit)
	// rolls the transaction back and goes on unchanged, original value and
	// stack included.
	returned := false
	defer func() {
		if !returned {
			_ = rollback(ctx, c, tx)
		}
	}()
	state := new(txmark.State)
	state.SetOwned()
	if d, ok := ctx.Deadline(); ok {
		// begin derived the transaction's server limits from it: a
		// savepoint step inside derives its own only from an earlier one.
		state.SetLimitsDeadline(d)
	}
	fctx := txmark.WithState(ctx, state)
	frame := txmark.CommitsOf(fctx) // counts the transactions fn runs that commit
	v, err := fn(fctx, tx)
	returned = true

	if err == nil {
		// A scope inside the transaction saw it doomed (MySQL rolled it
		// back after a deadlock, PostgreSQL aborted it) and fn went on as
		// if nothing had happened: committing now would commit whatever ran
		// after the doom on its own, or fail. Roll back instead.
		err = state.Doomed()
	}
	if err == nil && ctx.Err() != nil {
		// fn finished, but the caller has given up: a COMMIT sent now would
		// fail, and fail ambiguously. Rolling back gives a known outcome.
		err = txmark.ContextErr(ctx)
	}
	if err != nil {
		// Roll back before classifying: a classifier that panics must not
		// leave the transaction open on its connection.
		rbErr := rollback(ctx, c, tx)
		err = c.classify(err)
		if rbErr != nil {
			err = fmt.Errorf("%w (rollback: %w)", err, rbErr)
			if dbop.VerdictOf(rbErr) == dbop.Ambiguous {
				// The rollback found the transaction already ended, by fn
				// (pgxdb's txn.Rollback says so): it may have committed,
				// so fn's error, a deadline's say, must not be retried
				// or replaced by a fallback.
				err = dbop.Classify(err, dbop.Ambiguous)
			}
		}
		return zero, ended(ctx, released(committedInside(err, frame)))
	}

	// COMMIT runs without the caller's cancellation, bounded: a deadline
	// that expired while COMMIT was on the wire would make pgx and
	// go-sql-driver close the connection, and the outcome unknown.
	cctx, cancel := c.commitContext(ctx)
	err = tx.Commit(cctx)
	cancel()
	if err != nil {
		cerr := c.commitError(err)
		if c.resolve && dbop.VerdictOf(cerr) == dbop.Ambiguous {
			if r, ok := any(tx).(CommitResolver); ok {
				cerr = c.resolveCommit(ctx, r, err, cerr)
			}
		}
		if cerr != nil {
			return zero, ended(ctx, released(committedInside(cerr, frame)))
		}
	}
	// A Then or All around it counts the commit: should a later step
	// fail, a retry around the whole must not run this one again. A
	// read-only transaction wrote nothing to apply twice.
	if !opts.ReadOnly {
		txmark.Committed(ctx)
	}
	return v, nil
}

// ended returns err, the error of a transaction this scope ended, having
// told a HotSpot that cut the attempt short (txmark.OwnerWatch): the scope
// judged its COMMIT, so the cut fell where a retry may run it again.
func ended(ctx context.Context, err error) error {
	txmark.OwnerEnded(ctx, err)
	return err
}

// committedInside returns err, the error of a transaction that did not
// commit (or whose COMMIT's outcome is unknown), marked as coming after a
// commit (txmark.After) when fn ran a transaction of its own that
// committed, with the context it was handed (a scope of its own on the
// pool, alone or in a Then): frame, the count of fn's context, counted
// it. That work stands though this transaction rolled back, so a retry
// around InTx must not run fn again (dbop.ErrAlreadyCommitted) unless it
// is Idempotent, and a fallback must not replace the error, as for a
// Then whose step committed. err is returned as it is when it holds such
// a mark already.
func committedInside(err error, frame *txmark.Commits) error {
	if frame == nil || frame.Count() == 0 || txmark.CommitIn(err) != nil {
		return err
	}
	return &txmark.After{Err: err}
}

// released marks err as the error of a transaction its owner has ended, so
// that a retry around the owner may act on it, whatever the marks of the
// scopes inside. An error no retry acts on is returned as it is.
func released(err error) error {
	switch dbop.VerdictOf(err) {
	case dbop.RetryStatement, dbop.RetryTransaction, dbop.Ambiguous:
		return &txmark.Mark{Kind: txmark.Released, Err: err}
	}
	return err
}

// rollback rolls tx back with a context that survives the caller's
// cancellation, bounded by the rollback timeout.
func rollback[X Tx](ctx context.Context, c *config, tx X) error {
	rctx, cancel := c.cleanupContext(ctx)
	defer cancel()
	return tx.Rollback(rctx)
}

// commitError judges a COMMIT error.
func (c *config) commitError(err error) error {
	v := dbop.Ambiguous
	if c.commitOutcome != nil {
		v = c.commitOutcome(err)
	}
	if v == dbop.Unclassified {
		// The outcome rule defers to the classifier, which may still find
		// the outcome unknown (CockroachDB's 40003, for one).
		err = c.classify(err)
		if v = dbop.VerdictOf(err); v != dbop.Ambiguous {
			return err
		}
	}
	if v != dbop.Ambiguous {
		return dbop.Classifier(func(error) dbop.Verdict { return v }).Classify(err)
	}
	var ace *AmbiguousCommitError
	if !errors.As(err, &ace) {
		err = &AmbiguousCommitError{Err: err}
	}
	return dbop.Classify(err, dbop.Ambiguous)
}
