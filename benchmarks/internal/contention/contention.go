// Package contention measures goodput under real contention: workers moving
// money between a few hot accounts of a PostgreSQL, MariaDB or Galera
// database, in transactions that conflict, under several retry strategies,
// from one OS process or several. After each run it checks that no money
// was created or lost and that the ledger holds exactly the committed
// transfers.
package contention

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// SlowThreshold is the p99 latency target of a transfer: Result.Slow counts
// the committed transfers that took longer.
const SlowThreshold = 250 * time.Millisecond

// MaxThreshold is the target for the slowest committed transfer.
const MaxThreshold = 500 * time.Millisecond

// DefaultDSN is the PostgreSQL database used when none is given.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/dbop_test?sslmode=disable"

// DefaultMySQLDSN is the MariaDB database used when none is given.
const DefaultMySQLDSN = "root@tcp(127.0.0.1:3306)/dbop_test?parseTime=true"

// Bucket is the width of the goodput-over-time series.
const Bucket = 100 * time.Millisecond

// Config describes a run.
type Config struct {
	Backend  Backend
	Workers  int // concurrent workers in all, each with its own connection
	Accounts int // hot accounts, at least 2
	// Cold is how many more accounts the table holds that no transfer
	// touches, numbered after the hot ones. A table of a few rows is
	// read by sequential scan, and PostgreSQL's SERIALIZABLE then takes a
	// predicate lock on the whole table (docs/backends.md §1.15), so that
	// transfers between disjoint accounts conflict; with cold rows the
	// planner reads by primary key and locks only the rows read.
	Cold     int
	Duration time.Duration // how long workers start new transfers
	// Processes, when above 1, splits the workers among that many OS
	// processes (the running executable, started again; see ChildMain),
	// which start together and whose results are added up.
	Processes int
	// Stagger, when positive, starts process i (from 0) i×Stagger after
	// the first; all stop starting transfers at the same time. It shows
	// what a process meets that starts, or comes back, while the others
	// are busy with the rows.
	Stagger time.Duration
	// Transfers, when positive, replaces Duration: the run ends after this
	// many transfers (committed or given up), shared among the workers.
	Transfers int
	// Drain bounds how long transfers in flight at the end of Duration may
	// take to finish: it ends their waits, never a transaction in flight.
	Drain time.Duration
	// NoLockTables drops the tables whose locks dbop.HotSpot takes
	// (pgxdb.CreateHotSpotLocks, mysqldb.CreateHotSpotLocks) instead of
	// creating them, as an application without that migration: on
	// PostgreSQL HotSpot then takes an advisory lock, on MariaDB none.
	NoLockTables bool
	// Pool, when above 0, is how many connections each process opens
	// for its workers to share (at most one per worker); 0 opens one
	// per worker. The reference always has one.
	Pool         int
	Variant      Variant
	Seed         uint64
	DBOP         DBOPParams
	ImmediateCap int // attempt limit of the immediate strategy
}

// Result is what one strategy achieved.
type Result struct {
	Strategy  string
	Backend   string
	Variant   Variant
	Workers   int
	Processes int
	Window    time.Duration // the measurement window: Duration, or the whole run with Transfers
	Elapsed   time.Duration // from the first transfer's start to the last one's end
	Commits   int64         // committed transfers, drained ones included
	InWindow  int64         // transfers committed within the window
	Attempts  int64         // runs of the transaction body, for committed and given-up transfers alike
	GiveUps   int64
	GiveUpWhy map[string]int64  // give-ups by reason
	Sample    map[string]string // the first error of each reason
	P50, P99  time.Duration     // latency of a committed transfer, retries and waits included
	Max       time.Duration
	Slow      int64 // committed transfers slower than SlowThreshold
	// MaxTries is the most attempts one committed transfer needed;
	// P99Tries the 99th percentile.
	MaxTries, P99Tries int
	// Series counts the transfers committed in each Bucket of the window.
	Series []int64
	// Latencies are every committed transfer's latency, sorted.
	Latencies  []time.Duration
	Invariants Invariants
}

