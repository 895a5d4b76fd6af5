package faultgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

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
			if diff := cmp.Diff(tt.want, Shortfalls(tt.fired, minimums)); diff != "" {
				t.Errorf("faultShortfalls(%v) (-want +got):\n%s", tt.fired, diff)
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

// The count check fires below a minimum, and for a kind never counted; a
// kind counted without a minimum is only logged.
func TestFaultCountShortfalls(t *testing.T) {
	minimums := map[string]int{SharedCommit: SharedCommitMinimum}
	for _, tt := range []struct {
		name    string
		counted map[string]int
		want    []string
	}{
		{name: "above", counted: map[string]int{SharedCommit: 500}},
		{name: "at", counted: map[string]int{SharedCommit: SharedCommitMinimum}},
		{name: "a kind without a minimum", counted: map[string]int{SharedCommit: 500, "other": 0}},
		{
			name:    "never counted",
			counted: map[string]int{},
			want:    []string{fmt.Sprintf("%s: counted 0, want at least %d: the drawn pipelines no longer exercise it", SharedCommit, SharedCommitMinimum)},
		},
		{
			name:    "one short",
			counted: map[string]int{SharedCommit: SharedCommitMinimum - 1},
			want:    []string{fmt.Sprintf("%s: counted %d, want at least %d: the drawn pipelines no longer exercise it", SharedCommit, SharedCommitMinimum-1, SharedCommitMinimum)},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, CountShortfalls(tt.counted, minimums)); diff != "" {
				t.Errorf("CountShortfalls(%v) (-want +got):\n%s", tt.counted, diff)
			}
		})
	}
}
