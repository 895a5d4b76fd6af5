package faulttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Environment variables of the suite.
const (
	// DurationEnv sets how long each backend's workload runs, as a Go
	// duration ("30s"). The default is defaultDuration, or shortDuration
	// under -short.
	DurationEnv = "DBOP_FAULT_DURATION"
	// SeedEnv replays an injector schedule: the seed a run logs. The
	// moments at which faults land still depend on timing, so a replay
	// repeats the kinds, targets and spacing of the faults, not their
	// exact effect.
	SeedEnv = "DBOP_FAULT_SEED"
)

const (
	defaultDuration = 6 * time.Second
	shortDuration   = 2 * time.Second

	numWorkers  = 6
	numAccounts = 5
	// maxFaults bounds the injector however long the run.
	maxFaults = 2000
	// maxAttempts is each transfer's attempt limit.
	maxAttempts = 10
)

// backoff is the wait between a transfer's attempts: 1 ms doubling to
// 50 ms, fully jittered.
var backoff = dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond))

// runConfig is what one backend's run uses.
type runConfig struct {
	seed     uint64
	duration time.Duration
	runID    string // names the run's tables, database and application_name
}

// newRunConfig reads the environment and logs how to replay the run.
func newRunConfig(t *testing.T) runConfig {
	t.Helper()
	cfg := runConfig{seed: rand.Uint64(), duration: defaultDuration}
	if testing.Short() {
		cfg.duration = shortDuration
	}
	if s := os.Getenv(SeedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
		cfg.seed = seed
	}
	if s := os.Getenv(DurationEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive Go duration such as 30s", DurationEnv, s)
		}
		cfg.duration = d
	}
	cfg.runID = newRunID()
	t.Logf("seed %d (replay the injector schedule with %s=%d), duration %v, run %s",
		cfg.seed, SeedEnv, cfg.seed, cfg.duration, cfg.runID)
	return cfg
}

// newRunID returns a name for a run's tables, database and
// application_name that does not clash with a concurrent run, replayed or
// not.
func newRunID() string { return fmt.Sprintf("%d_%08x", os.Getpid(), rand.Uint32()) }

// A transfer moves amount from account src to account dst. Its key is
// its idempotency key: the ledger's primary key.
type transfer struct {
	key      string
	src, dst int
	amount   int64
}

// outcome is what the caller of one transfer was told.
type outcome struct {
	transfer
	worker     int
	idempotent bool
	err        error
	// wrote is false for an acknowledged transfer whose last attempt found
	// the ledger row already written by an earlier, ambiguous attempt, or,
	// from a worker that defaults(), that was given the fallback's default.
	wrote bool
}

// workerSpec is how one worker runs its transfers.
type workerSpec struct {
	idempotent bool // the retry is dbop.Idempotent
	proxied    bool // through the fault proxy
	lockLimit  bool // per-attempt lock timeout; otherwise statement timeout
	resolve    bool // InTx resolves lost COMMIT answers (ResolveCommit)
}

func (s workerSpec) String() string {
	var parts []string
	if s.idempotent {
		parts = append(parts, "idempotent")
	} else {
		parts = append(parts, "not idempotent")
	}
	if s.proxied {
		parts = append(parts, "proxied")
	} else {
		parts = append(parts, "direct")
	}
	if s.lockLimit {
		parts = append(parts, "lock timeout")
	} else {
		parts = append(parts, "statement timeout")
	}
	if s.resolve {
		parts = append(parts, "ResolveCommit")
	}
	return strings.Join(parts, ", ")
}

// The worker interface of a workerSpec: one transaction, one ledger row,
// no fallback.

func (s workerSpec) isIdempotent() bool { return s.idempotent }

func (s workerSpec) apart() bool { return false }

func (s workerSpec) legs(tr transfer) []leg {
	return []leg{{tr.key, ledgerRow{tr.src, tr.dst, tr.amount}}}
}

func (s workerSpec) acceptsAmbiguous() bool { return false }

func (s workerSpec) defaults() bool { return false }

// A worker is what runWorkload and verify know of a worker's pipeline: a
// workerSpec, or a generated pipeline (genPlan).
type worker interface {
	fmt.Stringer
	// isIdempotent reports whether the retries are dbop.Idempotent.
	isIdempotent() bool
	// legs returns the ledger rows a transfer writes when it is applied.
	legs(tr transfer) []leg
	// apart reports whether the legs commit in transactions of their own
	// (a Then or All of transactions), so that a failure may leave some of
	// them applied.
	apart() bool
	// defaults reports whether the pipeline gives a default value in place
	// of an error (OrDefault, or a Fallback returning a value): the
	// transfer's result then says so, and its runner returns wrote false
	// with a nil error.
	defaults() bool
	// acceptsAmbiguous reports whether a fallback of the pipeline has
	// dbop.AcceptAmbiguous, so that a default may stand for work that took
	// effect.
	acceptsAmbiguous() bool
}

