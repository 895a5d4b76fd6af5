// Command contention measures goodput under real contention on PostgreSQL:
// N workers move money between K hot accounts in conflicting transactions,
// once per retry strategy, and the invariants (money conserved, ledger equal
// to the committed transfers, no lost update) are checked after each run.
//
//	go run ./cmd/contention                      # 16 workers, 4 accounts, 10 s per strategy
//	go run ./cmd/contention -short               # 2 s per strategy
//	go run ./cmd/contention -variant deadlock    # READ COMMITTED + FOR UPDATE in random order
//	go run ./cmd/contention -sweep 1ms:100ms:20,5ms:1s:0 -rounds 3
//
// The database is -dsn, else $DBOP_BENCH_POSTGRES, else the local dbop_test
// database. It prints a Markdown table and exits with status 1 when an
// invariant fails (2 on a setup error).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/benchmarks/internal/contention"
)

func main() {
	os.Exit(run())
}

func run() int {
	dsn := os.Getenv("DBOP_BENCH_POSTGRES")
	if dsn == "" {
		dsn = contention.DefaultDSN
	}
	var (
		cfg        contention.Config
		short      = flag.Bool("short", false, "2 s per strategy (overrides -duration)")
		variant    = flag.String("variant", "serializable", "serializable (40001) or deadlock (40P01)")
		strategies = flag.String("strategies", strings.Join(contention.Names, ","), "comma-separated strategies to run")
		sweep      = flag.String("sweep", "", "comma-separated dbop pipelines base:max:attempts[:bulkhead[:lock-timeout]] (attempts and bulkhead 0: none) to run, with the reference, instead of -strategies")
		rounds     = flag.Int("rounds", 1, "run the strategies this many times, interleaved, and summarise by the median")
		verbose    = flag.Bool("v", false, "print each run's duration and an example error of each give-up reason to stderr")
	)
	flag.StringVar(&cfg.DSN, "dsn", dsn, "PostgreSQL connection string ($DBOP_BENCH_POSTGRES)")
	flag.IntVar(&cfg.Workers, "workers", 16, "concurrent workers (pool size)")
	flag.IntVar(&cfg.Accounts, "accounts", 4, "hot accounts")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "time each strategy starts new transfers")
	flag.IntVar(&cfg.Transfers, "transfers", 0, "a fixed number of transfers per strategy instead of -duration")
	flag.DurationVar(&cfg.Drain, "drain", 60*time.Second, "time allowed for transfers in flight at the end of -duration")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of the transfers' accounts and amounts")
	rec := contention.Recommended
	flag.DurationVar(&cfg.DBOP.Base, "base", rec.Base, "dbop: base delay of FullJitter(Exponential(base, max))")
	flag.DurationVar(&cfg.DBOP.Max, "max", rec.Max, "dbop: maximum delay")
	flag.IntVar(&cfg.DBOP.MaxAttempts, "attempts", rec.MaxAttempts, "dbop: MaxAttempts (0: dbop.DefaultMaxAttempts)")
	flag.DurationVar(&cfg.DBOP.LockTimeout, "lock-timeout", rec.LockTimeout, "dbop: pgxdb.LockTimeout on each attempt (0: none)")
	flag.IntVar(&cfg.DBOP.Bulkhead, "bulkhead", rec.Bulkhead, "dbop: cap concurrent attempts with Bulkhead(n) after the retry (0: none)")
	flag.IntVar(&cfg.ImmediateCap, "immediate-cap", 1000, "immediate: attempt limit")
	flag.Parse()
	if *short {
		cfg.Duration = 2 * time.Second
	}
	v, err := contention.ParseVariant(*variant)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.Variant = v

	var list []contention.Strategy
	if *sweep != "" {
		for _, spec := range strings.Split(*sweep, ",") {
			p, err := parseSpec(spec)
			if err != nil {
				fmt.Fprintf(os.Stderr, "-sweep: %v\n", err)
				return 2
			}
			list = append(list, contention.DBOP("dbop "+p.String(), p))
		}
		list = append(list, contention.None("reference", 1))
	} else {
		for _, name := range strings.Split(*strategies, ",") {
			s, err := contention.StrategyByName(strings.TrimSpace(name), cfg)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			list = append(list, s)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	mode := fmt.Sprintf("%v per strategy", cfg.Duration)
	if cfg.Transfers > 0 {
		mode = fmt.Sprintf("%d transfers per strategy", cfg.Transfers)
	}
	fmt.Printf("variant=%s workers=%d accounts=%d %s, GOMAXPROCS=%d\n", cfg.Variant, cfg.Workers, cfg.Accounts, mode, runtime.GOMAXPROCS(0))
	fmt.Printf("dbop: pgxdb.InTx(pool, fn, pgxdb.Isolation(…)).With(%s); dbop+bulkhead adds Bulkhead(%d) unless -bulkhead is set\n\n",
		cfg.DBOP, contention.HotSpotBulkhead)
	contention.TableHeader(os.Stdout)

	var results []contention.Result
	failed := false
	for range max(*rounds, 1) {
		for _, s := range list {
			r, err := contention.Run(ctx, cfg, s)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
				return 2
			}
			contention.Row(os.Stdout, r)
			if *verbose {
				fmt.Fprintf(os.Stderr, "%s: %v from the first transfer to the last\n", r.Strategy, r.Elapsed)
				for why, msg := range r.Sample {
					fmt.Fprintf(os.Stderr, "%s: gave up (%s): %s\n", r.Strategy, why, msg)
				}
			}
			results = append(results, r)
			if !r.Invariants.OK() {
				failed = true
			}
		}
	}
	if *rounds > 1 {
		fmt.Printf("\nmedian of %d rounds:\n\n", *rounds)
		contention.MedianHeader(os.Stdout)
		for _, s := range list {
			var rs []contention.Result
			for _, r := range results {
				if r.Strategy == s.Name {
					rs = append(rs, r)
				}
			}
			contention.MedianRow(os.Stdout, contention.Summarize(rs))
		}
	}

	fmt.Println()
	passed := 0
	for _, r := range results {
		iv := r.Invariants
		if iv.OK() {
			passed++
			continue
		}
		fmt.Printf("invariants FAIL %s: %s (balances sum %d, ledger %d rows / %d committed, amounts %d / %d)\n",
			r.Strategy, strings.Join(iv.Failures(), "; "), iv.BalanceSum, iv.LedgerRows, iv.WantRows, iv.LedgerSum, iv.WantSum)
	}
	fmt.Printf("invariants hold in %d of %d runs: balances sum to 0, the ledger holds exactly the committed transfers (count and sum), every balance equals its ledger net\n",
		passed, len(results))
	printTargets(results)
	if failed {
		fmt.Println("FAIL")
		return 1
	}
	fmt.Println("PASS")
	return 0
}

