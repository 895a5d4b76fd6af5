package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// The bank workload: workers spread over a cluster's nodes move money
// between a few hot accounts; each transfer writes a ledger row keyed by
// the transfer and changes the two balances with relative updates, in one
// transaction, retried whole by dbop.

// A transfer moves amount from account src to account dst. Its key is the
// ledger's primary key.
type transfer struct {
	key      string
	src, dst int
	amount   int64
}

// outcome is what the caller of one transfer was told, and when.
type outcome struct {
	transfer
	worker     int
	idempotent bool
	err        error
	end        time.Duration // since the run started
}

// transferFunc runs one transfer through worker w's whole pipeline.
type transferFunc func(ctx context.Context, w int, tr transfer) error

// A fault is injected by a bankRun at its planned moment. It calls
// m.inject when the fault lands and m.end when the cluster is whole again,
// and returns after m.end.
type fault func(ctx context.Context, m *marks) error

// marks records when a fault landed and when it ended, and notes.
type marks struct {
	start time.Time

	mu                sync.Mutex
	injected, ended   time.Duration
	injectedAt, endAt bool
	notes             []string
}

func (m *marks) inject(what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.injected, m.injectedAt = time.Since(m.start), true
	m.notes = append(m.notes, fmt.Sprintf("%6.2fs  %s", m.injected.Seconds(), what))
}

func (m *marks) end(what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ended, m.endAt = time.Since(m.start), true
	m.notes = append(m.notes, fmt.Sprintf("%6.2fs  %s", m.ended.Seconds(), what))
}

func (m *marks) note(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notes = append(m.notes, fmt.Sprintf("%6.2fs  ", time.Since(m.start).Seconds())+fmt.Sprintf(format, args...))
}

// bankRun is one fault run of the bank workload.
type bankRun struct {
	name     string // the fault, as the table names it
	workers  int
	accounts int
	transfer transferFunc
	// idempotent reports whether worker w's retry is dbop.Idempotent.
	idempotent func(w int) bool
	// The run: warmup, then before until the fault is injected; the fault
	// runs; after goes on once it has ended.
	warmup, before, after time.Duration
	fault                 fault
	stats                 *retryStats
}

// result is what a run produced.
type result struct {
	outcomes []outcome
	marks    *marks
	end      time.Duration
}

// run runs the workload and the fault, and returns once every worker has
// stopped.
func (r bankRun) run(t *testing.T) result {
	t.Helper()
	// A hang is a finding: give up well after the planned end.
	ctx, cancel := context.WithTimeout(t.Context(), r.warmup+r.before+r.after+4*time.Minute)
	defer cancel()
	m := &marks{start: time.Now()}
	stop := make(chan struct{})
	var mu sync.Mutex
	var outcomes []outcome
	var wg sync.WaitGroup
	seed := rand.Uint64()
	t.Logf("%s: %d workers, %d accounts, seed %d", r.name, r.workers, r.accounts, seed)
	for w := range r.workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if ctx.Err() != nil {
					return
				}
				src := rng.IntN(r.accounts)
				tr := transfer{
					key:    fmt.Sprintf("w%d-%d", w, n),
					src:    src,
					dst:    (src + 1 + rng.IntN(r.accounts-1)) % r.accounts,
					amount: 1 + rng.Int64N(100),
				}
				err := r.transfer(context.WithValue(ctx, transferKey{}, tr.key), w, tr)
				o := outcome{transfer: tr, worker: w, idempotent: r.idempotent(w), err: err, end: time.Since(m.start)}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		})
	}
	var faultErr error
	select {
	case <-time.After(r.warmup + r.before):
		faultErr = r.fault(ctx, m)
		if faultErr == nil {
			select {
			case <-time.After(r.after):
			case <-ctx.Done():
			}
		}
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	end := time.Since(m.start)
	if faultErr != nil {
		t.Errorf("%s: the fault: %v", r.name, faultErr)
	}
	if ctx.Err() != nil {
		t.Errorf("%s: the run did not finish in time: a transfer or the fault hung", r.name)
	}
	for _, n := range m.notes {
		t.Logf("%s: %s", r.name, n)
	}
	return result{outcomes: outcomes, marks: m, end: end}
}

