package pgxdb_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// withDefaults returns a pool modifier that gives every connection of the
// pool the session defaults params (name, value, …), as a role's or a
// database's ALTER … SET would, without changing them for other tests.
func withDefaults(params ...string) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) {
		for i := 0; i+1 < len(params); i += 2 {
			cfg.ConnConfig.RuntimeParams[params[i]] = params[i+1]
		}
	}
}

// inForce returns the value in force of the PostgreSQL parameter name, in
// its base unit (milliseconds for the timeouts), read from pg_settings,
// which does not depend on how current_setting formats it.
func inForce(ctx context.Context, tx pgx.Tx, name string) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = $1", name).Scan(&v)
	return v, err
}

// A limit derived from a deadline never raises a lower one in force: with a
// session default statement_timeout of 150ms and 30s left on the context,
// the attempt runs with 150ms, and the server ends a 1s statement at
// 150ms (57014), not at the 29.95s the deadline would allow. lock_timeout,
// 0 in force ("no limit"), takes the derived value. A StatementTimeout
// given is set as given, over the default.
func TestDerivedLimitKeepsALowerDefault(t *testing.T) {
	pool := newPool(t, 1, withDefaults("statement_timeout", "150ms"))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	t.Run("statement_timeout", func(t *testing.T) {
		var stmt, lock int64
		var took time.Duration
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			var err error
			if stmt, err = inForce(ctx, tx, "statement_timeout"); err != nil {
				return 0, err
			}
			if lock, err = inForce(ctx, tx, "lock_timeout"); err != nil {
				return 0, err
			}
			start := time.Now()
			_, err = tx.Exec(ctx, "SELECT pg_sleep(1)")
			took = time.Since(start)
			return 1, err
		})
		_, err := op.Run(ctx)
		pgErr, ok := errors.AsType[*pgconn.PgError](err)
		if !ok || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "statement timeout") {
			t.Fatalf("Run = %v; want the server's 57014 statement timeout from the 150ms default", err)
		}
		if stmt != 150 {
			t.Errorf("statement_timeout in force = %dms, want the 150ms default: a derived limit must not raise it", stmt)
		}
		if took >= 900*time.Millisecond {
			t.Errorf("the 1s statement ran %v, want it ended at the 150ms default", took)
		}
		if lock < 29*1000 || lock > 29950 {
			t.Errorf("lock_timeout in force = %dms, want the derived 29.95s or a little less (0 in force is no limit)", lock)
		}
	})

	t.Run("a limit given is set as given", func(t *testing.T) {
		var stmt int64
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			var err error
			stmt, err = inForce(ctx, tx, "statement_timeout")
			return 1, err
		}, pgxdb.StatementTimeout(2*time.Second))
		if _, err := op.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if stmt != 2000 {
			t.Errorf("statement_timeout in force = %dms, want the 2s given, over the default", stmt)
		}
	})

	if _, _, stmt := session(t, pool); stmt != "150ms" {
		t.Errorf("statement_timeout after the transactions = %q, want the default 150ms", stmt)
	}
}

// The same for lock_timeout: a session default of 150ms ends a lock wait
// after 150ms (55P03) under a 30s deadline.
func TestDerivedLockLimitKeepsALowerDefault(t *testing.T) {
	pool := newPool(t, 1, withDefaults("lock_timeout", "150ms"))
	other := newPool(t, 1)
	table := resolveTable("least_lock")
	createTable(t, other, table, "id int PRIMARY KEY", "INSERT INTO "+table+" VALUES (1)")
	holder, err := other.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	exec(t, holder, "SELECT id FROM "+table+" WHERE id = 1 FOR UPDATE")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var lock int64
	var took time.Duration
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		var err error
		if lock, err = inForce(ctx, tx, "lock_timeout"); err != nil {
			return 0, err
		}
		start := time.Now()
		_, err = tx.Exec(ctx, "SELECT id FROM "+table+" WHERE id = 1 FOR UPDATE")
		took = time.Since(start)
		return 1, err
	})
	_, err = op.Run(ctx)
	if code := pgCode(err); code != "55P03" {
		t.Fatalf("Run = %v (SQLSTATE %q); want 55P03 from the 150ms default", err, code)
	}
	if lock != 150 {
		t.Errorf("lock_timeout in force = %dms, want the 150ms default: a derived limit must not raise it", lock)
	}
	if took >= 900*time.Millisecond {
		t.Errorf("the lock wait lasted %v, want it ended at the 150ms default", took)
	}
}

// A derived limit still lowers a higher default: with a session default
// statement_timeout of 10s and 1s left on the context, the attempt runs
// with the derived 950ms (or a little less), and the server ends a 3s
// statement there (57014).
func TestDerivedLimitLowersAHigherDefault(t *testing.T) {
	pool := newPool(t, 1, withDefaults("statement_timeout", "10s", "lock_timeout", "10s"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var stmt, lock int64
	var took time.Duration
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		var err error
		if stmt, err = inForce(ctx, tx, "statement_timeout"); err != nil {
			return 0, err
		}
		if lock, err = inForce(ctx, tx, "lock_timeout"); err != nil {
			return 0, err
		}
		start := time.Now()
		_, err = tx.Exec(ctx, "SELECT pg_sleep(3)")
		took = time.Since(start)
		return 1, err
	})
	_, err := op.Run(ctx)
	if code := pgCode(err); code != "57014" {
		t.Fatalf("Run = %v (SQLSTATE %q); want the server's 57014", err, code)
	}
	for name, v := range map[string]int64{"statement_timeout": stmt, "lock_timeout": lock} {
		if v < 700 || v > 950 {
			t.Errorf("%s in force = %dms, want the derived 950ms or a little less, below the 10s default", name, v)
		}
	}
	if took < 600*time.Millisecond || took >= 2*time.Second {
		t.Errorf("the 3s statement ran %v, want it ended at the derived limit, about 950ms", took)
	}
}