// parseSpec parses base:max:attempts[:bulkhead[:lock-timeout]].
func parseSpec(spec string) (contention.DBOPParams, error) {
	var p contention.DBOPParams
	f := strings.Split(strings.TrimSpace(spec), ":")
	if len(f) < 3 || len(f) > 5 {
		return p, fmt.Errorf("%q: want base:max:attempts[:bulkhead[:lock-timeout]]", spec)
	}
	var err error
	if p.Base, err = time.ParseDuration(f[0]); err != nil {
		return p, err
	}
	if p.Max, err = time.ParseDuration(f[1]); err != nil {
		return p, err
	}
	if p.MaxAttempts, err = strconv.Atoi(f[2]); err != nil {
		return p, err
	}
	if len(f) >= 4 {
		if p.Bulkhead, err = strconv.Atoi(f[3]); err != nil {
			return p, err
		}
	}
	if len(f) == 5 {
		if p.LockTimeout, err = time.ParseDuration(f[4]); err != nil {
			return p, err
		}
	}
	if p.Base <= 0 || p.Max < p.Base || p.MaxAttempts < 0 || p.Bulkhead < 0 {
		return p, fmt.Errorf("%q: want 0 < base <= max, attempts >= 0, bulkhead >= 0", spec)
	}
	return p, nil
}

// printTargets compares the dbop strategies with the targets and the
// reference, on the medians of the rounds.
func printTargets(results []contention.Result) {
	byName := map[string][]contention.Result{}
	for _, r := range results {
		byName[r.Strategy] = append(byName[r.Strategy], r)
	}
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, name := range []string{"dbop", "dbop+bulkhead"} {
		d, ok := byName[name]
		if !ok {
			continue
		}
		sum := contention.Summarize(d)
		fmt.Printf("\n%s targets:\n", name)
		if ref, ok := byName["reference"]; ok {
			refSum := contention.Summarize(ref)
			fmt.Printf("  goodput >= reference: %s (%.0f vs %.0f tx/s, median)\n", yes(sum.Goodput >= refSum.Goodput), sum.Goodput, refSum.Goodput)
		}
		fmt.Printf("  zero give-ups:        %s (%d)\n", yes(sum.GiveUps == 0), sum.GiveUps)
		fmt.Printf("  p99 < 250 ms:         %s (worst round %v; %d transfers over 250 ms, slowest %v)\n",
			yes(sum.WorstP99 < contention.SlowThreshold), sum.WorstP99.Round(100*time.Microsecond), sum.Slow, sum.Max.Round(time.Millisecond))
	}
}
