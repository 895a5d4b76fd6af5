package txmark

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

type sliceErr []error

func (e sliceErr) Error() string { return fmt.Sprint([]error(e)) }

type holderErr struct{ inner error }

func (e holderErr) Error() string { return "holder: " + e.inner.Error() }

// Owns compares the attempt's error with the scopes' without panicking on
// errors whose type cannot be compared with ==, or whose comparable type
// holds such a value.
func TestOwnsUncomparableErrors(t *testing.T) {
	scopeErr := sliceErr{errors.New("cut")}
	held := holderErr{sliceErr{errors.New("cut")}}
	ctx, w := WithOwnerWatch(context.Background())
	OwnerEnded(ctx, scopeErr)
	OwnerEnded(ctx, held)
	noFollow := func(error) (error, bool) { return nil, false }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"the scope's slice", fmt.Errorf("attempt: %w", scopeErr), true},
		{"another slice", sliceErr{errors.New("cut")}, false},
		{"an empty slice", sliceErr{}, false},
		{"a struct holding a slice", holderErr{sliceErr{errors.New("cut")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.Owns(tt.err, noFollow, func(error) bool { return false }); got != tt.want {
				t.Errorf("Owns(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}

// ourWrapper stands for a wrapper of dbop's (a verdict, a deadline) in
// TestOwnsASharedValueOnlyAsTheAttemptsError.
type ourWrapper struct{ err error }

func (e *ourWrapper) Error() string { return e.err.Error() }
func (e *ourWrapper) Unwrap() error { return e.err }

// A scope's error that any other error may hold too (context.DeadlineExceeded
// as a function returning ctx.Err() hands it over) is the attempt's only
// where it is the attempt's error, or under wrappers of dbop's: under a
// driver's or the user's wrapper it is the error of other work the same
// deadline ended (an Op of your own cut in its COMMIT).
func TestOwnsASharedValueOnlyAsTheAttemptsError(t *testing.T) {
	ctx, w := WithOwnerWatch(context.Background())
	OwnerEnded(ctx, context.DeadlineExceeded)
	noFollow := func(error) (error, bool) { return nil, false }
	ours := func(err error) bool { _, ok := err.(*ourWrapper); return ok }
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"itself", context.DeadlineExceeded, true},
		{"under a wrapper of dbop's", &ourWrapper{context.DeadlineExceeded}, true},
		{"under a mark", &Mark{Kind: Released, Err: context.DeadlineExceeded}, true},
		{"under the driver's wrapper", fmt.Errorf("commit: %w", context.DeadlineExceeded), false},
		{"under ours, then the driver's", &ourWrapper{fmt.Errorf("commit: %w", context.DeadlineExceeded)}, false},
		{"joined with its own", errors.Join(context.DeadlineExceeded, context.DeadlineExceeded), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.Owns(tt.err, noFollow, ours); got != tt.want {
				t.Errorf("Owns(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}
