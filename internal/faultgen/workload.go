package faultgen

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

	NumWorkers  = 6
	NumAccounts = 5
	// maxFaults bounds the injector however long the run.
	maxFaults = 2000
	// MaxAttempts is each transfer's attempt limit.
	MaxAttempts = 10
)

// Backoff is the wait between a transfer's attempts: 1 ms doubling to
// 50 ms, fully jittered.
var Backoff = dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond))

// RunConfig is what one backend's run uses.
type RunConfig struct {
	Seed     uint64
	Duration time.Duration
	RunID    string // names the run's tables, database and application_name
}

// NewRunConfig reads the environment and logs how to replay the run.
func NewRunConfig(t *testing.T) RunConfig {
	t.Helper()
	cfg := RunConfig{Seed: rand.Uint64(), Duration: defaultDuration}
	if testing.Short() {
		cfg.Duration = shortDuration
	}
	if s := os.Getenv(SeedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
		cfg.Seed = seed
	}
	if s := os.Getenv(DurationEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive Go duration such as 30s", DurationEnv, s)
		}
		cfg.Duration = d
	}
	cfg.RunID = NewRunID()
	t.Logf("seed %d (replay the injector schedule with %s=%d), duration %v, run %s",
		cfg.Seed, SeedEnv, cfg.Seed, cfg.Duration, cfg.RunID)
	return cfg
}

// NewRunID returns a name for a run's tables, database and
// application_name that does not clash with a concurrent run, replayed or
// not.
func NewRunID() string { return fmt.Sprintf("%d_%08x", os.Getpid(), rand.Uint32()) }

// A transfer moves amount from account src to account dst. Its key is
// its idempotency key: the ledger's primary key.
type Transfer struct {
	Key      string
	Src, Dst int
	Amount   int64
}

// Outcome is what the caller of one transfer was told.
type Outcome struct {
	Transfer
	Worker     int
	Idempotent bool
	Err        error
	// wrote is false for an acknowledged transfer whose last attempt found
	// the ledger row already written by an earlier, ambiguous attempt, or,
	// from a worker that defaults(), that was given the fallback's default.
	Wrote bool
}

// WorkerSpec is how one worker runs its transfers.
type WorkerSpec struct {
	Idempotent bool // the retry is dbop.Idempotent
	Proxied    bool // through the fault proxy
	LockLimit  bool // per-attempt lock timeout; otherwise statement timeout
	Resolve    bool // InTx resolves lost COMMIT answers (ResolveCommit)
}

func (s WorkerSpec) String() string {
	var parts []string
	if s.Idempotent {
		parts = append(parts, "idempotent")
	} else {
		parts = append(parts, "not idempotent")
	}
	if s.Proxied {
		parts = append(parts, "proxied")
	} else {
		parts = append(parts, "direct")
	}
	if s.LockLimit {
		parts = append(parts, "lock timeout")
	} else {
		parts = append(parts, "statement timeout")
	}
	if s.Resolve {
		parts = append(parts, "ResolveCommit")
	}
	return strings.Join(parts, ", ")
}

// The worker interface of a WorkerSpec: one transaction, one ledger row,
// no fallback.

func (s WorkerSpec) isIdempotent() bool { return s.Idempotent }

func (s WorkerSpec) apart() bool { return false }

func (s WorkerSpec) legs(tr Transfer) []leg {
	return []leg{{tr.Key, LedgerRow{tr.Src, tr.Dst, tr.Amount}}}
}

func (s WorkerSpec) acceptsAmbiguous() bool { return false }

func (s WorkerSpec) defaults() bool { return false }

