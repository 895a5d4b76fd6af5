package faulttest

import (
	"fmt"
	"maps"
	"testing"

	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/google/go-cmp/cmp"
)

// Each suite's own minimums fail an injector one of whose kinds fired once
// or never, and pass one whose kinds all fired their minimum.
func TestFaultMinimumsCatchABrokenInjector(t *testing.T) {
	for _, suite := range []struct {
		name     string
		minimums map[string]int
	}{
		{"postgres", faultgen.PGFaultMinimums},
		{"mariadb", faultgen.MyFaultMinimums},
		{"sqlite", liteFaultMinimums},
	} {
		t.Run(suite.name, func(t *testing.T) {
			if msgs := faultgen.Shortfalls(suite.minimums, suite.minimums); len(msgs) != 0 {
				t.Errorf("every kind at its minimum: got %q, want no shortfall", msgs)
			}
			for kind := range suite.minimums {
				for _, n := range []int{0, 1} {
					fired := maps.Clone(suite.minimums)
					fired[kind] = n
					want := []string{fmt.Sprintf("fault %q fired %d times, want at least %d: the injector no longer reaches its target", kind, n, suite.minimums[kind])}
					if diff := cmp.Diff(want, faultgen.Shortfalls(fired, suite.minimums)); diff != "" {
						t.Errorf("%q fired %d times (-want +got):\n%s", kind, n, diff)
					}
				}
			}
		})
	}
}
