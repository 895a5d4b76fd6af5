package sqlstate

import (
	"errors"
	"fmt"
	"testing"
)

type coded struct{ code string }

func (e *coded) Error() string    { return "server error " + e.code }
func (e *coded) SQLState() string { return e.code }

func TestOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("plain"), ""},
		{&coded{"40001"}, "40001"},
		{fmt.Errorf("wrapped: %w", &coded{"25P02"}), "25P02"},
		{errors.Join(errors.New("first"), &coded{"42P01"}), "42P01"},
	} {
		if got := Of(c.err); got != c.want {
			t.Errorf("Of(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
