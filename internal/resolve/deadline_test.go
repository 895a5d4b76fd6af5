package resolve

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
)

func TestLimitFor(t *testing.T) {
	tests := []struct {
		left, want time.Duration
		ok         bool
	}{
		{left: 10 * time.Second, want: 10*time.Second - 50*time.Millisecond, ok: true},
		{left: time.Second, want: 950 * time.Millisecond, ok: true},
		{left: 500 * time.Millisecond, want: 450 * time.Millisecond, ok: true},
		{left: 300 * time.Millisecond, want: 270 * time.Millisecond, ok: true},
		{left: 10 * time.Millisecond, want: 9 * time.Millisecond, ok: true},
		{left: 1100 * time.Microsecond, want: 990 * time.Microsecond}, // below a millisecond: the context ends it
		{left: 0},
		{left: -time.Second},
	}
	for _, tt := range tests {
		got, ok := hotlock.LimitFor(tt.left)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("LimitFor(%v) = %v, %t; want %v, %t", tt.left, got, ok, tt.want, tt.ok)
		}
	}
}

func TestServerLimitsFollowTheTimeLeft(t *testing.T) {
	if _, _, ok := ServerLimits(context.Background()); ok {
		t.Error("a context without a deadline gave limits")
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if stmt, lock, ok := ServerLimits(ctx); !ok || stmt != 1950*time.Millisecond || lock != stmt {
			t.Errorf("ServerLimits with 2s left = %v, %v, %t; want 1.95s for both", stmt, lock, ok)
		}
		time.Sleep(1900 * time.Millisecond)
		if stmt, lock, ok := ServerLimits(ctx); !ok || stmt != 90*time.Millisecond || lock != stmt {
			t.Errorf("ServerLimits with 100ms left = %v, %v, %t; want 90ms for both", stmt, lock, ok)
		}
	})
}

// The derived session limits never raise the value in force: each is the
// least of it and the derived value, 0 in force ("no limit") aside, which
// the server computes in the SET that saves the value in force.
func TestMySQLSessionLimits(t *testing.T) {
	tests := []struct {
		mariadb      bool
		limit        time.Duration
		set, restore string
	}{
		{true, 270 * time.Millisecond,
			"SET @dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = " +
				"IF(@@SESSION.max_statement_time = 0, 0.270000, LEAST(@@SESSION.max_statement_time, 0.270000))",
			"SET @@SESSION.max_statement_time = @dbop_saved_max_statement_time, @dbop_saved_max_statement_time = NULL"},
		{false, 270 * time.Millisecond,
			"SET @dbop_saved_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = " +
				"IF(@@SESSION.max_execution_time = 0, 270, LEAST(@@SESSION.max_execution_time, 270))",
			"SET @@SESSION.max_execution_time = @dbop_saved_max_execution_time, @dbop_saved_max_execution_time = NULL"},
		// Under a millisecond: 1 ms, never 0, which is "no limit".
		{false, 600 * time.Microsecond,
			"SET @dbop_saved_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = " +
				"IF(@@SESSION.max_execution_time = 0, 1, LEAST(@@SESSION.max_execution_time, 1))",
			"SET @@SESSION.max_execution_time = @dbop_saved_max_execution_time, @dbop_saved_max_execution_time = NULL"},
		{false, 2450 * time.Millisecond,
			"SET @dbop_saved_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, " +
				"@@SESSION.innodb_lock_wait_timeout = LEAST(@@SESSION.innodb_lock_wait_timeout, 2), " +
				"@dbop_saved_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = " +
				"IF(@@SESSION.max_execution_time = 0, 2450, LEAST(@@SESSION.max_execution_time, 2450))",
			"SET @@SESSION.innodb_lock_wait_timeout = @dbop_saved_innodb_lock_wait_timeout, @dbop_saved_innodb_lock_wait_timeout = NULL, " +
				"@@SESSION.max_execution_time = @dbop_saved_max_execution_time, @dbop_saved_max_execution_time = NULL"},
	}
	for _, tt := range tests {
		set, restore := MySQLSessionLimits(tt.mariadb, tt.limit)
		if set != tt.set || restore != tt.restore {
			t.Errorf("MySQLSessionLimits(%t, %v) =\n%q, %q; want\n%q, %q", tt.mariadb, tt.limit, set, restore, tt.set, tt.restore)
		}
	}
}

// A HotSpot's server deadline bounds lock waits only: statements keep the
// limit of the context's deadline.
func TestServerLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := t.Context()
		withDeadline := func(d time.Duration) context.Context {
			ctx, cancel := context.WithTimeout(base, d)
			t.Cleanup(cancel)
			return ctx
		}
		tests := []struct {
			name       string
			ctx        context.Context
			stmt, lock time.Duration
			ok         bool
		}{
			{name: "neither", ctx: base},
			{name: "a deadline", ctx: withDeadline(200 * time.Millisecond),
				stmt: 180 * time.Millisecond, lock: 180 * time.Millisecond, ok: true},
			{name: "a HotSpot's bound of 5ms, its context 60ms", ctx: hotlock.WithServerDeadline(withDeadline(60*time.Millisecond), time.Now().Add(5*time.Millisecond)),
				stmt: 54 * time.Millisecond, lock: 5 * time.Millisecond, ok: true},
			{name: "a server deadline later than the context's", ctx: hotlock.WithServerDeadline(withDeadline(60*time.Millisecond), time.Now().Add(time.Second)),
				stmt: 54 * time.Millisecond, lock: 54 * time.Millisecond, ok: true},
			{name: "a server deadline alone", ctx: hotlock.WithServerDeadline(base, time.Now().Add(5*time.Millisecond)),
				stmt: 5 * time.Millisecond, lock: 5 * time.Millisecond, ok: true},
			{name: "a server deadline passed", ctx: hotlock.WithServerDeadline(base, time.Now().Add(-time.Second)),
				stmt: time.Millisecond, lock: time.Millisecond, ok: true},
		}
		for _, tt := range tests {
			stmt, lock, ok := ServerLimits(tt.ctx)
			if stmt != tt.stmt || lock != tt.lock || ok != tt.ok {
				t.Errorf("%s: ServerLimits = %v, %v, %t; want %v, %v, %t", tt.name, stmt, lock, ok, tt.stmt, tt.lock, tt.ok)
			}
		}
	})
}
