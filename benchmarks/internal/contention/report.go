package contention

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// TableHeader writes the header of the Markdown table Row writes rows of.
func TableHeader(w io.Writer) {
	fmt.Fprintln(w, "| strategy | workers | processes | committed | goodput (tx/s) | attempts/commit | attempts p99/max | give-ups | p50 | p99 | max | > 250 ms | invariants |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
}

// Row writes r as a row of the Markdown table.
func Row(w io.Writer, r Result) {
	inv := "PASS"
	if !r.Invariants.OK() {
		inv = "FAIL"
	}
	giveUps := fmt.Sprint(r.GiveUps)
	if r.GiveUps > 0 {
		giveUps += " (" + r.Reasons() + ")"
	}
	fmt.Fprintf(w, "| %s | %d | %d | %d | %.0f | %.2f | %d/%d | %s | %s | %s | %s | %d | %s |\n",
		r.Strategy, r.Workers, r.Processes, r.Commits, r.Goodput(), r.AttemptsPerCommit(), r.P99Tries, r.MaxTries, giveUps,
		ms(r.P50), ms(r.P99), ms(r.Max), r.Slow, inv)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// Summary aggregates the rounds of one strategy.
type Summary struct {
	Strategy          string
	Workers           int
	Processes         int
	Rounds            int
	Goodput           float64       // median
	AttemptsPerCommit float64       // median
	GiveUps           int64         // total over the rounds
	P50, P99          time.Duration // medians
	WorstP99          time.Duration
	MaxTries          int           // the most attempts one committed transfer needed, over the rounds
	Max               time.Duration // the slowest committed transfer, over the rounds
	Slow              int64         // committed transfers slower than SlowThreshold, total
	Passed            int           // rounds whose invariants hold
	// Ratio is the median over the rounds of goodput divided by the
	// reference's goodput in the same round; 0 without a reference.
	Ratio float64
}

// Summarize aggregates rs, the rounds of one strategy; ref, if not empty,
// holds the reference's rounds in the same order.
func Summarize(rs, ref []Result) Summary {
	if len(rs) == 0 {
		return Summary{}
	}
	s := Summary{Strategy: rs[0].Strategy, Workers: rs[0].Workers, Processes: rs[0].Processes, Rounds: len(rs)}
	var good, apc, ratio []float64
	var p50, p99 []time.Duration
	for i, r := range rs {
		good = append(good, r.Goodput())
		apc = append(apc, r.AttemptsPerCommit())
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		s.GiveUps += r.GiveUps
		s.WorstP99 = max(s.WorstP99, r.P99)
		s.MaxTries = max(s.MaxTries, r.MaxTries)
		s.Max = max(s.Max, r.Max)
		s.Slow += r.Slow
		if r.Invariants.OK() {
			s.Passed++
		}
		if i < len(ref) && ref[i].Goodput() > 0 {
			ratio = append(ratio, r.Goodput()/ref[i].Goodput())
		}
	}
	s.Goodput, s.AttemptsPerCommit = median(good), median(apc)
	s.P50, s.P99 = median(p50), median(p99)
	if len(ratio) > 0 {
		s.Ratio = median(ratio)
	}
	return s
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// MedianHeader writes the header of the Markdown table MedianRow writes rows of.
func MedianHeader(w io.Writer) {
	fmt.Fprintln(w, "| strategy | workers | processes | goodput (tx/s, median) | × reference (median) | attempts/commit (median) | attempts max | give-ups (total) | p50 (median) | p99 (median) | p99 (worst) | max | > 250 ms (total) | invariants |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
}

// MedianRow writes s as a row of the Markdown table.
func MedianRow(w io.Writer, s Summary) {
	fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.2f | %.2f | %d | %d | %s | %s | %s | %s | %d | PASS %d/%d |\n",
		s.Strategy, s.Workers, s.Processes, s.Goodput, s.Ratio, s.AttemptsPerCommit, s.MaxTries, s.GiveUps,
		ms(s.P50), ms(s.P99), ms(s.WorstP99), ms(s.Max), s.Slow, s.Passed, s.Rounds)
}

// Goal is the target for the default answer: goodput at least
// MinRatio times the reference's, no give-up, p99 and max latency within
// SlowThreshold and MaxThreshold.
type Goal struct{ MinRatio float64 }

// Check reports whether s meets g, and a line per criterion.
func (g Goal) Check(s Summary) (bool, []string) {
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	ok := true
	var lines []string
	add := func(met bool, format string, args ...any) {
		ok = ok && met
		lines = append(lines, yes(met)+": "+fmt.Sprintf(format, args...))
	}
	add(s.Ratio >= g.MinRatio, "goodput %.2f× reference (median of rounds), want ≥ %.1f×", s.Ratio, g.MinRatio)
	add(s.GiveUps == 0, "%d give-ups, want 0", s.GiveUps)
	add(s.WorstP99 <= SlowThreshold, "p99 %v (worst round), want ≤ %v", s.WorstP99.Round(100*time.Microsecond), SlowThreshold)
	add(s.Max <= MaxThreshold, "max %v, want ≤ %v", s.Max.Round(100*time.Microsecond), MaxThreshold)
	return ok, lines
}
