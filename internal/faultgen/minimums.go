package faultgen

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

// CheckFaults fails t for every kind of fault that fired fewer times than
// minimums requires, and for every kind that fired but has no minimum: a
// suite whose injector stopped reaching its targets would otherwise still
// pass, having tested nothing. minimums is the suite's own table
// (PGFaultMinimums, MyFaultMinimums), stated for a run of defaultDuration
// or longer. A shorter run (-short, or a shorter DBOP_FAULT_DURATION) logs
// that the minimums were not checked: in 2 s, about 30 rounds, some kinds
// are dealt only 4 or 5 times and MariaDB's row lock is held about twice,
// too few for a minimum that catches a broken injector without flaking.
func CheckFaults(t *testing.T, cfg RunConfig, st *Stats, minimums map[string]int) {
	t.Helper()
	if cfg.Duration < defaultDuration {
		t.Logf("fault minimums not checked: they are stated for runs of %v or more, this one lasted %v", defaultDuration, cfg.Duration)
		return
	}
	st.mu.Lock()
	fired := maps.Clone(st.faults)
	st.mu.Unlock()
	for _, msg := range Shortfalls(fired, minimums) {
		t.Error(msg)
	}
}

// Shortfalls returns, in kind order, a message for every kind in
// minimums that fired fewer times than its minimum, and for every kind in
// fired that has no minimum.
func Shortfalls(fired, minimums map[string]int) []string {
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

// CheckCounts logs what the round counted besides faults (Stats.Count)
// and, as CheckFaults, fails t for every kind in minimums counted fewer
// times than it requires, in a run of defaultDuration or longer: a suite
// whose pipelines stopped exercising what the count stands for (attempts
// that share a transaction, say) would otherwise still pass, having
// tested nothing of it.
func CheckCounts(t *testing.T, cfg RunConfig, st *Stats, minimums map[string]int) {
	t.Helper()
	st.mu.Lock()
	counted := maps.Clone(st.counts)
	st.mu.Unlock()
	if len(counted) == 0 && len(minimums) == 0 {
		return
	}
	t.Logf("counted: %s", Counts(counted))
	if cfg.Duration < defaultDuration {
		t.Logf("count minimums not checked: they are stated for runs of %v or more, this one lasted %v", defaultDuration, cfg.Duration)
		return
	}
	for _, msg := range CountShortfalls(counted, minimums) {
		t.Error(msg)
	}
}

// CountShortfalls returns, in kind order, a message for every kind in
// minimums counted fewer times than its minimum. Unlike faults, a kind
// counted without a minimum is only logged.
func CountShortfalls(counted, minimums map[string]int) []string {
	var msgs []string
	for _, kind := range slices.Sorted(maps.Keys(minimums)) {
		if n, least := counted[kind], minimums[kind]; n < least {
			msgs = append(msgs, fmt.Sprintf("%s: counted %d, want at least %d: the drawn pipelines no longer exercise it", kind, n, least))
		}
	}
	return msgs
}
