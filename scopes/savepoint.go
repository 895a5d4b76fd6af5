package scopes

import (
	"context"
	"fmt"
	"strconv"

	"github.com/dbop-go/dbop"
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

// spDepthKey is the context key of the savepoint nesting depth.
type spDepthKey struct{}

func savepointDepth(ctx context.Context) int {
	d, _ := ctx.Value(spDepthKey{}).(int)
	return d
}

// InSavepoint returns a Decorator that runs each attempt of the decorated
// operation inside a savepoint of a transaction the caller owns, so that a
// failed attempt is undone without losing the transaction's earlier work.
// Per attempt it runs SAVEPOINT, then the operation with a context marked
// [github.com/dbop-go/dbop.WithinTx], and then:
//
//   - on success, RELEASE SAVEPOINT;
//   - on an error whose verdict (after the [ClassifyBy] options) is
//     [github.com/dbop-go/dbop.RetryTransaction] or
//     [github.com/dbop-go/dbop.Ambiguous], nothing: the transaction is
//     doomed (MySQL has already rolled it back and dropped its savepoints
//     after a deadlock), so the error is returned untouched for the retry
//     around the transaction;
//   - on any other error, ROLLBACK TO SAVEPOINT and then RELEASE SAVEPOINT,
//     so that retries do not pile up shadowed savepoints, and the error is
//     returned;
//   - on a panic, ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT, and the panic
//     goes on with its original value.
//
// If ROLLBACK TO SAVEPOINT or RELEASE SAVEPOINT fails after the operation
// ran, the state of the transaction is unknown: the error returned wraps the
// operation's error (first) and the statement's, with the verdict
// RetryTransaction. A SAVEPOINT error is classified and returned, without
// running the operation. The statements undoing a failed attempt run with a
// context that ignores the caller's cancellation, bounded by
// [RollbackTimeout].
//
// Listed after [github.com/dbop-go/dbop.WithRetry], InSavepoint makes the
// retry a statement-level one:
//
//	n, err := step.With(dbop.WithRetry(backoff), scopes.InSavepoint(sp)).Run(ctx)
//
// Run it with the context [InTx] handed you (or one marked WithinTx): the
// retry then retries statement-level errors only and lets
// transaction-level ones out.
//
// Nested savepoints get distinct names ([SavepointName]); the depth travels
// in the context. The Decorator is safe for concurrent use, but a
// transaction, and so sp, serves one goroutine at a time. InSavepoint panics
// if sp is nil, an option is nil, or [ReadOnly] or [CommitOutcome] is given.
func InSavepoint(sp Savepointer, opts ...Option) dbop.Decorator {
	if sp == nil {
		panic("scopes: InSavepoint: the Savepointer is nil")
	}
	c := newConfig("InSavepoint", opts)
	if c.readOnly {
		panic("scopes: InSavepoint: ReadOnly applies to InTx only")
	}
	if c.commitOutcome != nil {
		panic("scopes: InSavepoint: CommitOutcome applies to InTx only")
	}
	return dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
		return runSavepoint(ctx, c, sp, next)
	})
}

// runSavepoint runs one attempt inside a savepoint.
func runSavepoint(ctx context.Context, c *config, sp Savepointer, next func(context.Context) error) error {
	depth := savepointDepth(ctx) + 1
	name := SavepointName(depth)
	if err := sp.Savepoint(ctx, name); err != nil {
		return fmt.Errorf("scopes: savepoint %s: %w", name, c.classify(err))
	}

	// As in runTx: undo on panic or runtime.Goexit without recovering.
	returned := false
	defer func() {
		if !returned {
			_ = undo(ctx, c, sp, name)
		}
	}()
	err := next(context.WithValue(dbop.WithinTx(ctx), spDepthKey{}, depth))
	returned = true

	if err == nil {
		if err := sp.Release(ctx, name); err != nil {
			return releaseError(c, name, err)
		}
		return nil
	}
	err = c.classify(err)
	switch dbop.VerdictOf(err) {
	case dbop.RetryTransaction, dbop.Ambiguous:
		return err
	}
	if uerr := undo(ctx, c, sp, name); uerr != nil {
		return dbop.Classify(fmt.Errorf("%w (%w)", err, uerr), dbop.RetryTransaction)
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

// releaseError judges a RELEASE error after a successful attempt. The
// attempt's work is still in the transaction, so running the statement
// again could apply it twice: a statement-level verdict, or none, becomes
// RetryTransaction.
func releaseError(c *config, name string, err error) error {
	err = fmt.Errorf("scopes: release savepoint %s: %w", name, c.classify(err))
	switch dbop.VerdictOf(err) {
	case dbop.Unclassified, dbop.RetryStatement:
		return dbop.Classify(err, dbop.RetryTransaction)
	}
	return err
}