// workersOf returns specs as workers.
func workersOf(specs []workerSpec) []worker {
	ws := make([]worker, len(specs))
	for i, s := range specs {
		ws[i] = s
	}
	return ws
}

// A leg is one ledger row of a transfer: key is its idempotency key.
type leg struct {
	key string
	row ledgerRow
}

// workerSpecs covers every combination of idempotent × proxied, and each
// kind of per-attempt limit on both halves. The workers that are not
// idempotent resolve lost COMMIT answers (ResolveCommit), so the proxied
// one among them meets the cuts after COMMIT with resolution on.
func workerSpecs() []workerSpec {
	specs := make([]workerSpec, numWorkers)
	for w := range specs {
		specs[w] = workerSpec{
			idempotent: w < numWorkers/2,
			proxied:    w == 2 || w == 5,
			lockLimit:  w%2 == 0,
			resolve:    w >= numWorkers/2,
		}
	}
	return specs
}

// transferFunc applies one transfer through a worker's pipeline, retry
// included, and reports whether this call wrote the ledger row.
type transferFunc func(ctx context.Context, tr transfer) (wrote bool, err error)

// injectFunc causes one fault and returns its kind, or "" when there was
// nothing to hit. slot, dealt by a [deck], chooses the kind: each kind
// takes a range of slots whose bounds are multiples of 5 (slot < 25 is a
// quarter of the deals); rng chooses the rest (the target, how long). It
// runs on the injector goroutine only; a fault that lasts (a row lock held
// for a while) runs its tail with spawn, which the workload joins before
// it returns.
type injectFunc func(ctx context.Context, slot int, rng *rand.Rand, spawn func(func() error)) (kind string, err error)

// deckSize is how many slots a deck deals before it is shuffled again.
const deckSize = 20

// A deck deals the injector's slots, 0, 5, …, 95, each once in an order
// shuffled with rng, and then shuffles them again. Every deckSize rounds
// each kind of fault is therefore chosen exactly its share of the time, not
// a binomial number of times: how often a kind is tried depends on how
// many rounds the injector ran, not on the seed, and the suites' fault
// minimums can be stated without luck in them (see checkFaults).
type deck struct {
	rng   *rand.Rand
	slots []int
}

func (d *deck) deal() int {
	if len(d.slots) == 0 {
		for i := range deckSize {
			d.slots = append(d.slots, i*100/deckSize)
		}
		d.rng.Shuffle(len(d.slots), func(i, j int) { d.slots[i], d.slots[j] = d.slots[j], d.slots[i] })
	}
	slot := d.slots[len(d.slots)-1]
	d.slots = d.slots[:len(d.slots)-1]
	return slot
}

// stats counts faults and retries; it is shared by every goroutine of a
// run.
type stats struct {
	mu            sync.Mutex
	rounds        int // the injector's rounds: its calls of injectFunc
	faults        map[string]int
	retries       int
	retryVerdicts map[string]int
	retryCauses   map[string]int
	history       map[string][]string // each transfer's retried errors, by key
	resolutions   map[scopes.Resolution]int
	reruns        map[string]int // legs run again after they took effect, by transfer key
	// committedBefore holds the transfers an attempt of which was retried
	// after a step of it had committed (an Idempotent retry of a Then or
	// All), by key.
	committedBefore map[string]bool
}

func newStats() *stats {
	return &stats{faults: map[string]int{}, retryVerdicts: map[string]int{}, retryCauses: map[string]int{},
		history: map[string][]string{}, resolutions: map[scopes.Resolution]int{}, reruns: map[string]int{},
		committedBefore: map[string]bool{}}
}

// onResolved is every ResolveCommit worker's scopes.OnCommitResolved.
func (s *stats) onResolved(ctx context.Context, r scopes.ResolvedCommit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolutions[r.Resolution]++
	if key, ok := ctx.Value(transferKey{}).(string); ok {
		s.history[key] = append(s.history[key], fmt.Sprintf("commit answer lost, resolved %v (%v): %v", r.Resolution, r.Elapsed, r.CommitErr))
	}
}