// Goodput is transfers committed within the window per second of it.
// Transfers in flight when the window closes are drained and checked, but
// not counted: a strategy whose stragglers finish late gains nothing, and
// the latency columns show what they waited.
func (r Result) Goodput() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.InWindow) / r.Window.Seconds()
}

// AttemptsPerCommit is transactions begun per committed transfer.
func (r Result) AttemptsPerCommit() float64 {
	if r.Commits == 0 {
		return 0
	}
	return float64(r.Attempts) / float64(r.Commits)
}

// Reasons formats GiveUpWhy, most frequent first.
func (r Result) Reasons() string {
	type kv struct {
		k string
		v int64
	}
	var list []kv
	for k, v := range r.GiveUpWhy {
		list = append(list, kv{k, v})
	}
	slices.SortFunc(list, func(a, b kv) int { return cmp.Or(cmp.Compare(b.v, a.v), cmp.Compare(a.k, b.k)) })
	var parts []string
	for _, e := range list {
		parts = append(parts, fmt.Sprintf("%s×%d", e.k, e.v))
	}
	return strings.Join(parts, " ")
}

// Run resets the tables, runs s under cfg and checks the invariants. The
// returned error is for setup failures; give-ups and broken invariants are
// in the Result. The reference (a strategy with its own worker count) always
// runs in one process.
func Run(ctx context.Context, cfg Config, s Strategy) (Result, error) {
	if cfg.Accounts < 2 {
		return Result{}, fmt.Errorf("need at least 2 accounts, got %d", cfg.Accounts)
	}
	if cfg.Cold < 0 {
		return Result{}, fmt.Errorf("cold accounts must not be negative, got %d", cfg.Cold)
	}
	if cfg.Stagger < 0 {
		return Result{}, fmt.Errorf("stagger must not be negative, got %v", cfg.Stagger)
	}
	if last := time.Duration(max(cfg.Processes, 1)-1) * cfg.Stagger; cfg.Stagger > 0 && (cfg.Transfers > 0 || last >= cfg.Duration) {
		return Result{}, fmt.Errorf("stagger %v: the last process would start %v after the first, which needs a -duration longer than that and no -transfers (duration %v, transfers %d)", cfg.Stagger, last, cfg.Duration, cfg.Transfers)
	}
	workers := cfg.Workers
	procs := max(cfg.Processes, 1)
	if s.Workers > 0 {
		workers, procs = s.Workers, 1
	}
	if workers < procs {
		return Result{}, fmt.Errorf("need at least one worker per process, got %d workers for %d processes", workers, procs)
	}

	adm, err := cfg.Backend.connectAdmin(ctx)
	if err != nil {
		return Result{}, err
	}
	defer adm.close()
	if err := adm.reset(ctx, cfg.Accounts+cfg.Cold, !cfg.NoLockTables); err != nil {
		return Result{}, err
	}

	var p partial
	if procs == 1 {
		p, err = runProcess(ctx, cfg, s, workers, 0, nil)
	} else {
		p, err = runFleet(ctx, cfg, s, workers, procs)
	}
	if err != nil {
		return Result{}, err
	}
	r := p.result(cfg, s.Name, workers, procs)
	r.Invariants = adm.check(ctx, r.Commits, p.Sum)
	return r, nil
}

// partial is what one process measured; a fleet's partials are added up.
type partial struct {
	Commits, InWindow, Attempts, GiveUps, Sum int64
	Why                                       map[string]int64
	Sample                                    map[string]string
	Latencies                                 []time.Duration
	Tries                                     []int
	Series                                    []int64
	Elapsed                                   time.Duration
}