// A Worker is what RunWorkload and Verify know of a worker's pipeline: a
// WorkerSpec, or a generated pipeline (genPlan).
type Worker interface {
	fmt.Stringer
	// isIdempotent reports whether the retries are dbop.Idempotent.
	isIdempotent() bool
	// legs returns the ledger rows a transfer writes when it is applied.
	legs(tr Transfer) []leg
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

// WorkersOf returns specs as workers.
func WorkersOf(specs []WorkerSpec) []Worker {
	ws := make([]Worker, len(specs))
	for i, s := range specs {
		ws[i] = s
	}
	return ws
}

// A leg is one ledger row of a transfer: key is its idempotency key.
type leg struct {
	key string
	row LedgerRow
}

// WorkerSpecs covers every combination of idempotent × proxied, and each
// kind of per-attempt limit on both halves. The workers that are not
// idempotent resolve lost COMMIT answers (ResolveCommit), so the proxied
// one among them meets the cuts after COMMIT with resolution on.
func WorkerSpecs() []WorkerSpec {
	specs := make([]WorkerSpec, NumWorkers)
	for w := range specs {
		specs[w] = WorkerSpec{
			Idempotent: w < NumWorkers/2,
			Proxied:    w == 2 || w == 5,
			LockLimit:  w%2 == 0,
			Resolve:    w >= NumWorkers/2,
		}
	}
	return specs
}

// TransferFunc applies one transfer through a worker's pipeline, retry
// included, and reports whether this call wrote the ledger row.
type TransferFunc func(ctx context.Context, tr Transfer) (wrote bool, err error)

// InjectFunc causes one fault and returns its kind, or "" when there was
// nothing to hit. slot, dealt by a [deck], chooses the kind: each kind
// takes a range of slots whose bounds are multiples of 5 (slot < 25 is a
// quarter of the deals); rng chooses the rest (the target, how long). It
// runs on the injector goroutine only; a fault that lasts (a row lock held
// for a while) runs its tail with spawn, which the workload joins before
// it returns.
type InjectFunc func(ctx context.Context, slot int, rng *rand.Rand, spawn func(func() error)) (kind string, err error)

// deckSize is how many slots a deck deals before it is shuffled again.
const deckSize = 20

// A deck deals the injector's slots, 0, 5, …, 95, each once in an order
// shuffled with rng, and then shuffles them again. Every deckSize rounds
// each kind of fault is therefore chosen exactly its share of the time, not
// a binomial number of times: how often a kind is tried depends on how
// many rounds the injector ran, not on the seed, and the suites' fault
// minimums can be stated without luck in them (see CheckFaults).
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

// Stats counts faults and retries; it is shared by every goroutine of a
// run.
type Stats struct {
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
	// counts are what a round counts besides faults (Count), checked
	// against Backend.CountMinimums.
	counts map[string]int
}

func NewStats() *Stats {
	return &Stats{faults: map[string]int{}, retryVerdicts: map[string]int{}, retryCauses: map[string]int{},
		history: map[string][]string{}, resolutions: map[scopes.Resolution]int{}, reruns: map[string]int{},
		committedBefore: map[string]bool{}, counts: map[string]int{}}
}

// onResolved is every ResolveCommit worker's scopes.OnCommitResolved.
func (s *Stats) OnResolved(ctx context.Context, r scopes.ResolvedCommit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolutions[r.Resolution]++
	if key, ok := ctx.Value(TransferKey{}).(string); ok {
		s.history[key] = append(s.history[key], fmt.Sprintf("commit answer lost, resolved %v (%v): %v", r.Resolution, r.Elapsed, r.CommitErr))
	}
}

// rerun records that the leg legKey of the transfer ctx names found its
// ledger row already written with plain SQL, whose key refuses a second
// one: the leg ran again after its transaction committed, or, inside a
// transaction, after its savepoint was released.
func (s *Stats) rerun(ctx context.Context, legKey string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, _ := ctx.Value(TransferKey{}).(string)
	s.reruns[key]++
	s.history[key] = append(s.history[key], fmt.Sprintf("leg %s ran again and found its ledger row: %v", legKey, err))
}

// TransferKey is the context key under which a worker passes the key of
// the transfer it runs, for onRetry.
type TransferKey struct{}

func (s *Stats) Fault(kind string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[kind] += n
}

// Count adds n to what the round counts of kind, besides faults: the
// transfers committed in a shared transaction, say (CheckCounts).
func (s *Stats) Count(kind string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[kind] += n
}

func (s *Stats) round() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rounds++
}

