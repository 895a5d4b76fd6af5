package scopes

import "errors"

// ErrAmbiguousCommit is matched, through errors.Is, by every
// [*AmbiguousCommitError]: a COMMIT whose outcome is unknown.
var ErrAmbiguousCommit = errors.New("scopes: commit outcome unknown")

// AmbiguousCommitError reports that COMMIT failed in a way that leaves the
// outcome unknown: the transaction may or may not have been applied. [InTx]
// returns one, carrying the verdict [github.com/dbop-go/dbop.Ambiguous], when
// its [CommitOutcome] judges the COMMIT error ambiguous (by default, every
// COMMIT error). A retry retries it only when marked
// [github.com/dbop-go/dbop.Idempotent]; otherwise the caller alone can find
// out what happened.
//
// With [ResolveCommit], InTx returns one only when the resolution failed
// too; Resolve then says why (the server was unreachable, say).
//
// It matches [ErrAmbiguousCommit] with errors.Is and unwraps to the COMMIT
// error, so errors.As still reaches the driver's error.
type AmbiguousCommitError struct {
	Err     error // the error COMMIT returned
	Resolve error // why ResolveCommit could not tell the outcome; nil when it was not tried
}

func (e *AmbiguousCommitError) Error() string {
	if e.Resolve != nil {
		return "scopes: commit outcome unknown: " + e.Err.Error() + " (resolution failed: " + e.Resolve.Error() + ")"
	}
	return "scopes: commit outcome unknown: " + e.Err.Error()
}

// Unwrap returns the COMMIT error.
func (e *AmbiguousCommitError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrAmbiguousCommit].
func (e *AmbiguousCommitError) Is(target error) bool { return target == ErrAmbiguousCommit }
