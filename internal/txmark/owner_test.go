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
			if got := w.Owns(tt.err, noFollow); got != tt.want {
				t.Errorf("Owns(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}
