package demo

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// Summary writes the rows of the summary a run prints at its end, each a
// label and a text, the texts lined up in one column:
//
//	finished in 142ms
//	  operations  320 (320 committed, 0 gave up)
//	  retries     99
//	       99  SQLITE_BUSY (database is locked)
//	  check       sum of balances 0: OK
//
// Begin one with [Finished].
type Summary struct {
	w io.Writer
}

// Finished writes the heading of a run's summary to w: a blank line, then
// how long the run took, to the millisecond. It returns the Summary that
// writes the rows under it.
func Finished(w io.Writer, elapsed time.Duration) Summary {
	fmt.Fprintf(w, "\nfinished in %v\n", elapsed.Round(time.Millisecond))
	return Summary{w: w}
}

// Row writes one row: label, then the text format and args make, as
// [fmt.Sprintf] would. An empty label continues the row above.
func (s Summary) Row(label, format string, args ...any) {
	fmt.Fprintf(s.w, "  %-12s%s\n", label, fmt.Sprintf(format, args...))
}

// Causes writes one row per cause of retries, in the order of the causes'
// names, each with its count; see [Stats.Retries].
func (s Summary) Causes(retries map[string]int) {
	for _, cause := range slices.Sorted(maps.Keys(retries)) {
		fmt.Fprintf(s.w, "    %5d  %s\n", retries[cause], cause)
	}
}

// Check writes the last row: what the run read back, from format and args,
// then verdict if ok and FAILED if not.
func (s Summary) Check(ok bool, verdict, format string, args ...any) {
	if !ok {
		verdict = "FAILED"
	}
	s.Row("check", "%s: %s", fmt.Sprintf(format, args...), verdict)
}
