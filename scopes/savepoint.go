package scopes

import (
	"context"
	"fmt"
	"reflect"
	"strconv"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// Savepointer runs savepoint statements in a transaction the caller owns:
// SAVEPOINT name, ROLLBACK TO SAVEPOINT name and RELEASE SAVEPOINT name.
// Adapters provide one for each driver's transaction type.
type Savepointer interface {
	Savepoint(ctx context.Context, name string) error
	RollbackTo(ctx context.Context, name string) error
	Release(ctx context.Context, name string) error
}

// SavepointName returns the name [InSavepoint] gives the savepoint at
// nesting depth depth, counted from 1: "dbop_sp_1", "dbop_sp_2", … Each depth
// has its own name, so nested savepoints never shadow each other, and every
// name is a plain SQL identifier that needs no quoting. It panics if
// depth < 1.
func SavepointName(depth int) string {
	if depth < 1 {
		panic(fmt.Sprintf("scopes: SavepointName(%d): depth starts at 1", depth))
	}
	return "dbop_sp_" + strconv.Itoa(depth)
}

// savepointDepth returns the nesting depth of the savepoint ctx runs in, 0
// outside any (txmark.SavepointDepth).
func savepointDepth(ctx context.Context) int { return txmark.SavepointDepth(ctx) }

// InSavepoint returns a Decorator that runs each attempt of the decorated
// operation inside a savepoint of the transaction sp runs statements in, so
// that a failed attempt is undone without losing the transaction's earlier
// work. Per attempt it runs SAVEPOINT, then the operation with a context
// marked [github.com/dbop-go/dbop.WithinTx], and then:
//
//   - on success, RELEASE SAVEPOINT;
//   - on an error whose verdict (after the [ClassifyBy] options) is
//     [github.com/dbop-go/dbop.RetryTransaction] or
//     [github.com/dbop-go/dbop.Ambiguous], nothing: the transaction is
//     doomed (MySQL has already rolled it back and dropped its savepoints
//     after a deadlock), so the error is marked as dooming it and goes out
//     to the transaction's owner; no retry inside the transaction runs
//     again after it;
//   - on any other error, ROLLBACK TO SAVEPOINT and then RELEASE SAVEPOINT,
//     so that retries do not pile up shadowed savepoints, and the error is
//     returned, certified as undone: a retry around the savepoint runs the
//     attempt again if the verdict is RetryStatement — unless the attempt
//     ran a transaction of its own that committed (an [InTx] on the pool,
//     run with the attempt's context), which the rollback does not undo:
//     the error then says so, and a retry that is not Idempotent stops at
//     [github.com/dbop-go/dbop.ErrAlreadyCommitted];
//   - on a panic, ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT, and the panic
//     goes on with its original value.
//
// If SAVEPOINT fails, or ROLLBACK TO SAVEPOINT or RELEASE SAVEPOINT fails
// after the operation ran, the state of the transaction is unknown and the
// error dooms it. Undoing a failed attempt, the error wraps the
// operation's error, first, and the statement's; its verdict is
// RetryTransaction when the operation's was retryable, and the operation's
// own otherwise, so that an error that would repeat is not run again. A
// RELEASE after a successful attempt that fails is RetryTransaction, unless
// the classifiers call it NotRetryable. Either statement's error that the
// Savepointer reports as Ambiguous stays so: adapters report so when the
// savepoint no longer exists because the server ended the transaction
// under the operation, which went on, its later statements each committed
// on their own (MySQL and MariaDB after a deadlock, SQLite after an
// interrupted write). The statements undoing a failed attempt run with a
// context that ignores the caller's cancellation, bounded by
// [RollbackTimeout].
//
// Listed after [github.com/dbop-go/dbop.WithRetry], InSavepoint makes the
// retry a statement-level one:
//
//	n, err := step.With(dbop.WithRetry(backoff), scopes.InSavepoint(sp)).Run(ctx)
//
// Listing it before the retry panics when the pipeline is built: every
// attempt would run in one savepoint. Inside a transaction (a context
// marked [github.com/dbop-go/dbop.WithinTx]), a retry trusts the scope's
// rollback only when the scope is listed inside it in the same pipeline,
// as above, with no Around or DecoratorFunc of yours between: a savepoint
// scope listed elsewhere (a step of a Then, an Op of your own) undoes its
// own step only. Inside [InTx], run it with the
// context InTx handed you: a doomed transaction is then never committed,
// even if your function swallows the error.
//
// InSavepoint sets no server-side limits: a deadline on an attempt's
// context that fires during a statement makes pgx and go-sql-driver close
// the connection, which ends the transaction. The adapters' InSavepoint
// (pgxdb, sqldb, gormdb) turn an attempt's deadline earlier than the one
// InTx derived the transaction's limits from, or in a transaction the
// caller began, a deadline a dbop.WithTimeout listed before the scope in
// the same pipeline set, into server limits for that attempt, set back
// after it, so that the server ends the statement and the attempt is
// undone at its savepoint instead.
//
// Nested savepoints get distinct names ([SavepointName]); the depth travels
// in the context. sp identifies the transaction, so it must be comparable,
// and one sp must serve one transaction. The Decorator is safe for
// concurrent use, but a transaction, and so sp, serves one goroutine at a
// time. InSavepoint panics if sp is nil or not comparable, or an option is
// nil.
func InSavepoint(sp Savepointer, opts ...SavepointOption) dbop.Decorator {
	if sp == nil {
		panic("scopes: InSavepoint: the Savepointer is nil")
	}
	if v := reflect.ValueOf(sp); (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface || v.Kind() == reflect.Map || v.Kind() == reflect.Func) && v.IsNil() {
		panic(fmt.Sprintf("scopes: InSavepoint: the Savepointer is a nil %T", sp))
	}
	if !txmark.Comparable(sp) {
		panic(fmt.Sprintf("scopes: InSavepoint: the Savepointer %T is not comparable: use a pointer or a struct of comparable fields", sp))
	}
	c := newSavepointConfig(opts)
	d := dbop.AroundTx(sp, func(ctx context.Context, next func(context.Context) error) error {
		return runSavepoint(ctx, c, sp, next)
	})
	txmark.Certify(d) // its Undone marks certify the rollback
	return d
}

// runSavepoint runs one attempt inside a savepoint of the transaction sp
// runs statements in. It certifies what it undid (txmark.Undone) and marks
// what doomed the transaction (txmark.Doomed, recorded in the state of the
// transaction's owner when ctx carries one), so that every retry knows
// whether running the attempt again is safe.
func runSavepoint(ctx context.Context, c *config, sp Savepointer, next func(context.Context) error) error {
	outer := txmark.StateOf(ctx)
	if outer != nil && outer.Doomed() != nil {
		// An earlier step doomed the transaction and its error was not
		// returned: nothing may run in the transaction again.
		return outer.Doomed()
	}
	depth := savepointDepth(ctx) + 1
	name := SavepointName(depth)
	if err := sp.Savepoint(ctx, name); err != nil {
		// The transaction may be aborted, ended, or on a lost connection.
		return doom(outer, sp, fmt.Errorf("scopes: savepoint %s: %w", name, c.classify(err)))
	}

	// The attempt runs in a context marked as inside the transaction, with
	// a state of its own when the caller's context had none, so that a
	// scope nested in it can report a doom that the attempt swallowed.
	inner, innerCtx := outer, ctx
	if inner == nil {
		inner = new(txmark.State)
		innerCtx = txmark.WithState(ctx, inner)
	}
	innerCtx = txmark.WithSavepointDepth(innerCtx, depth)
	if outer != nil {
		// A frame for the savepoints released inside this one: a Then
		// around this scope must not count them should this one be rolled
		// back (txmark.WithState is a frame already).
		innerCtx = txmark.WithFrame(innerCtx)
	}
	// Counts the transactions the attempt runs that commit: the rollback
	// to the savepoint does not undo them (committedInside).
	frame := txmark.CommitsOf(innerCtx)

	// Releases that reach the frames around this attempt while it runs
	// come from inside it; should it be rolled back, they are undone too.
	watched := txmark.StartAttempt(ctx)

	// As in runTx: undo on panic or runtime.Goexit without recovering.
	returned := false
	defer func() {
		if !returned {
			_ = undo(ctx, c, sp, name)
			watched.RolledBack()
		}
	}()
	var err error
	if c.inside != nil {
		err = c.inside(innerCtx, next)
	} else {
		err = next(innerCtx)
	}
	if err == nil {
		err = inner.Doomed()
	}

	if err == nil {
		returned = true
		rctx, cancel := ctx, context.CancelFunc(nil)
		if ctx.Err() != nil {
			// The attempt succeeded as its deadline (a WithTimeout's
			// around this scope) or the caller's cancellation came: its
			// work is done, and a RELEASE the driver refuses to send
			// would doom the transaction and run all of it again (found
			// by a review). Release it as the undo does.
			rctx, cancel = c.cleanupContext(ctx)
		}
		err := sp.Release(rctx, name)
		if cancel != nil {
			cancel()
		}
		if err != nil {
			return doom(outer, sp, releaseError(c, name, err))
		}
		// The attempt's work is now the enclosing transaction's: a Then
		// or All around this scope, inside the same transaction, counts
		// it, so that a retry around them never runs this attempt again.
		txmark.SavepointReleased(ctx)
		return nil
	}
	// Classified while a panic still rolls back to the savepoint (the
	// deferred undo): a classifier that panics must not leave the failed
	// statement's work in the transaction.
	err = c.classify(err)
	returned = true
	switch m := txmark.Of(err); {
	case m != nil && m.Kind == txmark.Doomed:
		// A scope inside doomed a transaction; this one cannot vouch for
		// its own.
		return doom(outer, sp, err)
	case m != nil && m.Kind == txmark.Released:
		// A transaction begun and ended inside the attempt failed; this
		// one is unharmed, and the attempt can be undone as any other.
	default:
		switch dbop.VerdictOf(err) {
		case dbop.RetryTransaction, dbop.Ambiguous:
			// The transaction is dead or doomed (MySQL has already rolled
			// it back and dropped its savepoints after a deadlock, so
			// ROLLBACK TO would fail): leave it to its owner.
			return doom(outer, sp, err)
		}
	}
	if uerr := undo(ctx, c, sp, name); uerr != nil {
		return doom(outer, sp, undoError(c, err, uerr))
	}
	watched.RolledBack()
	// Certified: the attempt's effects are gone and the transaction is
	// usable, so a retry inside it may run the attempt again (if the
	// verdict allows) and a fallback may replace the error — unless the
	// attempt ran a transaction of its own that committed, which stands:
	// a retry then stops at dbop.ErrAlreadyCommitted.
	return &txmark.Mark{Kind: txmark.Undone, Key: sp, Err: committedInside(err, frame)}
}

// doom marks err as having doomed the transaction sp runs in, and records
// it in the state of the transaction's owner, if known.
func doom(owner *txmark.State, sp Savepointer, err error) error {
	if !txmark.IsDoomedFor(err, sp) {
		err = &txmark.Mark{Kind: txmark.Doomed, Key: sp, Err: err}
	}
	if owner != nil {
		owner.Doom(err)
	}
	return err
}

// undo rolls back to the savepoint name and releases it, with a context
// that survives the caller's cancellation, bounded by the rollback timeout.
func undo(ctx context.Context, c *config, sp Savepointer, name string) error {
	uctx, cancel := c.cleanupContext(ctx)
	defer cancel()
	if err := sp.RollbackTo(uctx, name); err != nil {
		return fmt.Errorf("scopes: rollback to savepoint %s: %w", name, err)
	}
	if err := sp.Release(uctx, name); err != nil {
		return fmt.Errorf("scopes: release savepoint %s: %w", name, err)
	}
	return nil
}

// undoError judges the failure uerr of ROLLBACK TO SAVEPOINT or RELEASE
// SAVEPOINT undoing an attempt that failed with err. The transaction's
// state is unknown, so the error dooms it either way; its verdict:
//
//   - Ambiguous when uerr is: the savepointer found that the transaction
//     had ended under the attempt, and what the attempt ran after that was
//     committed on its own;
//   - RetryTransaction when err's verdict is retryable: the whole
//     transaction, rolled back by its owner, may run again;
//   - Ambiguous when err's is: a transaction the attempt began and ended
//     on another connection (a Released mark) may have committed;
//   - otherwise err's own verdict, which no retry acts on: an error that
//     would repeat (a unique violation, a bug) is not run again because
//     undoing it failed, and the undo's error (a busy connection, a lost
//     one) must not lend it a verdict of its own.
func undoError(c *config, err, uerr error) error {
	joined := fmt.Errorf("%w (%w)", err, uerr)
	if c.verdictOf(uerr) == dbop.Ambiguous {
		return dbop.Classify(joined, dbop.Ambiguous)
	}
	switch v := c.verdictOf(err); v {
	case dbop.RetryStatement, dbop.RetryTransaction:
		return dbop.Classify(joined, dbop.RetryTransaction)
	case dbop.NotRetryable:
		return dbop.Classify(joined, dbop.NotRetryable)
	case dbop.Ambiguous:
		// A transaction of the attempt's own (another connection),
		// ended with its outcome unknown: it may have committed,
		// whatever became of this one.
		return dbop.Classify(joined, dbop.Ambiguous)
	}
	if v := c.verdictOf(joined); v != dbop.Unclassified && v != dbop.NotRetryable {
		return dbop.Classify(joined, dbop.NotRetryable)
	}
	return joined
}

// releaseError judges a RELEASE error after a successful attempt. The
// attempt's work is still in the transaction, so running the statement
// again could apply it twice: a statement-level verdict, or none, becomes
// RetryTransaction, and the owner rolls the transaction back before any
// retry. An error the classifiers call NotRetryable stays so (PostgreSQL's
// 25P02: the attempt went on after an error it did not return, as when fn
// does so without a savepoint), and an Ambiguous one stays Ambiguous (the
// savepointer found that the transaction had ended under the attempt).
func releaseError(c *config, name string, err error) error {
	err = fmt.Errorf("scopes: release savepoint %s: %w", name, c.classify(err))
	switch c.verdictOf(err) {
	case dbop.Unclassified, dbop.RetryStatement:
		return dbop.Classify(err, dbop.RetryTransaction)
	}
	return err
}

// verdictOf returns err's verdict as the retry would see it after the
// ClassifyBy classifiers, NotRetryable included (which classify does not
// attach).
func (c *config) verdictOf(err error) dbop.Verdict {
	if v := dbop.VerdictOf(c.classify(err)); v != dbop.Unclassified || c.classifier == nil {
		return v
	}
	return c.classifier(err)
}