func (p *partial) add(q partial) {
	p.Commits += q.Commits
	p.InWindow += q.InWindow
	p.Attempts += q.Attempts
	p.GiveUps += q.GiveUps
	p.Sum += q.Sum
	if p.Why == nil {
		p.Why, p.Sample = map[string]int64{}, map[string]string{}
	}
	for k, v := range q.Why {
		p.Why[k] += v
	}
	for k, v := range q.Sample {
		p.Sample[k] = v
	}
	p.Latencies = append(p.Latencies, q.Latencies...)
	p.Tries = append(p.Tries, q.Tries...)
	for i, n := range q.Series {
		if i >= len(p.Series) {
			p.Series = append(p.Series, 0)
		}
		p.Series[i] += n
	}
	p.Elapsed = max(p.Elapsed, q.Elapsed)
}

func (p partial) result(cfg Config, name string, workers, procs int) Result {
	window := cfg.Duration
	if cfg.Transfers > 0 {
		window = p.Elapsed
	}
	r := Result{
		Strategy:  name,
		Backend:   cfg.Backend.String(),
		Variant:   cfg.Variant,
		Workers:   workers,
		Processes: procs,
		Window:    window,
		Elapsed:   p.Elapsed,
		Commits:   p.Commits,
		InWindow:  p.InWindow,
		Attempts:  p.Attempts,
		GiveUps:   p.GiveUps,
		GiveUpWhy: p.Why,
		Sample:    p.Sample,
		Series:    p.Series,
	}
	if r.GiveUpWhy == nil {
		r.GiveUpWhy, r.Sample = map[string]int64{}, map[string]string{}
	}
	lat := slices.Clone(p.Latencies)
	slices.Sort(lat)
	r.Latencies = lat
	r.P50, r.P99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	for i := len(lat) - 1; i >= 0 && lat[i] > SlowThreshold; i-- {
		r.Slow++
	}
	tries := slices.Clone(p.Tries)
	slices.Sort(tries)
	r.P99Tries, r.MaxTries = percentile(tries, 99), percentile(tries, 100)
	return r
}

// runProcess runs workers workers of process index in this process. When
// ready is not nil it is called once the connections are open, and returns
// the time to start at.
func runProcess(ctx context.Context, cfg Config, s Strategy, workers, index int, ready func() (time.Time, error)) (partial, error) {
	conns := workers
	if cfg.Pool > 0 {
		conns = min(cfg.Pool, workers)
	}
	pl, err := cfg.Backend.open(ctx, cfg.Variant, workers, conns)
	if err != nil {
		return partial{}, err
	}
	defer pl.Close()
	start := time.Now()
	if ready != nil {
		if start, err = ready(); err != nil {
			return partial{}, err
		}
		time.Sleep(time.Until(start))
	}
	return work(ctx, cfg, s, pl.dbs, index, start), nil
}

// worker tallies are merged once at the end.
type tally struct {
	commits, giveUps, sum int64
	inWindow              int64
	latencies             []time.Duration
	tries                 []int
	why                   map[string]int64
	sample                map[string]string
	series                []int64
}

// idBits leaves room for each process's transfer ids: process i numbers
// its transfers from i<<idBits.
const idBits = 40

