// Command contention measures goodput under real contention: N workers move
// money between K hot accounts in conflicting transactions, once per retry
// strategy, against PostgreSQL, MariaDB or a Galera cluster, from one OS
// process or several, and the invariants (money conserved, ledger equal to
// the committed transfers, no lost update) are checked after each run.
//
//	go run ./cmd/contention                           # PostgreSQL, serializable, 16 workers, 4 accounts, 10 s per strategy
//	go run ./cmd/contention -short                    # 2 s per strategy
//	go run ./cmd/contention -variant lockcycle        # writes in the transfer's order: lock cycles
//	go run ./cmd/contention -backend mariadb          # MariaDB through database/sql and sqldb
//	go run ./cmd/contention -processes 2              # the workers split between 2 OS processes
//	go run ./cmd/contention -rounds 3 -charts results/pg-serializable
//	go run ./cmd/contention -sweep 1ms:100ms:20,5ms:1s:0 -rounds 3
//
// PostgreSQL is -dsn, else $DBOP_BENCH_POSTGRES, else $DBOP_TEST_POSTGRES,
// else the local dbop_test database; MariaDB is -mysql-dsn, else
// $DBOP_BENCH_MYSQL, else $DBOP_TEST_MYSQL, else the local dbop_test
// database; Galera is -galera, else $DBOP_BENCH_GALERA, else
// $DBOP_TEST_GALERA (comma-separated DSNs, one per node). It prints
// Markdown tables and exits with status 1 when an invariant fails (2 on a
// setup error).
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/dbop-go/dbop/benchmarks/internal/contention"
)

func main() {
	if os.Getenv(contention.ChildEnv) != "" {
		os.Exit(contention.ChildMain())
	}
	os.Exit(run())
}

