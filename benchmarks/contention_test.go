package benchmarks

import (
	"os"
	"testing"
	"time"

	"github.com/dbop-go/dbop/benchmarks/internal/contention"
)

// The database variables, in the order they are looked up.
const (
	benchEnv   = "DBOP_BENCH_POSTGRES"
	testEnv    = "DBOP_TEST_POSTGRES"
	requireEnv = "DBOP_TEST_REQUIRE" // set in CI: a skipped integration test is a failure
)

// TestContentionShort runs the contention benchmark's short mode (2 s per
// strategy) against PostgreSQL and asserts its invariants: no money created
// or lost, the ledger equal to the committed transfers, no lost update. It
// runs every strategy on the serializable variant, and HotSpot and the
// reference on the lockcycle and deadlock variants (the others wait out
// PostgreSQL's 1 s deadlock_timeout again and again there; README.md), in
// about 30 s. It asserts no performance target: those are for the
// benchmark on a quiet machine.
func TestContentionShort(t *testing.T) {
	dsn := os.Getenv(benchEnv)
	if dsn == "" {
		dsn = os.Getenv(testEnv)
	}
	if dsn == "" {
		if os.Getenv(requireEnv) != "" {
			t.Fatalf("PostgreSQL is required (%s is set) but %s and %s are empty", requireEnv, benchEnv, testEnv)
		}
		t.Skipf("PostgreSQL contention test: set %s or %s to run it", benchEnv, testEnv)
	}

	runs := []struct {
		variant    contention.Variant
		strategies []string
	}{
		{contention.Serializable, contention.Names},
		{contention.LockCycle, []string{"dbop+hotspot", "reference"}},
		{contention.Deadlock, []string{"dbop+hotspot", "reference"}},
	}
	for _, run := range runs {
		variant := run.variant
		cfg := contention.Config{
			Backend:      contention.Backend{Kind: contention.Postgres, DSNs: []string{dsn}},
			Workers:      16,
			Accounts:     4,
			Duration:     2 * time.Second,
			Drain:        60 * time.Second,
			Variant:      variant,
			Seed:         1,
			DBOP:         contention.Recommended,
			ImmediateCap: 1000,
		}
		for _, name := range run.strategies {
			t.Run(variant.String()+"/"+name, func(t *testing.T) {
				s, err := contention.StrategyByName(name, cfg)
				if err != nil {
					t.Fatal(err)
				}
				r, err := contention.Run(t.Context(), cfg, s)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%d committed, %.0f tx/s, %.2f attempts/commit, %d give-ups %s, p50 %v, p99 %v",
					r.Commits, r.Goodput(), r.AttemptsPerCommit(), r.GiveUps, r.Reasons(), r.P50, r.P99)
				if r.Commits == 0 {
					t.Error("no transfer committed")
				}
				for _, f := range r.Invariants.Failures() {
					t.Error(f)
				}
			})
		}
	}
}
