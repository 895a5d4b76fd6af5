package faulttest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkFaults fails t for every kind of fault that fired fewer times than
// minimums requires, and for every kind that fired but has no minimum: a
// suite whose injector stopped reaching its targets would otherwise still
// pass, having tested nothing. minimums is the suite's own table
// (pgFaultMinimums, myFaultMinimums), stated for a run of defaultDuration
// or longer. A shorter run (-short, or a shorter DBOP_FAULT_DURATION) logs
// that the minimums were not checked: in 2 s, about 30 rounds, some kinds
// are dealt only 4 or 5 times and MariaDB's row lock is held about twice,
// too few for a minimum that catches a broken injector without flaking.
func checkFaults(t *testing.T, cfg runConfig, st *stats, minimums map[string]int) {
	t.Helper()
	if cfg.duration < defaultDuration {
		t.Logf("fault minimums not checked: they are stated for runs of %v or more, this one lasted %v", defaultDuration, cfg.duration)
		return
	}
	st.mu.Lock()
	fired := maps.Clone(st.faults)
	st.mu.Unlock()
	for _, msg := range faultShortfalls(fired, minimums) {
		t.Error(msg)
	}
}

// faultShortfalls returns, in kind order, a message for every kind in
// minimums that fired fewer times than its minimum, and for every kind in
// fired that has no minimum.
func faultShortfalls(fired, minimums map[string]int) []string {
	var msgs []string
	for _, kind := range slices.Sorted(maps.Keys(fired)) {
		if _, ok := minimums[kind]; !ok {
			msgs = append(msgs, fmt.Sprintf("fault %q fired %d times and has no minimum: state one in the suite's fault minimums", kind, fired[kind]))
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(minimums)) {
		if n, least := fired[kind], minimums[kind]; n < least {
			msgs = append(msgs, fmt.Sprintf("fault %q fired %d times, want at least %d: the injector no longer reaches its target", kind, n, least))
		}
	}
	return msgs
}

// The check fires: a fake count map below, at and above the minimums.
func TestFaultShortfalls(t *testing.T) {
	minimums := map[string]int{"kill": 4, "drop": 3}
	tests := []struct {
		name  string
		fired map[string]int
		want  []string
	}{
		{name: "every kind above its minimum", fired: map[string]int{"kill": 20, "drop": 9}},
		{name: "every kind at its minimum", fired: map[string]int{"kill": 4, "drop": 3}},
		{
			name:  "a kind that never fired",
			fired: map[string]int{"kill": 20},
			want:  []string{`fault "drop" fired 0 times, want at least 3: the injector no longer reaches its target`},
		},
		{
			name:  "a kind counted at zero",
			fired: map[string]int{"kill": 20, "drop": 0},
			want:  []string{`fault "drop" fired 0 times, want at least 3: the injector no longer reaches its target`},
		},
		{
			name:  "a kind that fired once",
			fired: map[string]int{"kill": 1, "drop": 9},
			want:  []string{`fault "kill" fired 1 times, want at least 4: the injector no longer reaches its target`},
		},
		{
			name:  "a kind without a minimum",
			fired: map[string]int{"kill": 20, "drop": 9, "hold": 5},
			want:  []string{`fault "hold" fired 5 times and has no minimum: state one in the suite's fault minimums`},
		},
		{
			name:  "nothing fired",
			fired: map[string]int{},
			want: []string{
				`fault "drop" fired 0 times, want at least 3: the injector no longer reaches its target`,
				`fault "kill" fired 0 times, want at least 4: the injector no longer reaches its target`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, faultShortfalls(tt.fired, minimums)); diff != "" {
				t.Errorf("faultShortfalls(%v) (-want +got):\n%s", tt.fired, diff)
			}
		})
	}
}

// Each suite's own minimums fail an injector one of whose kinds fired once
// or never, and pass one whose kinds all fired their minimum.
func TestFaultMinimumsCatchABrokenInjector(t *testing.T) {
	for _, suite := range []struct {
		name     string
		minimums map[string]int
	}{
		{"postgres", pgFaultMinimums},
		{"mariadb", myFaultMinimums},
		{"sqlite", liteFaultMinimums},
	} {
		t.Run(suite.name, func(t *testing.T) {
			if msgs := faultShortfalls(suite.minimums, suite.minimums); len(msgs) != 0 {
				t.Errorf("every kind at its minimum: got %q, want no shortfall", msgs)
			}
			for kind := range suite.minimums {
				for _, n := range []int{0, 1} {
					fired := maps.Clone(suite.minimums)
					fired[kind] = n
					want := []string{fmt.Sprintf("fault %q fired %d times, want at least %d: the injector no longer reaches its target", kind, n, suite.minimums[kind])}
					if diff := cmp.Diff(want, faultShortfalls(fired, suite.minimums)); diff != "" {
						t.Errorf("%q fired %d times (-want +got):\n%s", kind, n, diff)
					}
				}
			}
		})
	}
}

// The minimums rest on the deck: every deckSize deals hold each slot
// once, so a kind is dealt its exact share of every deck.
func TestFaultDeckDealsEachSlotOncePerDeck(t *testing.T) {
	d := &deck{rng: rand.New(rand.NewPCG(1, 2))}
	for n := range 3 {
		var got []int
		for range deckSize {
			got = append(got, d.deal())
		}
		slices.Sort(got)
		want := make([]int, deckSize)
		for i := range want {
			want[i] = i * 5
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("deck %d, sorted (-want +got):\n%s", n+1, diff)
		}
	}
}