func run() int {
	var (
		cfg        contention.Config
		short      = flag.Bool("short", false, "2 s per strategy (overrides -duration)")
		backend    = flag.String("backend", "postgres", "postgres, mariadb or galera")
		pgDSN      = flag.String("dsn", cmp.Or(os.Getenv("DBOP_BENCH_POSTGRES"), os.Getenv("DBOP_TEST_POSTGRES"), contention.DefaultDSN), "PostgreSQL connection string")
		myDSN      = flag.String("mysql-dsn", cmp.Or(os.Getenv("DBOP_BENCH_MYSQL"), os.Getenv("DBOP_TEST_MYSQL"), contention.DefaultMySQLDSN), "MariaDB DSN (go-sql-driver)")
		galera     = flag.String("galera", cmp.Or(os.Getenv("DBOP_BENCH_GALERA"), os.Getenv("DBOP_TEST_GALERA")), "Galera node DSNs, comma-separated")
		variant    = flag.String("variant", "serializable", "serializable, lockcycle or deadlock")
		strategies = flag.String("strategies", "", "comma-separated strategies to run, of "+strings.Join(contention.Names, ",")+" (default: every one that runs with the other flags; pglock only on postgres with the lock tables)")
		sweep      = flag.String("sweep", "", "comma-separated dbop pipelines base:max:attempts[:bulkhead[:lock-timeout[:hotspot]]] (attempts and bulkhead 0: none; hotspot 1: HotSpot() after the retry) to run, with the reference, instead of -strategies")
		rounds     = flag.Int("rounds", 1, "run the strategies this many times, interleaved, and summarise by the median")
		charts     = flag.String("charts", "", "write PREFIX-goodput.png and PREFIX-latency.png")
		limits     = flag.String("limits", "adapter", "how an attempt's deadline becomes server-side limits: standin (the benchmark sets them and takes the deadline off the context) or adapter (the adapters derive them, the deadline stays)")
		verbose    = flag.Bool("v", false, "print each run's duration and an example error of each give-up reason to stderr")
		cpuProfile = flag.String("cpuprofile", "", "write this process's CPU profile (the workers of one process, -processes 1) to the file")
	)
	flag.IntVar(&cfg.Workers, "workers", 16, "concurrent workers in all (each with a connection of its own, unless -pool)")
	flag.IntVar(&cfg.Processes, "processes", 1, "OS processes the workers are split among (the reference always runs in one)")
	flag.IntVar(&cfg.Accounts, "accounts", 4, "hot accounts")
	flag.IntVar(&cfg.Cold, "cold", 0, "more accounts in the table that no transfer touches (PostgreSQL then reads the hot ones by index, and SERIALIZABLE locks rows instead of the table)")
	flag.DurationVar(&cfg.Stagger, "stagger", 0, "start process i (from 0) i×stagger after the first; all stop together")
	flag.IntVar(&cfg.Pool, "pool", 0, "connections per process, shared by its workers (0: one per worker)")
	flag.BoolVar(&cfg.NoLockTables, "no-lock-tables", false, "drop dbop.HotSpot's lock tables instead of creating them (PostgreSQL: HotSpot takes an advisory lock; MariaDB: none)")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "time each strategy starts new transfers")
	flag.IntVar(&cfg.Transfers, "transfers", 0, "a fixed number of transfers per strategy instead of -duration")
	flag.DurationVar(&cfg.Drain, "drain", 60*time.Second, "time allowed for transfers in flight at the end of -duration")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of the transfers' accounts and amounts")
	rec := contention.Recommended
	flag.DurationVar(&cfg.DBOP.Base, "base", rec.Base, "dbop: base delay of FullJitter(Exponential(base, max))")
	flag.DurationVar(&cfg.DBOP.Max, "max", rec.Max, "dbop: maximum delay")
	flag.IntVar(&cfg.DBOP.MaxAttempts, "attempts", rec.MaxAttempts, "dbop: MaxAttempts (0: dbop's default)")
	flag.DurationVar(&cfg.DBOP.LockTimeout, "lock-timeout", rec.LockTimeout, "dbop: the adapter's LockTimeout on each attempt (0: none)")
	flag.IntVar(&cfg.DBOP.Bulkhead, "bulkhead", rec.Bulkhead, "dbop: cap concurrent attempts with Bulkhead(n) after the retry (0: none)")
	flag.IntVar(&cfg.ImmediateCap, "immediate-cap", 1000, "immediate: attempt limit")
	flag.Parse()
	if *short {
		cfg.Duration = 2 * time.Second
	}
	switch *limits {
	case "standin":
	case "adapter":
		cfg.DBOP.AdapterLimits = true
	default:
		fmt.Fprintf(os.Stderr, "-limits %q: want standin or adapter\n", *limits)
		return 2
	}
	kind, err := contention.ParseKind(*backend)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.Backend.Kind = kind
	switch kind {
	case contention.Postgres:
		cfg.Backend.DSNs = []string{*pgDSN}
	case contention.MariaDB:
		cfg.Backend.DSNs = []string{*myDSN}
	case contention.Galera:
		if *galera == "" {
			fmt.Fprintln(os.Stderr, "-backend galera: no DSNs (-galera, $DBOP_BENCH_GALERA or $DBOP_TEST_GALERA; scripts/clusters.sh env)")
			return 2
		}
		cfg.Backend.DSNs = strings.Split(*galera, ",")
	}
	if cfg.Variant, err = contention.ParseVariant(*variant); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	var names []string
	if *sweep != "" {
		for _, spec := range strings.Split(*sweep, ",") {
			names = append(names, "dbop "+strings.TrimSpace(spec))
		}
		names = append(names, "reference")
	} else if *strategies == "" {
		names = contention.NamesFor(cfg)
	} else {
		for _, name := range strings.Split(*strategies, ",") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	for _, name := range names {
		if _, err := contention.StrategyByName(name, cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	mode := fmt.Sprintf("%v per strategy", cfg.Duration)
	if cfg.Transfers > 0 {
		mode = fmt.Sprintf("%d transfers per strategy", cfg.Transfers)
	}
	if cfg.Pool > 0 {
		mode += fmt.Sprintf(", %d connection(s) per process shared by its workers", cfg.Pool)
	}
	if cfg.Stagger > 0 {
		mode += fmt.Sprintf(", process i starts i×%v after the first", cfg.Stagger)
	}
	cold := ""
	if cfg.Cold > 0 {
		cold = fmt.Sprintf(" (+%d cold)", cfg.Cold)
	}
	fmt.Printf("backend=%s variant=%s workers=%d processes=%d accounts=%d%s %s, GOMAXPROCS=%d\n",
		cfg.Backend, cfg.Variant, cfg.Workers, max(cfg.Processes, 1), cfg.Accounts, cold, mode, runtime.GOMAXPROCS(0))
	fmt.Printf("dbop: InTx(…).With(%s); dbop+bulkhead adds Bulkhead(%d), dbop+hotspot adds HotSpot(), dbop+share pgxdb.ShareCommits(); attempt deadlines to server limits: -limits %s\n",
		cfg.DBOP, contention.HotSpotBulkhead, *limits)
	fmt.Printf("load before: %s\n\n", loadavg())
	contention.TableHeader(os.Stdout)

	var results []contention.Result
	failed := false
	for range max(*rounds, 1) {
		for _, name := range names {
			s, _ := contention.StrategyByName(name, cfg) // a fresh pipeline, and HotSpot, per run
			r, err := contention.Run(ctx, cfg, s)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
				return 2
			}
			contention.Row(os.Stdout, r)
			if *verbose {
				fmt.Fprintf(os.Stderr, "%s: %v from the first transfer to the last; load %s\n", r.Strategy, r.Elapsed, loadavg())
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
	fmt.Printf("\nload after: %s\n", loadavg())

	byName := map[string][]contention.Result{}
	for _, r := range results {
		byName[r.Strategy] = append(byName[r.Strategy], r)
	}
	fmt.Printf("\nmedian of %d round(s); × reference is each round's goodput over the reference's in the same round:\n\n", max(*rounds, 1))
	contention.MedianHeader(os.Stdout)
	for _, name := range names {
		contention.MedianRow(os.Stdout, contention.Summarize(byName[name], byName["reference"]))
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

	// The default answers: pgxdb.ShareCommits on PostgreSQL, HotSpot.
	for _, name := range []string{"dbop+share", "dbop+hotspot"} {
		hs, ok := byName[name]
		if !ok || len(byName["reference"]) == 0 {
			continue
		}
		goal := contention.Goal{MinRatio: 1.0}
		if cfg.Processes > 1 || kind == contention.Galera {
			goal.MinRatio = 0.9
		}
		met, lines := goal.Check(contention.Summarize(hs, byName["reference"]))
		fmt.Printf("\n%s against the goal (%s, %d process(es)):\n", name, cfg.Backend, max(cfg.Processes, 1))
		for _, l := range lines {
			fmt.Println("  " + l)
		}
		if met {
			fmt.Println("  goal met")
		} else {
			fmt.Println("  goal MISSED")
		}
	}

	if *charts != "" {
		title := fmt.Sprintf("%s %s, %d workers in %d process(es)", cfg.Backend, cfg.Variant, cfg.Workers, max(cfg.Processes, 1))
		if err := contention.WriteCharts(*charts, title, results); err != nil {
			fmt.Fprintln(os.Stderr, "charts:", err)
			return 2
		}
		fmt.Printf("\ncharts: %s-goodput.png, %s-latency.png\n", *charts, *charts)
	}
	if failed {
		fmt.Println("FAIL")
		return 1
	}
	fmt.Println("PASS")
	return 0
}

// loadavg returns the first three fields of /proc/loadavg, or "?".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
