// Package contention measures goodput under real contention: workers moving
// money between a few hot accounts of a PostgreSQL database, in
// transactions that conflict, under several retry strategies. After each run
// it checks that no money was created or lost and that the ledger holds
// exactly the committed transfers.
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
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SlowThreshold is the latency target of a transfer: Result.Slow counts
// the committed transfers that took longer.
const SlowThreshold = 250 * time.Millisecond

// DefaultDSN is the database used when none is given.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/dbop_test?sslmode=disable"

// Config describes a run.
type Config struct {
	DSN      string
	Workers  int           // concurrent workers, each with its own connection
	Accounts int           // hot accounts, at least 2
	Duration time.Duration // how long workers start new transfers
	// Transfers, when positive, replaces Duration: the run ends after this
	// many transfers (committed or given up), shared among the workers.
	Transfers int
	// Drain bounds how long transfers in flight at the end of Duration may
	// take to finish; those still running then are cancelled and count as
	// given up.
	Drain        time.Duration
	Variant      Variant
	Seed         uint64
	DBOP         DBOPParams
	ImmediateCap int // attempt limit of the immediate strategy
}

// Result is what one strategy achieved.
type Result struct {
	Strategy  string
	Workers   int
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
	Invariants         Invariants
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
// in the Result.
func Run(ctx context.Context, cfg Config, s Strategy) (Result, error) {
	if cfg.Accounts < 2 {
		return Result{}, fmt.Errorf("need at least 2 accounts, got %d", cfg.Accounts)
	}
	workers := cfg.Workers
	if s.Workers > 0 {
		workers = s.Workers
	}
	if workers < 1 {
		return Result{}, fmt.Errorf("need at least 1 worker, got %d", workers)
	}

	admin, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return Result{}, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
		return Result{}, fmt.Errorf("advisory lock: %w", err)
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey))
	if err := reset(ctx, admin, cfg.Accounts); err != nil {
		return Result{}, err
	}

	pool, err := newPool(ctx, cfg.DSN, workers)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()

	res := run(ctx, cfg, s, pool, workers)
	res.Invariants = check(ctx, admin, res.Commits, res.committedSum)
	return res.Result, nil
}

// newPool opens a pool of exactly workers connections, all established
// before the clock starts.
func newPool(ctx context.Context, dsn string, workers int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	pc.MaxConns = int32(workers)
	pc.MinConns = int32(workers)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	conns := make([]*pgxpool.Conn, 0, workers)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range workers {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("warm the pool: %w", err)
		}
		conns = append(conns, c)
	}
	return pool, nil
}

type runResult struct {
	Result
	committedSum int64
}

// worker tallies are merged once at the end.
type tally struct {
	commits, giveUps, sum int64
	inWindow              int64
	latencies             []time.Duration
	tries                 []int
	why                   map[string]int64
	sample                map[string]string
}

func run(ctx context.Context, cfg Config, s Strategy, pool *pgxpool.Pool, workers int) runResult {
	var (
		attempts atomic.Int64
		claimed  atomic.Int64
		wg       sync.WaitGroup
		tallies  = make([]tally, workers)
	)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	// At the deadline workers stop starting transfers; those in flight may
	// finish during the drain period. Its end stops their waits, not their
	// transactions (see Strategy).
	drainEnd := deadline.Add(cfg.Drain)
	if cfg.Transfers > 0 {
		drainEnd = time.Time{} // no deadline: the run ends when the transfers are done
	}
	runCtx, cancel := withOptionalDeadline(ctx, drainEnd)
	defer cancel()
	opts := cfg.Variant.TxOptions()

	for w := range workers {
		wg.Go(func() {
			t := &tallies[w]
			t.why = map[string]int64{}
			t.sample = map[string]string{}
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			for {
				id := claimed.Add(1)
				if cfg.Transfers > 0 && id > int64(cfg.Transfers) {
					return
				}
				if cfg.Transfers <= 0 && !time.Now().Before(deadline) {
					return
				}
				tr := newTransfer(rng, id, cfg.Accounts)
				begun := time.Now()
				tries := 0
				err := s.Transfer(runCtx, pool, opts, func(ctx context.Context, tx pgx.Tx) error {
					tries++
					return cfg.Variant.body(ctx, tx, tr)
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
				}
				t.sum += tr.Amount
				t.latencies = append(t.latencies, ended.Sub(begun))
				t.tries = append(t.tries, tries)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	window := cfg.Duration
	if cfg.Transfers > 0 {
		window = elapsed
	}

	r := runResult{Result: Result{
		Strategy:  s.Name,
		Workers:   workers,
		Window:    window,
		Elapsed:   elapsed,
		Attempts:  attempts.Load(),
		GiveUpWhy: map[string]int64{},
		Sample:    map[string]string{},
	}}
	var lat []time.Duration
	var tries []int
	for _, t := range tallies {
		r.Commits += t.commits
		r.InWindow += t.inWindow
		tries = append(tries, t.tries...)
		r.GiveUps += t.giveUps
		r.committedSum += t.sum
		lat = append(lat, t.latencies...)
		for k, v := range t.why {
			r.GiveUpWhy[k] += v
		}
		for k, v := range t.sample {
			r.Sample[k] = v
		}
	}
	slices.Sort(lat)
	r.P50, r.P99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	for i := len(lat) - 1; i >= 0 && lat[i] > SlowThreshold; i-- {
		r.Slow++
	}
	slices.Sort(tries)
	r.P99Tries, r.MaxTries = percentile(tries, 99), percentile(tries, 100)
	return r
}

// withOptionalDeadline is context.WithDeadline, or WithCancel for a zero t.
func withOptionalDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	if t.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, t)
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

// reason names why a transfer was given up: the SQLSTATE of the last
// error, prefixed when a retry limit ended it.
func reason(err error) string {
	var why string
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		why = "cancelled at drain"
	case errors.As(err, &pgErr):
		why = pgErr.Code
	default:
		why = err.Error()
	}
	if errors.Is(err, dbop.ErrRetriesExhausted) {
		why = "exhausted:" + why
	}
	return why
}
