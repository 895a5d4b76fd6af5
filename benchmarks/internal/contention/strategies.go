package contention

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// A Strategy runs one logical transfer to completion: it begins
// transactions on db, runs fn in them, and retries as it sees fit. It
// returns nil once a transaction committed and the error it gave up on
// otherwise.
//
// ctx ends when the run's drain period is over. A strategy runs each attempt
// with [context.WithoutCancel] of it, so that the end of the drain stops its
// waits but never cancels a transaction in flight: a COMMIT cancelled in
// flight has an unknown outcome, and the ledger check needs every outcome
// known.
type Strategy struct {
	Name string
	// Workers overrides Config.Workers when positive, and makes the
	// strategy run in one process.
	Workers  int
	Transfer func(ctx context.Context, db DB, fn TxFunc) error
	// Start, when set, is called in each process before its workers
	// start; what it returns is called once they have all returned.
	Start func() (stop func())
}

// Names of the strategies that [StrategyByName] knows.
var Names = []string{"dbop", "dbop+bulkhead", "dbop+hotspot", "dbop+hotspot+keys", "immediate", "cenkalti", "none", "executor", "keyed", "pglock", "pglease", "batch", "dbop+share", "dbop+hotspot+share", "reference"}

// NamesFor returns the names of Names that run with cfg: pglock and pglease only on
// PostgreSQL with the lock tables.
func NamesFor(cfg Config) []string {
	var names []string
	for _, name := range Names {
		if (name == "dbop+share" || name == "dbop+hotspot+share") && cfg.Backend.Kind != Postgres {
			continue
		}
		if (name != "pglock" && name != "pglease") || (cfg.Backend.Kind == Postgres && !cfg.NoLockTables) {
			names = append(names, name)
		}
	}
	return names
}

// Recommended is the retry of the dbop strategies: the README's
// recommendation for hot spots, which benchmarks/README.md's sweeps chose.
var Recommended = DBOPParams{Base: 5 * time.Millisecond, Max: time.Second, MaxAttempts: 50}

// HotSpotBulkhead is the Bulkhead the dbop+bulkhead strategy adds to the
// configured pipeline: one attempt at a time, the README's advice before
// dbop.HotSpot.
const HotSpotBulkhead = 1

// DBOPParams configures a dbop strategy's pipeline.
type DBOPParams struct {
	Base, Max   time.Duration // FullJitter(Exponential(Base, Max))
	MaxAttempts int           // 0: dbop's default
	Bulkhead    int           // when positive, dbop.Bulkhead(Bulkhead) after the retry: concurrent attempts capped
	LockTimeout time.Duration // when positive, the adapter's LockTimeout on each attempt
	HotSpot     bool          // dbop.HotSpot() after the retry
	Share       bool          // pgxdb.ShareCommits() on the operation (PostgreSQL)
	Keys        bool          // each transfer's accounts as its dbop.HotSpotKeys
	// AdapterLimits leaves the deadlines of attempts to the adapters,
	// which derive server-side limits from them (adapterLimits), instead
	// of the benchmark's stand-in (serverLimits).
	AdapterLimits bool
}

func (p DBOPParams) String() string {
	s := fmt.Sprintf("WithRetry(FullJitter(Exponential(%v, %v))", p.Base, p.Max)
	if p.MaxAttempts > 0 {
		s += fmt.Sprintf(", MaxAttempts(%d)", p.MaxAttempts)
	}
	s += ")"
	if p.Bulkhead > 0 {
		s += fmt.Sprintf(", Bulkhead(%d)", p.Bulkhead)
	}
	if p.HotSpot {
		s += ", HotSpot()"
	}
	if p.Keys {
		s += " + HotSpotKeys(from, to)"
	}
	if p.Share {
		s += " + pgxdb.ShareCommits()"
	}
	if p.LockTimeout > 0 {
		s += fmt.Sprintf(" + LockTimeout(%v)", p.LockTimeout)
	}
	return s
}

