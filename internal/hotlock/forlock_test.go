package hotlock

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// limitsTx records the statements Take runs; it refuses a round trip with
// a LOCK TABLE with lockErr, when set, and grants the advisory lock and MySQL's lock row at
// once.
type limitsTx struct {
	stmts   []string
	lockErr error
}

func (r *limitsTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error } {
	r.stmts = append(r.stmts, query)
	if query == PostgresTry {
		return okRow{}
	}
	return idRow{}
}

func (r *limitsTx) Exec(ctx context.Context, query string, args ...any) error {
	r.stmts = append(r.stmts, query)
	if strings.Contains(query, "LOCK TABLE") {
		return r.lockErr
	}
	return nil
}

// idRow is MySQL's lock row, read.
type idRow struct{}

func (idRow) Scan(dst ...any) error {
	*dst[0].(*int64) = 1
	return nil
}

// A transaction for the lock tables is begun with BeginForLock, and the
// limits it left out go in the round trip of the lock's statements: those
// before (SET LOCAL, which takes no snapshot) precede the first, and those
// after follow the last, before the bound, which lowers lock_timeout from
// what they set: a SELECT before the LOCK would take a REPEATABLE READ or
// SERIALIZABLE transaction's snapshot before the wait (docs/backends.md
// §1.14). The advisory lock's transactions, and MySQL's, are begun with
// Begin, their limits before the lock: the advisory lock's try is a
// SELECT, and a transaction that waited for it begins again (§1.13);
// MySQL's limits are session settings, and its locking read takes no
// snapshot (§3.13). The advisory lock's bound follows it, once held, in a
// round trip of its own.
func TestBeginSendsTheLimitsLeftOutAfterTheLock(t *testing.T) {
	const key, set, limits = 7, "SET LOCAL lock_timeout = 300", "SELECT set_config('statement_timeout', '100', true)"
	for _, c := range []struct {
		name     string
		postgres bool
		keys     []int64
		bound    time.Duration
		lockErr  error
		want     func(locks []string) []string
		forLock  int // transactions begun with BeginForLock
		begun    int // with Begin
	}{
		{"tables", true, nil, 0, nil, func(locks []string) []string {
			return []string{set + "; " + locks[0] + "; " + limits}
		}, 1, 0},
		{"tables, bound", true, nil, 20 * time.Millisecond, nil, func(locks []string) []string {
			return []string{set + "; " + locks[0] + "; " + limits + "; " + bound20}
		}, 1, 0},
		{"tables, keys, bound", true, []int64{1, 2}, 20 * time.Millisecond, nil, func(locks []string) []string {
			stmts := slices.Clone(locks)
			stmts[0] = set + "; " + stmts[0]
			stmts[len(stmts)-1] += "; " + limits + "; " + bound20
			return stmts
		}, 1, 0},
		{"no tables", true, nil, 20 * time.Millisecond, &codedErr{"42P01", "relation does not exist"}, func(locks []string) []string {
			return []string{set + "; " + locks[0] + "; " + limits + "; " + bound20, PostgresTry, bound20}
		}, 1, 1},
		{"mysql", false, nil, 0, nil, func([]string) []string {
			return []string{MySQLLock}
		}, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx := &limitsTx{lockErr: c.lockErr}
			forLock, begun := 0, 0
			s := Scope[*limitsTx]{
				Begin: func() (*limitsTx, error) { begun++; return tx, nil },
				BeginForLock: func() (*limitsTx, Limits, error) {
					forLock++
					return tx, Limits{Before: set, After: limits}, nil
				},
				Tx:          func(tx *limitsTx) Tx { return tx },
				Rollback:    func(context.Context, *limitsTx) error { return nil },
				State:       &State{},
				Postgres:    c.postgres,
				LockTimeout: func() time.Duration { return 0 },
				Name:        "test",
			}
			req := &Request{Key: key, Keys: c.keys, Bound: c.bound}
			if _, err := Begin(With(t.Context(), req), s); err != nil {
				t.Fatal(err)
			}
			locks, _ := PostgresLocks(key, c.keys)
			if want := c.want(locks); !slices.Equal(tx.stmts, want) {
				t.Errorf("ran %q,\nwant %q", tx.stmts, want)
			}
			if forLock != c.forLock || begun != c.begun {
				t.Errorf("%d transactions begun with BeginForLock and %d with Begin, want %d and %d", forLock, begun, c.forLock, c.begun)
			}
		})
	}
}