// A dbop.HotSpot's bound on lock waits after its lock never raises the
// lock_timeout in force: a session default of 50ms stays under a 500ms
// bound, and a default of 2s is lowered to it. The bound travels in the
// BEGIN round trip, after the LOCK.
func TestHotSpotBoundKeepsALowerDefault(t *testing.T) {
	inPool := inSchema(t, "pgxdb_least_bound", true)
	for _, c := range []struct {
		name string
		def  string
		want int64
	}{
		{"a lower default is kept", "50ms", 50},
		{"a higher default is lowered", "2s", 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := &sqlLog{}
			pool := newPool(t, 1, inPool, withDefaults("lock_timeout", c.def), traced(log))
			req := &hotlock.Request{Key: rand.Int64(), Bound: 500 * time.Millisecond}
			var lock int64
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				var err error
				lock, err = inForce(ctx, tx, "lock_timeout")
				return 1, err
			})
			if _, err := op.Run(hotlock.With(t.Context(), req)); err != nil {
				t.Fatal(err)
			}
			if took, _, _ := req.Outcome(); !took {
				t.Fatal("the attempt did not take the HotSpot's lock")
			}
			if lock != c.want {
				t.Errorf("lock_timeout in force = %dms, want %dms (default %s, bound 500ms)", lock, c.want, c.def)
			}
			sent := false
			for _, stmt := range log.Log() {
				if i := strings.LastIndex(stmt, "LOCK TABLE"); i >= 0 && strings.Contains(stmt[i:], "set_config('lock_timeout'") {
					sent = true
				}
			}
			if !sent {
				t.Errorf("no BEGIN carried the bound after the LOCK: %q", log.Log())
			}
		})
	}
}

// A deadline more than about 24.8 days away derives limits above 2^31-1
// ms, the most statement_timeout and lock_timeout take: the attempt runs
// with statement_timeout 2^31-1 ms where 0 ("no limit") was in force and
// keeps a lower lock_timeout in force (1d), instead of BEGIN failing with
// 22023 "invalid value for parameter" (docs/backends.md §1.18; found by a
// review of the interval form, which lost the numeric form's cap).
func TestDerivedLimitOfAFarDeadline(t *testing.T) {
	pool := newPool(t, 1, withDefaults("lock_timeout", "1d"))
	ctx, cancel := context.WithTimeout(t.Context(), 30*24*time.Hour)
	defer cancel()
	var stmt, lock int64
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		var err error
		if stmt, err = inForce(ctx, tx, "statement_timeout"); err != nil {
			return 0, err
		}
		lock, err = inForce(ctx, tx, "lock_timeout")
		return 1, err
	})
	if _, err := op.Run(ctx); err != nil {
		t.Fatalf("Run with 30 days left = %v; want the attempt to run", err)
	}
	if stmt != 2147483647 {
		t.Errorf("statement_timeout in force = %dms, want 2147483647, the most it takes (0 was in force)", stmt)
	}
	if lock != 86400000 {
		t.Errorf("lock_timeout in force = %dms, want the 1d default, lower than the derived limit", lock)
	}
}

// A StatementTimeout(0) or LockTimeout(0) given ("no limit") takes the
// derived limit, at most 2^31-1 ms, the most PostgreSQL takes: under a
// deadline more than about 24.8 days away, InTx's SET LOCAL and a step's
// set_config (InSavepoint, WithTimeout of 30 days) set 2^31-1 instead of
// failing with 22023 "invalid value for parameter" (docs/backends.md
// §1.18, §1.19; found by a review).
func TestGivenNoLimitOfAFarDeadline(t *testing.T) {
	pool := newPool(t, 1)
	far := 30 * 24 * time.Hour
	ctx, cancel := context.WithTimeout(t.Context(), far)
	defer cancel()
	for _, name := range []string{"statement_timeout", "lock_timeout"} {
		opt := pgxdb.StatementTimeout(0)
		if name == "lock_timeout" {
			opt = pgxdb.LockTimeout(0)
		}
		var v int64
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			var err error
			v, err = inForce(ctx, tx, name)
			return 1, err
		}, opt)
		if _, err := op.Run(ctx); err != nil {
			t.Fatalf("InTx with %s 0 given and 30 days left = %v; want the attempt to run", name, err)
		}
		if v != 2147483647 {
			t.Errorf("InTx: %s in force = %dms, want 2147483647, the most it takes", name, v)
		}
	}

	var inside int64
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			var err error
			inside, err = inForce(ctx, tx, "statement_timeout")
			return 0, err
		}).With(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(far), pgxdb.InSavepoint(tx, pgxdb.StatementTimeout(0))).Run(ctx)
		return err
	}).Run(t.Context())
	if err != nil {
		t.Fatalf("a step with StatementTimeout(0) and 30 days left = %v; want it to run", err)
	}
	if inside != 2147483647 {
		t.Errorf("InSavepoint: statement_timeout in force = %dms, want 2147483647, the most it takes", inside)
	}
}