// rerun records that the leg legKey of the transfer ctx names found its
// ledger row already written with plain SQL, whose key refuses a second
// one: the leg ran again after its transaction committed, or, inside a
// transaction, after its savepoint was released.
func (s *stats) rerun(ctx context.Context, legKey string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, _ := ctx.Value(transferKey{}).(string)
	s.reruns[key]++
	s.history[key] = append(s.history[key], fmt.Sprintf("leg %s ran again and found its ledger row: %v", legKey, err))
}

// transferKey is the context key under which a worker passes the key of
// the transfer it runs, for onRetry.
type transferKey struct{}

func (s *stats) fault(kind string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[kind] += n
}

func (s *stats) round() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rounds++
}

// onRetry is every worker's dbop.OnRetry.
func (s *stats) onRetry(ctx context.Context, e dbop.AttemptEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries++
	s.retryVerdicts[e.Verdict.String()]++
	s.retryCauses[cause(e.Err)]++
	if key, ok := ctx.Value(transferKey{}).(string); ok {
		s.history[key] = append(s.history[key], fmt.Sprintf("attempt %d: %v: %v", e.Attempt, e.Verdict, e.Err))
		if toldCommitted(e.Err) {
			s.committedBefore[key] = true
		}
	}
}

// trace returns the retried errors of transfer key, one per line.
func (s *stats) trace(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.history[key]) == 0 {
		return "\n\t(no retries)"
	}
	return "\n\t" + strings.Join(s.history[key], "\n\t")
}

// runWorkload runs one worker per spec, each applying transfers between
// random accounts until cfg.duration has passed, while inject causes
// faults at random moments. It returns what every transfer's caller was
// told once all workers and the injector have stopped.
func runWorkload(t *testing.T, cfg runConfig, specs []worker, runs []transferFunc, inject injectFunc, st *stats) []outcome {
	t.Helper()
	// A hang is a finding: give up well after the planned end.
	ctx, cancel := context.WithTimeout(t.Context(), cfg.duration+2*time.Minute)
	defer cancel()
	deadline := time.Now().Add(cfg.duration)

	var mu sync.Mutex
	var outcomes []outcome
	var wg sync.WaitGroup
	for w, spec := range specs {
		rng := rand.New(rand.NewPCG(cfg.seed, uint64(w)+1))
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				src := rng.IntN(numAccounts)
				tr := transfer{
					key:    fmt.Sprintf("w%d-%d", w, n),
					src:    src,
					dst:    (src + 1 + rng.IntN(numAccounts-1)) % numAccounts,
					amount: 1 + rng.Int64N(100),
				}
				wrote, err := runs[w](context.WithValue(ctx, transferKey{}, tr.key), tr)
				mu.Lock()
				outcomes = append(outcomes, outcome{transfer: tr, worker: w, idempotent: spec.isIdempotent(), err: err, wrote: wrote})
				mu.Unlock()
			}
		})
	}
	spawn := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				t.Errorf("injector: %v", err)
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(cfg.seed, 0))
		slots := &deck{rng: rng}
		for injected := 0; injected < maxFaults; {
			// 10–120 ms between faults.
			time.Sleep(time.Duration(10+rng.IntN(111)) * time.Millisecond)
			if !time.Now().Before(deadline) || ctx.Err() != nil {
				return
			}
			st.round()
			kind, err := inject(ctx, slots.deal(), rng, spawn)
			if err != nil {
				t.Errorf("injector: %s: %v", kind, err)
				return
			}
			if kind != "" {
				st.fault(kind, 1)
				injected++
			}
		}
	})
	wg.Wait()
	if ctx.Err() != nil {
		t.Errorf("the workload did not finish within %v of its planned end: a transfer hung", 2*time.Minute)
	}
	return outcomes
}

// ledgerRow is one transfer as the ledger recorded it.
type ledgerRow struct {
	src, dst int
	amount   int64
}

// ambiguous reports whether err told the caller that the transfer may have
// been applied.
func ambiguous(err error) bool {
	return errors.Is(err, scopes.ErrAmbiguousCommit) || dbop.VerdictOf(err) == dbop.Ambiguous
}