// StrategyByName returns the named strategy: one of Names, or "dbop " and a
// sweep spec (see ParseSpec).
func StrategyByName(name string, cfg Config) (Strategy, error) {
	if spec, ok := strings.CutPrefix(name, "dbop "); ok {
		p, err := ParseSpec(spec)
		if err != nil {
			return Strategy{}, err
		}
		return DBOP(name, p), nil
	}
	switch name {
	case "dbop":
		return DBOP("dbop", cfg.DBOP), nil
	case "dbop+bulkhead":
		p := cfg.DBOP
		if p.Bulkhead == 0 {
			p.Bulkhead = HotSpotBulkhead
		}
		return DBOP("dbop+bulkhead", p), nil
	case "dbop+hotspot":
		p := cfg.DBOP
		p.HotSpot = true
		return DBOP("dbop+hotspot", p), nil
	case "dbop+share":
		if cfg.Backend.Kind != Postgres {
			return Strategy{}, fmt.Errorf("strategy dbop+share: pgxdb.ShareCommits is PostgreSQL's, not %s", cfg.Backend.Kind)
		}
		p := cfg.DBOP
		p.Share = true
		return DBOP("dbop+share", p), nil
	case "dbop+hotspot+share":
		if cfg.Backend.Kind != Postgres {
			return Strategy{}, fmt.Errorf("strategy dbop+hotspot+share: pgxdb.ShareCommits is PostgreSQL's, not %s", cfg.Backend.Kind)
		}
		p := cfg.DBOP
		p.HotSpot, p.Share = true, true
		return DBOP("dbop+hotspot+share", p), nil
	case "dbop+hotspot+keys":
		p := cfg.DBOP
		p.HotSpot, p.Keys = true, true
		return DBOP("dbop+hotspot+keys", p), nil
	case "immediate":
		return Immediate(cfg.ImmediateCap), nil
	case "cenkalti":
		return Cenkalti(), nil
	case "none":
		return None("none", 0), nil
	case "reference":
		return None("reference", 1), nil
	case "keyed":
		return Keyed(), nil
	case "executor":
		return Executor(), nil
	case "pglock":
		return PGLock(cfg)
	case "pglease":
		return PGLease(cfg)
	case "batch":
		return Batch(cfg), nil
	}
	return Strategy{}, fmt.Errorf("unknown strategy %q (want one of %v, or \"dbop \" and a spec)", name, Names)
}

// ParseSpec parses base:max:attempts[:bulkhead[:lock-timeout[:hotspot]]],
// where hotspot is 1 for dbop.HotSpot() after the retry.
func ParseSpec(spec string) (DBOPParams, error) {
	var p DBOPParams
	f := strings.Split(strings.TrimSpace(spec), ":")
	if len(f) < 3 || len(f) > 6 {
		return p, fmt.Errorf("%q: want base:max:attempts[:bulkhead[:lock-timeout[:hotspot]]]", spec)
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
	if len(f) >= 5 && f[4] != "0" {
		if p.LockTimeout, err = time.ParseDuration(f[4]); err != nil {
			return p, err
		}
	}
	if len(f) == 6 {
		p.HotSpot = f[5] == "1"
	}
	if p.Base <= 0 || p.Max < p.Base || p.MaxAttempts < 0 || p.Bulkhead < 0 {
		return p, fmt.Errorf("%q: want 0 < base <= max, attempts >= 0, bulkhead >= 0", spec)
	}
	return p, nil
}

// None makes one attempt and gives up on any error. With workers = 1 and no
// one else writing, it is the conflict-free reference.
func None(name string, workers int) Strategy {
	return Strategy{Name: name, Workers: workers, Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
		return db.Attempt(ctx, fn)
	}}
}

// Immediate retries conflicts (what the backend's classifier calls
// retryable) at once, with no wait, up to maxAttempts attempts: what
// cockroach-go's crdb.ExecuteInTx does (it retries SQLSTATE 40001 in a loop
// without backoff).
func Immediate(maxAttempts int) Strategy {
	return Strategy{
		Name: "immediate",
		Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
			for n := 1; ; n++ {
				err := db.Attempt(ctx, fn)
				if err == nil || !db.Classifier(err).Retryable() || n >= maxAttempts || ctx.Err() != nil {
					return err
				}
			}
		},
	}
}

// Cenkalti wraps the transaction in backoff.Retry with cenkalti/backoff/v5's
// defaults: exponential backoff from 500 ms, factor 1.5, ±50% jitter,
// 60 s maximum interval, 15 min maximum elapsed time, every error retried.
func Cenkalti() Strategy {
	return Strategy{
		Name: "cenkalti",
		Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
			_, err := backoff.Retry(ctx, func() (struct{}, error) {
				return struct{}{}, db.Attempt(ctx, fn)
			})
			return err
		},
	}
}