func work(ctx context.Context, cfg Config, s Strategy, dbs []DB, index int, start time.Time) partial {
	workers := len(dbs)
	var (
		attempts atomic.Int64
		claimed  atomic.Int64
		wg       sync.WaitGroup
		tallies  = make([]tally, workers)
	)
	deadline := start.Add(cfg.Duration)
	// At the deadline workers stop starting transfers; those in flight may
	// finish during the drain period. Its end stops their waits, not their
	// transactions (see Strategy).
	drainEnd := deadline.Add(cfg.Drain)
	quota := int64(0)
	if cfg.Transfers > 0 {
		drainEnd = time.Time{} // no deadline: the run ends when the transfers are done
		procs := int64(max(cfg.Processes, 1))
		quota = int64(cfg.Transfers) / procs
		if int64(index) < int64(cfg.Transfers)%procs {
			quota++
		}
	}
	runCtx, cancel := withOptionalDeadline(ctx, drainEnd)
	defer cancel()
	runCtx = context.WithValue(runCtx, drainKey{}, drainEnd)
	sqls := cfg.Backend.statements()
	buckets := int(cfg.Duration / Bucket)
	if s.Start != nil {
		stop := s.Start()
		defer stop()
	}

	for w := range workers {
		wg.Go(func() {
			t := &tallies[w]
			t.why = map[string]int64{}
			t.sample = map[string]string{}
			t.series = make([]int64, buckets)
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(index)<<16|uint64(w)))
			db := dbs[w]
			if cfg.Stagger > 0 && index > 0 {
				wait := time.NewTimer(time.Duration(index) * cfg.Stagger)
				select {
				case <-wait.C:
				case <-runCtx.Done():
					wait.Stop()
					return
				}
			}
			for {
				n := claimed.Add(1)
				if cfg.Transfers > 0 && n > quota {
					return
				}
				if cfg.Transfers <= 0 && !time.Now().Before(deadline) {
					return
				}
				tr := newTransfer(rng, int64(index)<<idBits|n, cfg.Accounts)
				begun := time.Now()
				tries := 0
				err := s.Transfer(context.WithValue(runCtx, transferKey{}, tr), db, func(ctx context.Context, tx Tx) error {
					tries++
					return cfg.Variant.body(ctx, tx, sqls, tr)
				})
				ended := time.Now()
				attempts.Add(int64(tries))
				if err != nil {
					t.giveUps++
					why := reason(err)
					if t.why[why]++; t.why[why] == 1 {
						t.sample[why] = err.Error()
					}
					continue
				}
				t.commits++
				if cfg.Transfers > 0 || ended.Before(deadline) {
					t.inWindow++
					if b := int(ended.Sub(start) / Bucket); b >= 0 && b < buckets {
						t.series[b]++
					}
				}
				t.sum += tr.Amount
				t.latencies = append(t.latencies, ended.Sub(begun))
				t.tries = append(t.tries, tries)
			}
		})
	}
	wg.Wait()

	p := partial{Elapsed: time.Since(start), Attempts: attempts.Load(), Why: map[string]int64{}, Sample: map[string]string{}}
	for _, t := range tallies {
		p.add(partial{
			Commits: t.commits, InWindow: t.inWindow, GiveUps: t.giveUps, Sum: t.sum,
			Why: t.why, Sample: t.sample, Latencies: t.latencies, Tries: t.tries, Series: t.series,
		})
	}
	return p
}

// withOptionalDeadline is context.WithDeadline, or WithCancel for a zero t.
func withOptionalDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	if t.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, t)
}

type transferKey struct{}

// TransferOf returns the transfer a Strategy's Transfer was called for.
func TransferOf(ctx context.Context) Transfer {
	t, _ := ctx.Value(transferKey{}).(Transfer)
	return t
}

// newTransfer picks two distinct accounts, an amount and a lock order.
func newTransfer(rng *rand.Rand, id int64, accounts int) Transfer {
	from := rng.IntN(accounts)
	to := (from + 1 + rng.IntN(accounts-1)) % accounts
	return Transfer{
		ID:          id,
		From:        int32(from + 1),
		To:          int32(to + 1),
		Amount:      1 + rng.Int64N(100),
		LockToFirst: rng.IntN(2) == 1,
	}
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile[T any](sorted []T, p int) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100·n)
	return sorted[max(rank, 1)-1]
}

// reason names why a transfer was given up: the SQLSTATE or error number
// of the last error, prefixed when a retry limit ended it.
func reason(err error) string {
	var why string
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		why = "cancelled at drain"
	default:
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
			why = pgErr.Code
		} else if myErr, ok := errors.AsType[*mysql.MySQLError](err); ok {
			why = fmt.Sprint(myErr.Number)
		} else {
			why = err.Error()
		}
	}
	if errors.Is(err, dbop.ErrRetriesExhausted) {
		why = "exhausted:" + why
	}
	return why
}