// onRetry is every worker's dbop.OnRetry.
func (s *Stats) OnRetry(ctx context.Context, e dbop.AttemptEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries++
	s.retryVerdicts[e.Verdict.String()]++
	s.retryCauses[cause(e.Err)]++
	if key, ok := ctx.Value(TransferKey{}).(string); ok {
		s.history[key] = append(s.history[key], fmt.Sprintf("attempt %d: %v: %v", e.Attempt, e.Verdict, e.Err))
		if toldCommitted(e.Err) {
			s.committedBefore[key] = true
		}
	}
}

// trace returns the retried errors of transfer key, one per line.
func (s *Stats) trace(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.history[key]) == 0 {
		return "\n\t(no retries)"
	}
	return "\n\t" + strings.Join(s.history[key], "\n\t")
}

// RunWorkload runs one worker per spec, each applying transfers between
// random accounts until cfg.duration has passed, while inject causes
// faults at random moments. It returns what every transfer's caller was
// told once all workers and the injector have stopped.
func RunWorkload(t *testing.T, cfg RunConfig, specs []Worker, runs []TransferFunc, inject InjectFunc, st *Stats) []Outcome {
	t.Helper()
	// A hang is a finding: give up well after the planned end.
	ctx, cancel := context.WithTimeout(t.Context(), cfg.Duration+2*time.Minute)
	defer cancel()
	deadline := time.Now().Add(cfg.Duration)

	var mu sync.Mutex
	var outcomes []Outcome
	var wg sync.WaitGroup
	for w, spec := range specs {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)+1))
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				src := rng.IntN(NumAccounts)
				tr := Transfer{
					Key:    fmt.Sprintf("w%d-%d", w, n),
					Src:    src,
					Dst:    (src + 1 + rng.IntN(NumAccounts-1)) % NumAccounts,
					Amount: 1 + rng.Int64N(100),
				}
				wrote, err := runs[w](context.WithValue(ctx, TransferKey{}, tr.Key), tr)
				mu.Lock()
				outcomes = append(outcomes, Outcome{Transfer: tr, Worker: w, Idempotent: spec.isIdempotent(), Err: err, Wrote: wrote})
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
		rng := rand.New(rand.NewPCG(cfg.Seed, 0))
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
				st.Fault(kind, 1)
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

// LedgerRow is one transfer as the ledger recorded it.
type LedgerRow struct {
	Src, Dst int
	Amount   int64
}

// Ambiguous reports whether err told the caller that the transfer may have
// been applied.
func Ambiguous(err error) bool {
	return errors.Is(err, scopes.ErrAmbiguousCommit) || dbop.VerdictOf(err) == dbop.Ambiguous
}