// legs returns a transfer's two balance changes, the lower account first:
// every transfer locks rows in the same order, so transfers do not
// deadlock each other (PostgreSQL finds a deadlock only after
// deadlock_timeout, a second).
func (tr transfer) legs() [2]leg {
	l := [2]leg{{tr.src, -tr.amount}, {tr.dst, tr.amount}}
	if l[1].id < l[0].id {
		l[0], l[1] = l[1], l[0]
	}
	return l
}

// leg is one balance change of a transfer.
type leg struct {
	id    int
	delta int64
}

// transferKey is the context key under which a worker passes the key of
// the transfer it runs, for retryStats.
type transferKey struct{}

// retryStats counts a run's retried errors by cause.
type retryStats struct {
	mu          sync.Mutex
	retries     int
	causes      map[string]int
	sample      map[string]string   // per cause, the first error's text
	resolutions map[string]int      // COMMITs whose answer was lost, by what ResolveCommit found
	history     map[string][]string // per transfer key, its retried errors
}

func newRetryStats() *retryStats {
	return &retryStats{causes: map[string]int{}, sample: map[string]string{}, resolutions: map[string]int{}, history: map[string][]string{}}
}

// trace returns the retried errors of transfer key, one per line.
func (s *retryStats) trace(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.history[key]) == 0 {
		return " (no retries)"
	}
	return "\n\t" + strings.Join(s.history[key], "\n\t")
}

// onResolved is scopes.OnCommitResolved's function for the workers whose
// transactions use ResolveCommit.
func (s *retryStats) onResolved(_ context.Context, r scopes.ResolvedCommit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := r.Resolution.String()
	if r.Err != nil {
		key += " (" + cause(r.Err) + ")"
	}
	s.resolutions[key]++
}

// onRetry is every worker's dbop.OnRetry.
func (s *retryStats) onRetry(ctx context.Context, e dbop.AttemptEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries++
	c := cause(e.Err)
	s.causes[c]++
	if key, ok := ctx.Value(transferKey{}).(string); ok {
		s.history[key] = append(s.history[key], fmt.Sprintf("attempt %d: %v: %v", e.Attempt, e.Verdict, e.Err))
	}
	if _, ok := s.sample[c]; !ok {
		s.sample[c] = e.Err.Error()
	}
}

// ledgerRow is one transfer as the ledger recorded it.
type ledgerRow struct {
	src, dst int
	amount   int64
}

// state is a cluster's final state as one node reports it.
type state struct {
	ledger   map[string]ledgerRow
	balances []int64
}

// tally is what a run's callers were told, checked against the ledger.
type tally struct {
	attempted, acked, failed          int
	ambiguousApplied, ambiguousNotYet int
	finalCauses                       map[string]int
}

// ambiguous reports whether err told the caller that the transfer may have
// been applied.
func ambiguous(err error) bool {
	return errors.Is(err, scopes.ErrAmbiguousCommit) || dbop.VerdictOf(err) == dbop.Ambiguous
}

// verifyBank checks a run's final state against what the callers were
// told, failing t for each violation of check.
func verifyBank(t *testing.T, name string, outcomes []outcome, st state, rs *retryStats) tally {
	t.Helper()
	tl, violations := check(outcomes, st)
	for _, o := range outcomes {
		if _, inLedger := st.ledger[o.key]; (o.err == nil) != inLedger && (o.err == nil || !ambiguous(o.err)) {
			t.Logf("%s: transfer %s retried before it ended:%s", name, o.key, rs.trace(o.key))
		}
	}
	for _, o := range outcomes {
		if o.err != nil && ambiguous(o.err) {
			_, applied := st.ledger[o.key]
			t.Logf("%s: transfer %s (worker %d) ended ambiguous, resolved by its ledger row: applied=%v: %v", name, o.key, o.worker, applied, o.err)
		}
	}
	t.Logf("%s: transfers attempted %d, acknowledged %d, failed %d, ambiguous %d (%d applied, %d not applied); ledger rows %d; unacknowledged by cause: %s",
		name, tl.attempted, tl.acked, tl.failed, tl.ambiguousApplied+tl.ambiguousNotYet, tl.ambiguousApplied, tl.ambiguousNotYet, len(st.ledger), faultgen.Counts(tl.finalCauses))
	for i, v := range violations {
		if i == 20 {
			t.Errorf("%s: … and %d more violations", name, len(violations)-i)
			break
		}
		t.Errorf("%s: %s", name, v)
	}
	return tl
}

