package demo

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPhaseLog(t *testing.T) {
	var buf bytes.Buffer
	var l PhaseLog // the zero value is stopped
	l.Printf("before %d\n", 1)
	l.Start(&buf)
	l.Printf("during %d\n", 2)
	l.Printf("during %d\n", 3)
	l.Stop()
	l.Printf("after %d\n", 4)
	if diff := cmp.Diff("during 2\nduring 3\n", buf.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// otherKey is a context key of some other package.
type otherKey struct{}

func TestID(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"none", ctx, ""},
		{"set", WithID(ctx, "forced-1"), "forced-1"},
		{"innermost wins", WithID(WithID(ctx, "outer"), "inner"), "inner"},
		{"other values pass through", context.WithValue(WithID(ctx, "w1-t2"), otherKey{}, "x"), "w1-t2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ID(tt.ctx); got != tt.want {
				t.Errorf("ID = %q, want %q", got, tt.want)
			}
		})
	}
}