// verify checks the final state of a run against what the callers were
// told, and logs the run's counts. The checks depend on nothing but the
// recorded outcomes and the database's final state. For each transfer, by
// what its caller was told:
//
//   - acknowledged: every leg is in the ledger;
//   - given a fallback's default (OrDefault, Fallback's value or its own
//     error): no leg is, unless the fallback has AcceptAmbiguous — a
//     fallback passes through an ambiguous outcome and the failure of a
//     Then or All after a step took effect;
//   - ambiguous: anything;
//   - told a step had committed (ErrAlreadyCommitted, or the mark of a
//     Then or All whose legs commit apart): at least one leg is in the
//     ledger and not all — or all of them, when an Idempotent retry ran the
//     Then or All again after an attempt in which a step committed: the
//     legs that attempt committed and those the last one committed may
//     make up the transfer, and neither the retry nor its caller can tell
//     which leg a mark stands for;
//   - any other failure: no leg is in the ledger (a partial transfer of
//     legs committed apart must have been reported as above).
//
// Whatever it was told, no leg ran again after it took effect (with plain
// SQL, its INSERT found its own ledger row: a retry ran a committed debit
// again). The ledger holds only legs of attempted transfers, as they were
// attempted, and replaying it gives every account's balance.
func verify(t *testing.T, specs []worker, outcomes []outcome, ledger map[string]ledgerRow, balances []int64, st *stats) {
	t.Helper()
	var (
		acked, replayed, failed, defaulted, toldCommittedN int
		toldCommittedAll                                   int
		ambiguousApplied, ambiguousNotYet                  int
		violations                                         []string
		finalCauses                                        = map[string]int{}
	)
	violate := func(format string, args ...any) {
		violations = append(violations, fmt.Sprintf(format, args...))
	}
	seen := make(map[string]bool, len(outcomes))
	for _, o := range outcomes {
		spec := specs[o.worker]
		legs := spec.legs(o.transfer)
		var in []string
		for _, l := range legs {
			seen[l.key] = true
			row, inLedger := ledger[l.key]
			if !inLedger {
				continue
			}
			in = append(in, l.key)
			if row != l.row {
				violate("transfer %s: ledger row %s is %+v, the leg was %+v", o.key, l.key, row, l.row)
			}
		}
		all, none := len(in) == len(legs), len(in) == 0
		st.mu.Lock()
		reruns := st.reruns[o.key]
		st.mu.Unlock()
		if reruns > 0 {
			violate("transfer %s (worker %d, %s): a leg ran again after it had taken effect (%d times; idempotent %v), told %v\nretried before that:%s",
				o.key, o.worker, spec, reruns, o.idempotent, o.err, st.trace(o.key))
		}
		switch {
		case errors.Is(o.err, errFallback) || o.err == nil && !o.wrote && spec.defaults():
			defaulted++
			if !none && !spec.acceptsAmbiguous() {
				violate("transfer %s (worker %d, %s) was given the fallback's default (err %v), yet %d of its %d legs are in the ledger (%v): a default for work that took effect\nretried before that:%s",
					o.key, o.worker, spec, o.err, len(in), len(legs), in, st.trace(o.key))
			}
		case o.err == nil:
			acked++
			if !o.wrote {
				replayed++
			}
			if !all {
				violate("transfer %s (worker %d, %s) was acknowledged but %d of its %d legs are not in the ledger: lost\nretried before that:%s", o.key, o.worker, spec, len(legs)-len(in), len(legs), st.trace(o.key))
			}
		case ambiguous(o.err):
			finalCauses[cause(o.err)]++
			if !none {
				ambiguousApplied++
			} else {
				ambiguousNotYet++
			}
		case spec.apart() && toldCommitted(o.err):
			toldCommittedN++
			finalCauses["told committed: "+cause(o.err)]++
			st.mu.Lock()
			before := st.committedBefore[o.key]
			st.mu.Unlock()
			if all && toldCommittedHolds(len(in), len(legs), o.idempotent, before) {
				toldCommittedAll++
			}
			if !toldCommittedHolds(len(in), len(legs), o.idempotent, before) {
				violate("transfer %s (worker %d, %s) was told a step had committed (verdict %v): %v; yet %d of its %d legs are in the ledger\nretried before that:%s",
					o.key, o.worker, spec, dbop.VerdictOf(o.err), o.err, len(in), len(legs), st.trace(o.key))
			}
		default:
			failed++
			finalCauses[cause(o.err)]++
			switch {
			case none:
			case spec.apart() && !all:
				violate("partial and not reported: transfer %s (worker %d, %s) has legs %v of %d in the ledger, yet the error returned is neither ambiguous nor says a step committed (verdict %v): %v\nretried before that:%s",
					o.key, o.worker, spec, in, len(legs), dbop.VerdictOf(o.err), o.err, st.trace(o.key))
			default:
				violate("applied but reported failed: transfer %s (worker %d, %s) is in the ledger, yet the error returned is not ambiguous (verdict %v): %v\nretried before that:%s",
					o.key, o.worker, spec, dbop.VerdictOf(o.err), o.err, st.trace(o.key))
			}
		}
	}
	for key := range ledger {
		if !seen[key] {
			violate("the ledger holds %s, which no worker attempted", key)
		}
	}

	var sum int64
	replay := make([]int64, len(balances))
	for _, row := range ledger {
		replay[row.src] -= row.amount
		replay[row.dst] += row.amount
	}
	for id, b := range balances {
		sum += b
		if b != replay[id] {
			violate("account %d: balance %d, replaying the ledger gives %d: some transfer's balance updates were applied twice, in part, or without its ledger row",
				id, b, replay[id])
		}
	}
	if sum != 0 {
		violate("balances sum to %d, want 0", sum)
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	t.Logf("transfers: attempted %d, acknowledged %d (%d by an idempotent retry that found its ledger row already written), failed %d, ambiguous %d (%d applied at least in part, %d not applied), given a fallback's default %d, told a step had committed %d (%d with every leg in the ledger, committed in different attempts); ledger rows %d",
		len(outcomes), acked, replayed, failed, ambiguousApplied+ambiguousNotYet, ambiguousApplied, ambiguousNotYet, defaulted, toldCommittedN, toldCommittedAll, len(ledger))
	t.Logf("faults injected in %d injector rounds: %s", st.rounds, counts(st.faults))
	t.Logf("ambiguous commits (ResolveCommit workers): resolved committed %d / resolved aborted %d / wrote nothing %d / unresolved %d",
		st.resolutions[scopes.Committed], st.resolutions[scopes.Aborted], st.resolutions[scopes.NotWritten], st.resolutions[scopes.Unresolved])
	t.Logf("retries: %d; by verdict: %s", st.retries, counts(st.retryVerdicts))
	t.Logf("retried causes: %s", counts(st.retryCauses))
	t.Logf("unacknowledged outcomes by cause: %s", counts(finalCauses))
	if acked == 0 {
		violate("no transfer was acknowledged: the workload did not run")
	}
	for i, v := range violations {
		if i == 20 {
			t.Errorf("… and %d more violations", len(violations)-i)
			break
		}
		t.Error(v)
	}
}

// toldCommittedHolds reports whether a transfer whose caller was told a
// step had committed may have in of its legs in the ledger: some and not
// all, or all of them when its retry is Idempotent and ran it again after
// an attempt in which a step committed (committedBefore), so that legs
// committed in different attempts may make up the transfer.
func toldCommittedHolds(in, legs int, idempotent, committedBefore bool) bool {
	switch {
	case in == 0:
		return false
	case in < legs:
		return true
	}
	return idempotent && committedBefore
}

// counts formats a count map in key order.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
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
	switch pgErr, myErr := (*pgconn.PgError)(nil), (*mysql.MySQLError)(nil); {
	case errors.As(err, &pgErr):
		code := "pg " + pgErr.Code
		if pgErr.Code == "57014" {
			if strings.Contains(pgErr.Message, "statement timeout") {
				code += " statement timeout"
			} else {
				code += " user cancel"
			}
		}
		parts = append(parts, code)
	case errors.As(err, &myErr):
		parts = append(parts, fmt.Sprintf("mysql %d", myErr.Number))
	case sqliteCode(err) != 0:
		parts = append(parts, fmt.Sprintf("sqlite %d", sqliteCode(err)))
	case errors.Is(err, pgconn.ErrConnClosed):
		parts = append(parts, "conn closed")
	case errors.Is(err, mysql.ErrInvalidConn):
		parts = append(parts, "invalid conn")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		parts = append(parts, "context")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		parts = append(parts, "eof")
	default:
		if _, ok := errors.AsType[net.Error](err); ok {
			parts = append(parts, "network")
		} else {
			parts = append(parts, "other")
		}
	}
	return dbop.VerdictOf(err).String() + " (" + strings.Join(parts, ", ") + ")"
}

// verify's rule for a transfer told a step had committed: partial is
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

	st := newStats()
	ctx := context.WithValue(t.Context(), transferKey{}, "w0-1")
	st.onRetry(ctx, dbop.AttemptEvent{Attempt: 1, Err: errors.New("serialization failure")})
	if st.committedBefore["w0-1"] {
		t.Errorf("an attempt whose error says nothing committed was recorded as committed")
	}
	st.onRetry(ctx, dbop.AttemptEvent{Attempt: 2, Err: fmt.Errorf("credit: %w", dbop.ErrAlreadyCommitted)})
	if !st.committedBefore["w0-1"] {
		t.Errorf("an attempt whose error says a step had committed was not recorded")
	}
}
