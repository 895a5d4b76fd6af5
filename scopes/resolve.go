package scopes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
)

// ResolveCommit makes [InTx] find out what became of a COMMIT whose outcome
// is unknown, instead of returning an [*AmbiguousCommitError] at once. When
// the COMMIT error is judged [dbop.Ambiguous] and the transaction is a
// [CommitResolver], InTx asks it, and:
//
//   - [Committed]: the transaction was applied. InTx returns the value fn
//     produced and a nil error, as if the answer had arrived.
//   - [NotWritten]: the transaction wrote nothing, so whether its COMMIT
//     ran changes nothing. InTx returns fn's value and a nil error.
//   - [Aborted]: the transaction was not applied. InTx returns an
//     [*AbortedCommitError] with the verdict [dbop.RetryTransaction], which
//     a retry around InTx retries like a deadlock, with no need for
//     [dbop.Idempotent]: the work is known not to have happened.
//   - [Unresolved]: the resolver could not tell (the server was
//     unreachable within its bound, or is not the one that ran the
//     transaction). InTx returns the *AmbiguousCommitError it would have
//     returned without this option, with the resolver's reason in its
//     Resolve field.
//
// The resolver runs with the caller's context values but not its
// cancellation, bounded by [RollbackTimeout]: an expired deadline does not
// stop InTx from learning the outcome, and a dead server cannot hold it for
// long. On MySQL and MariaDB that bound does not reach the COMMIT (nor a
// ROLLBACK): go-sql-driver's COMMIT watches no context, so when the
// server's packets are dropped only the DSN's readTimeout and writeTimeout
// end it; set them (docs/ambiguity.md). Each resolution, whatever its result, is reported to the function
// the context carries from [OnCommitResolved], if any.
//
// Without a CommitResolver (the adapters' transactions are one when their
// own ResolveCommit option is given), the option changes nothing.
func ResolveCommit() TxOption {
	return txOnly(func(c *config) { c.resolve = true })
}

// A CommitResolver is a [Tx] that can find out, after its COMMIT failed in
// a way that leaves the outcome unknown, whether the COMMIT took effect:
// the adapters' transactions, with their ResolveCommit option, ask the
// server on another connection (PostgreSQL's pg_xact_status, or a commit
// marker row on MySQL and MariaDB).
//
// InTx calls ResolveCommit at most once per transaction, after Commit
// returned commitErr and only when commitErr was judged ambiguous. ctx
// carries the caller's values without its cancellation, bounded by
// [RollbackTimeout]. It returns [Unresolved] with the reason when it
// cannot tell; the error is ignored for the other results.
type CommitResolver interface {
	ResolveCommit(ctx context.Context, commitErr error) (Resolution, error)
}

// Resolution is what a [CommitResolver] found out about a COMMIT whose
// answer was lost.
type Resolution uint8

const (
	// Unresolved: the outcome is still unknown.
	Unresolved Resolution = iota
	// Committed: the transaction was applied.
	Committed
	// NotWritten: the transaction wrote nothing, so it makes no
	// difference whether its COMMIT ran.
	NotWritten
	// Aborted: the transaction was not applied, and never will be.
	Aborted
)

var resolutionNames = [...]string{Unresolved: "unresolved", Committed: "committed", NotWritten: "not-written", Aborted: "aborted"}

// String returns "unresolved", "committed", "not-written" or "aborted".
func (r Resolution) String() string {
	if int(r) < len(resolutionNames) {
		return resolutionNames[r]
	}
	return fmt.Sprintf("Resolution(%d)", uint8(r))
}

// ResolvedCommit describes one resolution of a COMMIT whose answer was
// lost, for the function given to [OnCommitResolved].
type ResolvedCommit struct {
	Resolution Resolution
	CommitErr  error         // the error the COMMIT returned
	Err        error         // why the outcome is still unknown; nil unless Unresolved
	Elapsed    time.Duration // how long the resolution took
}

// resolvedKey is the context key of OnCommitResolved.
type resolvedKey struct{}

