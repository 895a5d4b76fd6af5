package txmark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

type sliceErr []error

func (e sliceErr) Error() string   { return fmt.Sprint([]error(e)) }
func (e sliceErr) Unwrap() []error { return e }

// Owns knows a scope's error by the mark the scope made for it, wherever
// the attempt's error holds it; every error joined into the attempt's must
// lead to one.
func TestOwnsTheScopesMarks(t *testing.T) {
	ctx, w := WithOwnerWatch(context.Background())
	first := &Mark{Kind: Released, Err: errors.New("deadlock")}
	second := &Mark{Kind: Released, Err: context.DeadlineExceeded}
	OwnerEnded(ctx, first)
	OwnerEnded(ctx, second)
	other := &Mark{Kind: Released, Err: errors.New("deadlock")}
	noFollow := func(error) (error, bool) { return nil, false }
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"the mark itself", first, true},
		{"wrapped", fmt.Errorf("transfer: %w", second), true},
		{"both joined", errors.Join(first, fmt.Errorf("x: %w", second)), true},
		{"joined with the commit of an Op of your own", errors.Join(first, fmt.Errorf("commit: %w", context.DeadlineExceeded)), false},
		{"another scope's mark, equal but not the same", other, false},
		{"what the mark holds, without the mark", context.DeadlineExceeded, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.Owns(tt.err, noFollow); got != tt.want {
				t.Errorf("Owns(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}

// An error a scope returns as it came, not marked, may be a value other
// errors hold too (context.DeadlineExceeded, which a function returning
// ctx.Err() hands over and database/sql's Tx.Commit returns for a cut
// COMMIT; a sentinel such as io.ErrUnexpectedEOF), or one == cannot compare
// (a slice of field errors): it owns nothing, not even itself, and
// comparing it does not panic.
func TestOwnsNoErrorAScopeReturnedUnmarked(t *testing.T) {
	fields := sliceErr{errors.New("name: required")}
	for _, scopeErr := range []error{context.DeadlineExceeded, context.Canceled, io.ErrUnexpectedEOF, fields} {
		ctx, w := WithOwnerWatch(context.Background())
		OwnerEnded(ctx, scopeErr)
		for _, attemptErr := range []error{scopeErr, fmt.Errorf("commit: %w", scopeErr), fields, sliceErr{scopeErr}} {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("Owns(%v) after the scope returned %v panicked: %v", attemptErr, scopeErr, p)
					}
				}()
				if w.Owns(attemptErr, func(error) (error, bool) { return nil, false }) {
					t.Errorf("Owns(%v) after the scope returned %v unmarked = true, want false", attemptErr, scopeErr)
				}
			}()
		}
	}
}
