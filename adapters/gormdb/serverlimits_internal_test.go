package gormdb

import (
	"context"
	"database/sql"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/sqldialect"
)

// pgLeast is the set_config call that sets the PostgreSQL parameter name to
// the least of ms and the value in force (0 in force: ms).
func pgLeast(name, ms string) string {
	return "set_config('" + name + "', CASE WHEN current_setting('" + name + "') = '0' OR (current_setting('" + name + "') || CASE WHEN strpos('0123456789', right(current_setting('" + name + "'), 1)) > 0 THEN 'ms' ELSE '' END)::interval > '" + ms + "ms' THEN '" + ms + "' ELSE current_setting('" + name + "') END, true)"
}

// A dbop.HotSpot's bound limits lock waits on PostgreSQL (lock_timeout);
// statements keep the limit of the context's deadline. MySQL and MariaDB,
// whose limit covers both, get the smaller. Neither raises the value in
// force: the server takes the least.
func TestServerLimitsUnderAHotSpotBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Millisecond)
		defer cancel()
		ctx = hotlock.WithServerDeadline(ctx, time.Now().Add(5*time.Millisecond))

		pg := &beginner{family: sqldialect.Postgres}
		want := "SELECT " + pgLeast("lock_timeout", "5") + ", " + pgLeast("statement_timeout", "54")
		if got, _, _ := pg.serverLimits(ctx); got != want {
			t.Errorf("PostgreSQL:\n%q, want\n%q", got, want)
		}
		maria := &beginner{family: sqldialect.MariaDB}
		want = "SET @dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = " +
			"IF(@@SESSION.max_statement_time = 0, 0.005000, LEAST(@@SESSION.max_statement_time, 0.005000))"
		if _, set, _ := maria.serverLimits(ctx); set != want {
			t.Errorf("MariaDB:\n%q, want\n%q", set, want)
		}
	})
}

// A limit given is set to the smaller of the given and the derived value,
// as a plain value over any default; a limit not given, to the least of
// the derived value and the value in force. Without a deadline, the limits
// given alone.
func TestServerLimitsGivenAndDerived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pg := &beginner{family: sqldialect.Postgres, lock: 100 * time.Millisecond, stmt: time.Minute}
		if got, _, _ := pg.serverLimits(t.Context()); got != "SELECT set_config('lock_timeout', '100ms', true), set_config('statement_timeout', '60000ms', true)" {
			t.Errorf("no deadline: %q", got)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		want := "SELECT set_config('lock_timeout', '100ms', true), set_config('statement_timeout', '1950ms', true)"
		if got, _, _ := pg.serverLimits(ctx); got != want {
			t.Errorf("both given:\n%q, want\n%q", got, want)
		}
		pg.stmt = 0
		want = "SELECT set_config('lock_timeout', '100ms', true), " + pgLeast("statement_timeout", "1950")
		if got, _, _ := pg.serverLimits(ctx); got != want {
			t.Errorf("statement timeout not given:\n%q, want\n%q", got, want)
		}
	})
}

// A HotSpot's LOCK on PostgreSQL carries the attempt's limits in its round
// trip: the limits given as SET LOCAL before it, where they bound its
// wait; the derived limits' SELECT before it too, but after it when the
// isolation given keeps one snapshot for the transaction (REPEATABLE READ,
// SERIALIZABLE), whose snapshot the SELECT would take before the wait.
func TestLockLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Millisecond)
		defer cancel()
		least := "SELECT " + pgLeast("statement_timeout", "54")
		for _, c := range []struct {
			name      string
			isolation sql.IsolationLevel
			given     time.Duration
			deadline  bool
			want      hotlock.Limits
		}{
			{"none", sql.LevelDefault, 0, false, hotlock.Limits{}},
			{"given, no deadline", sql.LevelSerializable, 300 * time.Millisecond, false, hotlock.Limits{Before: "SET LOCAL lock_timeout = 300"}},
			{"derived, default", sql.LevelDefault, 0, true, hotlock.Limits{Before: "SELECT " + pgLeast("lock_timeout", "54") + ", " + pgLeast("statement_timeout", "54")}},
			{"given and derived, read committed", sql.LevelReadCommitted, 300 * time.Millisecond, true, hotlock.Limits{Before: "SET LOCAL lock_timeout = 54; " + least}},
			{"given and derived, repeatable read", sql.LevelRepeatableRead, 300 * time.Millisecond, true, hotlock.Limits{Before: "SET LOCAL lock_timeout = 54", After: least}},
			{"derived, serializable", sql.LevelSerializable, 0, true, hotlock.Limits{After: "SELECT " + pgLeast("lock_timeout", "54") + ", " + pgLeast("statement_timeout", "54")}},
		} {
			b := &beginner{family: sqldialect.Postgres, isolation: c.isolation, lock: c.given}
			attemptCtx := t.Context()
			if c.deadline {
				attemptCtx = ctx
			}
			if got := b.lockLimits(attemptCtx); got != c.want {
				t.Errorf("%s:\n%+v, want\n%+v", c.name, got, c.want)
			}
		}
	})
}