// check compares a run's final state with what the callers were told:
// balances sum to zero, every account equals its ledger's net, every
// acknowledged transfer is in the ledger exactly once (the ledger's key
// allows no second row) with its amount, no transfer whose caller was told
// it failed is there, and the ledger holds nothing no worker attempted. An
// ambiguous outcome is resolved by looking its key up in the ledger. It
// returns the tally and the violations.
func check(outcomes []outcome, st state) (tally, []string) {
	tl := tally{attempted: len(outcomes), finalCauses: map[string]int{}}
	var violations []string
	violate := func(format string, args ...any) { violations = append(violations, fmt.Sprintf(format, args...)) }
	seen := make(map[string]bool, len(outcomes))
	for _, o := range outcomes {
		seen[o.key] = true
		row, inLedger := st.ledger[o.key]
		if inLedger && row != (ledgerRow{o.src, o.dst, o.amount}) {
			violate("transfer %s: the ledger has %+v, the transfer was %+v", o.key, row, o.transfer)
		}
		switch {
		case o.err == nil:
			tl.acked++
			if !inLedger {
				violate("transfer %s (worker %d) was acknowledged but is not in the ledger: lost", o.key, o.worker)
			}
		case ambiguous(o.err):
			tl.finalCauses[cause(o.err)]++
			if inLedger {
				tl.ambiguousApplied++
			} else {
				tl.ambiguousNotYet++
			}
		default:
			tl.failed++
			tl.finalCauses[cause(o.err)]++
			if inLedger {
				violate("transfer %s (worker %d) is in the ledger, yet its caller was told it failed (verdict %v): %v",
					o.key, o.worker, dbop.VerdictOf(o.err), o.err)
			}
		}
	}
	for key := range st.ledger {
		if !seen[key] {
			violate("the ledger holds %s, which no worker attempted", key)
		}
	}
	var sum int64
	net := make([]int64, len(st.balances))
	for _, row := range st.ledger {
		net[row.src] -= row.amount
		net[row.dst] += row.amount
	}
	for id, b := range st.balances {
		sum += b
		if b != net[id] {
			violate("account %d: balance %d, its ledger's net is %d", id, b, net[id])
		}
	}
	if sum != 0 {
		violate("balances sum to %d, want 0", sum)
	}
	if tl.acked == 0 {
		violate("no transfer was acknowledged: the workload did not run")
	}
	return tl, violations
}

// bin is the width of the goodput timeline's bins.
const bin = 250 * time.Millisecond

// goodput is a run's acknowledged transfers per second around its fault.
type goodput struct {
	before, during, after float64
	// recovery is the time from the fault's injection to the start of the
	// first second whose goodput is at least 80% of before's; -1 if none.
	recovery time.Duration
	// stall is the longest time after the injection with no transfer
	// acknowledged; stalled adds up every such time of half a second or
	// more.
	stall, stalled time.Duration
	bins           []int // acknowledged transfers per bin, from the start
}

// measure computes a run's goodput phases: before is from the end of the
// warm-up to the injection, during from the injection to the fault's end,
// after from there to the run's end.
func measure(res result, warmup time.Duration) goodput {
	var commits []time.Duration
	for _, o := range res.outcomes {
		if o.err == nil {
			commits = append(commits, o.end)
		}
	}
	slices.Sort(commits)
	rate := func(from, to time.Duration) float64 {
		if to <= from {
			return 0
		}
		n := 0
		for _, c := range commits {
			if c >= from && c < to {
				n++
			}
		}
		return float64(n) / (to - from).Seconds()
	}
	inj, ended := res.marks.injected, res.marks.ended
	g := goodput{
		before: rate(warmup, inj),
		during: rate(inj, ended),
		after:  rate(ended, res.end),
		bins:   make([]int, int(res.end/bin)+1),
	}
	for _, c := range commits {
		g.bins[int(c/bin)]++
	}
	g.recovery = -1
	const window = int(time.Second / bin)
	for b := int(inj / bin); b+window <= int(res.end/bin); b++ {
		n := 0
		for _, c := range g.bins[b : b+window] {
			n += c
		}
		if float64(n) >= 0.8*g.before*time.Second.Seconds() {
			g.recovery = max(0, time.Duration(b)*bin-inj)
			break
		}
	}
	last := inj
	gap := func(d time.Duration) {
		g.stall = max(g.stall, d)
		if d >= 500*time.Millisecond {
			g.stalled += d
		}
	}
	for _, c := range commits {
		if c < inj {
			continue
		}
		gap(c - last)
		last = c
	}
	gap(res.end - last)
	return g
}