// OnCommitResolved returns a context under which every [InTx] with
// [ResolveCommit] that resolves a COMMIT reports the resolution to fn,
// before it returns. fn runs on the goroutine running the transaction; it
// receives the context the transaction ran with.
//
// It is the one place where a resolved commit is visible even when it
// ends in success: the operation's error is then nil. Set it on the
// context passed to Run, or return it from the AttemptStart method of a
// [dbop.Observer], whose attempts run with the context it returns — the
// way net/http/httptrace attaches its hooks. A resolution that ends in
// [Aborted] or [Unresolved] is also in the attempt's error
// ([*AbortedCommitError], [*AmbiguousCommitError] with Resolve set), which
// every Observer sees in its AttemptEvent.
//
// OnCommitResolved on a context that already carries such a function adds
// fn after it: both run, the outer one first, so an observer (the
// OpenTelemetry adapter's span event) and the caller each get theirs. It
// panics if fn is nil.
func OnCommitResolved(ctx context.Context, fn func(ctx context.Context, r ResolvedCommit)) context.Context {
	if fn == nil {
		panic("scopes: OnCommitResolved: the function is nil")
	}
	if outer, ok := ctx.Value(resolvedKey{}).(func(context.Context, ResolvedCommit)); ok {
		inner := fn
		fn = func(ctx context.Context, r ResolvedCommit) {
			outer(ctx, r)
			inner(ctx, r)
		}
	}
	return context.WithValue(ctx, resolvedKey{}, fn)
}

// ErrCommitAborted is matched, through errors.Is, by every
// [*AbortedCommitError].
var ErrCommitAborted = errors.New("scopes: commit answer lost; the transaction was not applied")

// AbortedCommitError reports that the answer to COMMIT was lost and
// [ResolveCommit] found that the transaction was not applied: it was
// rolled back, or the COMMIT never reached the server. [InTx] returns it
// with the verdict [github.com/dbop-go/dbop.RetryTransaction], so a retry
// around InTx runs the transaction again, and only once more: the work is
// known not to have happened.
//
// It matches [ErrCommitAborted] with errors.Is and unwraps to the COMMIT
// error, so errors.As still reaches the driver's error. Its ErrorType,
// "dbop.commit_aborted", names it in telemetry (the error.type attribute
// of github.com/dbop-go/dbop/adapters/otel).
type AbortedCommitError struct {
	Err error // the error COMMIT returned
}

func (e *AbortedCommitError) Error() string {
	return "scopes: commit answer lost, and the transaction was not applied: " + e.Err.Error()
}

// Unwrap returns the COMMIT error.
func (e *AbortedCommitError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrCommitAborted].
func (e *AbortedCommitError) Is(target error) bool { return target == ErrCommitAborted }

// ErrorType returns "dbop.commit_aborted", the error's class for telemetry.
func (e *AbortedCommitError) ErrorType() string { return "dbop.commit_aborted" }

// resolveCommit asks r what became of the COMMIT that returned commitErr, which
// InTx judged ambiguous (the error it would return is ambiguous); it
// reports the resolution and returns the error InTx returns: nil when the
// work was applied or wrote nothing.
func (c *config) resolveCommit(ctx context.Context, r CommitResolver, commitErr, ambiguous error) error {
	start := time.Now()
	rctx, cancel := c.cleanupContext(ctx)
	res, rerr := r.ResolveCommit(rctx, commitErr)
	cancel()
	if res != Unresolved {
		rerr = nil
	} else if rerr == nil {
		rerr = errors.New("scopes: the resolver gave no reason")
	}
	if fn, ok := ctx.Value(resolvedKey{}).(func(context.Context, ResolvedCommit)); ok {
		fn(ctx, ResolvedCommit{Resolution: res, CommitErr: commitErr, Err: rerr, Elapsed: time.Since(start)})
	}
	switch res {
	case Committed, NotWritten:
		return nil
	case Aborted:
		return dbop.Classify(&AbortedCommitError{Err: commitErr}, dbop.RetryTransaction)
	}
	if ace, ok := errors.AsType[*AmbiguousCommitError](ambiguous); ok && ace.Resolve == nil {
		ace.Resolve = rerr
	}
	return ambiguous
}
