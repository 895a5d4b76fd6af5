package hotlock

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// bound20 is PostgresBound's statement for a bound of 20 ms.
const bound20 = "SELECT set_config('lock_timeout', CASE WHEN current_setting('lock_timeout') = '0' OR (current_setting('lock_timeout') || CASE WHEN strpos('0123456789', right(current_setting('lock_timeout'), 1)) > 0 THEN 'ms' ELSE '' END)::interval > '20ms' THEN '20' ELSE current_setting('lock_timeout') END, true)"

// PostgresBound bounds lock waits after the lock to the request's Bound,
// in whole milliseconds rounded up, and never raises a lower lock_timeout:
// not sent when the attempt's own is no longer, and otherwise the least of
// the bound and the value in force, which the server computes.
func TestPostgresBound(t *testing.T) {
	least := func(ms string) string {
		return "SELECT set_config('lock_timeout', CASE WHEN current_setting('lock_timeout') = '0' OR (current_setting('lock_timeout') || CASE WHEN strpos('0123456789', right(current_setting('lock_timeout'), 1)) > 0 THEN 'ms' ELSE '' END)::interval > '" + ms + "ms' THEN '" + ms + "' ELSE current_setting('lock_timeout') END, true)"
	}
	for _, c := range []struct {
		bound, current time.Duration
		want           string
	}{
		{0, 0, ""},
		{0, 10 * time.Millisecond, ""},
		{20 * time.Millisecond, 0, bound20},
		{20 * time.Millisecond, 30 * time.Millisecond, bound20},
		{20 * time.Millisecond, 20 * time.Millisecond, ""},
		{20 * time.Millisecond, 10 * time.Millisecond, ""},
		{1500 * time.Microsecond, 0, least("2")},
		{time.Nanosecond, 0, least("1")},
	} {
		if got := PostgresBound(c.bound, c.current); got != c.want {
			t.Errorf("PostgresBound(%v, %v) = %q, want %q", c.bound, c.current, got, c.want)
		}
	}
}

// recordingTx records the statements Take runs.
type recordingTx struct{ stmts []string }

func (r *recordingTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error } {
	panic("QueryRow: " + query)
}

func (r *recordingTx) Exec(ctx context.Context, query string, args ...any) error {
	r.stmts = append(r.stmts, query)
	return nil
}

// The bound follows the last of the lock's statements, in its round trip,
// so that the waits for the lock are not bounded: on database/sql's
// handles (Take), and on pgx's, where the lock travels with BEGIN
// (BeginLocked). The scope reports PostgreSQL on the request; a lower
// lock_timeout of the attempt's own is left as it is.
func TestBeginBoundsLockWaitsAfterTheLock(t *testing.T) {
	const key = 7
	bound := 20 * time.Millisecond
	for _, c := range []struct {
		name    string
		keys    []int64
		current time.Duration
		after   string
	}{
		{"no keys", nil, 0, bound20},
		{"keys", []int64{1, 2}, 0, bound20},
		{"a lower limit of its own", nil, 5 * time.Millisecond, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			locks, _ := PostgresLocks(key, c.keys)
			want := slices.Clone(locks)
			if c.after != "" {
				want[len(want)-1] += "; " + c.after
			}
			scope := func(tx *recordingTx, locked *string) Scope[*recordingTx] {
				s := Scope[*recordingTx]{
					Begin:       func() (*recordingTx, error) { return tx, nil },
					Tx:          func(tx *recordingTx) Tx { return tx },
					Rollback:    func(context.Context, *recordingTx) error { return nil },
					State:       &State{},
					Postgres:    true,
					LockTimeout: func() time.Duration { return c.current },
					Name:        "test",
				}
				if locked != nil {
					s.BeginLocked = func(lock string) (*recordingTx, error) { *locked = lock; return tx, nil }
					s.AfterBegin = func(error) bool { return false }
				}
				return s
			}

			tx := &recordingTx{}
			req := &Request{Key: key, Keys: c.keys, Bound: bound}
			if _, err := Begin(With(t.Context(), req), scope(tx, nil)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tx.stmts, want) {
				t.Errorf("database/sql: ran %q, want %q", tx.stmts, want)
			}
			if !req.OnPostgres() {
				t.Error("the request does not say that a PostgreSQL scope took it")
			}

			var locked string
			req = &Request{Key: key, Keys: c.keys, Bound: bound}
			if _, err := Begin(With(t.Context(), req), scope(&recordingTx{}, &locked)); err != nil {
				t.Fatal(err)
			}
			wantLocked := strings.Join(slices.DeleteFunc(append(slices.Clone(locks), c.after), func(s string) bool { return s == "" }), "; ")
			if locked != wantLocked {
				t.Errorf("pgx: BEGIN followed by %q, want %q", locked, wantLocked)
			}
		})
	}
}