// report logs a run's goodput: the timeline, one bin per character group,
// and the table row docs/clusters.md shows.
func report(t *testing.T, name string, res result, g goodput, tl tally, st *retryStats) {
	t.Helper()
	var b strings.Builder
	for i, n := range g.bins {
		if i%20 == 0 {
			fmt.Fprintf(&b, "\n\t%5.1fs", (time.Duration(i) * bin).Seconds())
		}
		mark := " "
		switch {
		case time.Duration(i)*bin <= res.marks.injected && res.marks.injected < time.Duration(i+1)*bin:
			mark = "!"
		case time.Duration(i)*bin <= res.marks.ended && res.marks.ended < time.Duration(i+1)*bin:
			mark = "^"
		}
		fmt.Fprintf(&b, "%s%4d", mark, n)
	}
	t.Logf("%s: acknowledged transfers per %v (! fault injected, ^ fault ended):%s", name, bin, b.String())
	st.mu.Lock()
	t.Logf("%s: retries %d; retried causes: %s", name, st.retries, faultgen.Counts(st.causes))
	t.Logf("%s: lost COMMIT answers resolved by ResolveCommit: %s", name, faultgen.Counts(st.resolutions))
	for _, c := range slices.Sorted(maps.Keys(st.sample)) {
		t.Logf("%s: retried %s, e.g. %s", name, c, st.sample[c])
	}
	st.mu.Unlock()
	recovery := "not within the run"
	if g.recovery >= 0 {
		recovery = fmt.Sprintf("%.2f s", g.recovery.Seconds())
	}
	t.Logf("%s: | fault | before | during | after | recovered after | longest stall | stalled in all | acknowledged | ambiguous | failed |", name)
	t.Logf("%s: | %s | %.0f/s | %.0f/s (%.1f s) | %.0f/s | %s | %.2f s | %.2f s | %d | %d (%d applied) | %d |",
		name, name, g.before, g.during, (res.marks.ended - res.marks.injected).Seconds(), g.after, recovery,
		g.stall.Seconds(), g.stalled.Seconds(), tl.acked, tl.ambiguousApplied+tl.ambiguousNotYet, tl.ambiguousApplied, tl.failed)
}

// cause labels an error for the logs: its verdict and the most specific
// code or condition found in it. It is for reporting only; no check
// depends on it.
func cause(err error) string {
	var parts []string
	if errors.Is(err, dbop.ErrRetriesExhausted) {
		parts = append(parts, "exhausted")
	}
	if errors.Is(err, scopes.ErrAmbiguousCommit) {
		parts = append(parts, "ambiguous commit")
	}
	var timeoutErr *dbop.TimeoutError
	if errors.As(err, &timeoutErr) {
		parts = append(parts, "attempt deadline")
	}
	switch pgErr, myErr := (*pgconn.PgError)(nil), (*mysql.MySQLError)(nil); {
	case errors.As(err, &pgErr):
		parts = append(parts, "pg "+pgErr.Code)
	case errors.As(err, &myErr):
		parts = append(parts, fmt.Sprintf("mysql %d", myErr.Number))
	case errors.Is(err, pgconn.ErrConnClosed):
		parts = append(parts, "conn closed")
	case errors.Is(err, mysql.ErrInvalidConn):
		parts = append(parts, "invalid conn")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		parts = append(parts, "context")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		parts = append(parts, "eof")
	default:
		if opErr, ok := errors.AsType[*net.OpError](err); ok {
			parts = append(parts, "net "+opErr.Op)
		} else if _, ok := errors.AsType[net.Error](err); ok {
			parts = append(parts, "network")
		} else if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
			parts = append(parts, "pg connect")
		} else {
			parts = append(parts, "other")
		}
	}
	return dbop.VerdictOf(err).String() + " (" + strings.Join(parts, ", ") + ")"
}