// Verify checks the final state of a run against what the callers were
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
func Verify(t *testing.T, specs []Worker, outcomes []Outcome, ledger map[string]LedgerRow, balances []int64, st *Stats) {
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
		spec := specs[o.Worker]
		legs := spec.legs(o.Transfer)
		var in []string
		for _, l := range legs {
			seen[l.key] = true
			row, inLedger := ledger[l.key]
			if !inLedger {
				continue
			}
			in = append(in, l.key)
			if row != l.row {
				violate("transfer %s: ledger row %s is %+v, the leg was %+v", o.Key, l.key, row, l.row)
			}
		}
		all, none := len(in) == len(legs), len(in) == 0
		st.mu.Lock()
		reruns := st.reruns[o.Key]
		st.mu.Unlock()
		if reruns > 0 {
			violate("transfer %s (worker %d, %s): a leg ran again after it had taken effect (%d times; idempotent %v), told %v\nretried before that:%s",
				o.Key, o.Worker, spec, reruns, o.Idempotent, o.Err, st.trace(o.Key))
		}
		switch {
		case errors.Is(o.Err, errFallback) || o.Err == nil && !o.Wrote && spec.defaults():
			defaulted++
			if !none && !spec.acceptsAmbiguous() {
				violate("transfer %s (worker %d, %s) was given the fallback's default (err %v), yet %d of its %d legs are in the ledger (%v): a default for work that took effect\nretried before that:%s",
					o.Key, o.Worker, spec, o.Err, len(in), len(legs), in, st.trace(o.Key))
			}
		case o.Err == nil:
			acked++
			if !o.Wrote {
				replayed++
			}
			if !all {
				violate("transfer %s (worker %d, %s) was acknowledged but %d of its %d legs are not in the ledger: lost\nretried before that:%s", o.Key, o.Worker, spec, len(legs)-len(in), len(legs), st.trace(o.Key))
			}
		case Ambiguous(o.Err):
			finalCauses[cause(o.Err)]++
			if !none {
				ambiguousApplied++
			} else {
				ambiguousNotYet++
			}
		case spec.apart() && toldCommitted(o.Err):
			toldCommittedN++
			finalCauses["told committed: "+cause(o.Err)]++
			st.mu.Lock()
			before := st.committedBefore[o.Key]
			st.mu.Unlock()
			if all && toldCommittedHolds(len(in), len(legs), o.Idempotent, before) {
				toldCommittedAll++
			}
			if !toldCommittedHolds(len(in), len(legs), o.Idempotent, before) {
				violate("transfer %s (worker %d, %s) was told a step had committed (verdict %v): %v; yet %d of its %d legs are in the ledger\nretried before that:%s",
					o.Key, o.Worker, spec, dbop.VerdictOf(o.Err), o.Err, len(in), len(legs), st.trace(o.Key))
			}
		default:
			failed++
			finalCauses[cause(o.Err)]++
			switch {
			case none:
			case spec.apart() && !all:
				violate("partial and not reported: transfer %s (worker %d, %s) has legs %v of %d in the ledger, yet the error returned is neither ambiguous nor says a step committed (verdict %v): %v\nretried before that:%s",
					o.Key, o.Worker, spec, in, len(legs), dbop.VerdictOf(o.Err), o.Err, st.trace(o.Key))
			default:
				violate("applied but reported failed: transfer %s (worker %d, %s) is in the ledger, yet the error returned is not ambiguous (verdict %v): %v\nretried before that:%s",
					o.Key, o.Worker, spec, dbop.VerdictOf(o.Err), o.Err, st.trace(o.Key))
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
		replay[row.Src] -= row.Amount
		replay[row.Dst] += row.Amount
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
	t.Logf("faults injected in %d injector rounds: %s", st.rounds, Counts(st.faults))
	t.Logf("ambiguous commits (ResolveCommit workers): resolved committed %d / resolved aborted %d / wrote nothing %d / unresolved %d",
		st.resolutions[scopes.Committed], st.resolutions[scopes.Aborted], st.resolutions[scopes.NotWritten], st.resolutions[scopes.Unresolved])
	t.Logf("retries: %d; by verdict: %s", st.retries, Counts(st.retryVerdicts))
	t.Logf("retried causes: %s", Counts(st.retryCauses))
	t.Logf("unacknowledged outcomes by cause: %s", Counts(finalCauses))
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

// Counts formats a count map in key order.
func Counts(m map[string]int) string {
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

// coded returns the code of the first error in err's chain with a Code
// method returning an int (modernc.org/sqlite's), or 0.
func coded(err error) int {
	if e, ok := errors.AsType[interface {
		error
		Code() int
	}](err); ok {
		return e.Code()
	}
	return 0
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
	case coded(err) != 0:
		// modernc.org/sqlite's *sqlite.Error, which this package does
		// not link: its extended result code.
		parts = append(parts, fmt.Sprintf("sqlite %d", coded(err)))
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
