package faultgen

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
)

// Verify's rule for a transfer told a step had committed: partial is
// right; none never is; all only after an Idempotent retry ran it again
// following an attempt in which a step committed, which onRetry records.
func TestFaultToldCommittedRule(t *testing.T) {
	tests := []struct {
		in                          int
		idempotent, committedBefore bool
		want                        bool
	}{
		{0, false, false, false},
		{0, true, true, false},
		{1, false, false, true},
		{1, true, true, true},
		{2, false, false, false},
		{2, false, true, false},
		{2, true, false, false},
		{2, true, true, true},
	}
	for _, tt := range tests {
		if got := toldCommittedHolds(tt.in, 2, tt.idempotent, tt.committedBefore); got != tt.want {
			t.Errorf("toldCommittedHolds(%d of 2 legs, idempotent %v, committed before %v) = %v, want %v",
				tt.in, tt.idempotent, tt.committedBefore, got, tt.want)
		}
	}

	st := NewStats()
	ctx := context.WithValue(t.Context(), TransferKey{}, "w0-1")
	st.OnRetry(ctx, dbop.AttemptEvent{Attempt: 1, Err: errors.New("serialization failure")})
	if st.committedBefore["w0-1"] {
		t.Errorf("an attempt whose error says nothing committed was recorded as committed")
	}
	st.OnRetry(ctx, dbop.AttemptEvent{Attempt: 2, Err: fmt.Errorf("credit: %w", dbop.ErrAlreadyCommitted)})
	if !st.committedBefore["w0-1"] {
		t.Errorf("an attempt whose error says a step had committed was not recorded")
	}
}
