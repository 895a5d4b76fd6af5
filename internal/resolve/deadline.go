package resolve

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
)

// ServerLimits returns the limits on statements and on lock waits that
// server-side timeouts set now should have, so that the server ends a
// statement before ctx's deadline does: stmt the time left on ctx, less
// the smaller of a tenth of it and hotlock.MaxMargin (hotlock.LimitFor),
// and lock the smaller of that and
// the time left until a dbop.HotSpot's server deadline, at least a
// millisecond. A HotSpot's deadline bounds lock waits, the waits of a lock
// cycle; a statement that is slow because the server is busy is left to
// run until the margin before the context's deadline, so that a busy
// machine does not fail attempts that wait for no lock, nor make the
// HotSpot take them for contention. With no deadline on ctx, stmt is the
// server deadline's limit too. A server with one limit for both
// (MariaDB's max_statement_time) gets the smaller. ok is false when ctx
// has neither, or its deadline leaves less than a millisecond.
func ServerLimits(ctx context.Context) (stmt, lock time.Duration, ok bool) {
	if deadline, has := ctx.Deadline(); has {
		if stmt, ok = hotlock.LimitFor(time.Until(deadline)); !ok {
			return 0, 0, false
		}
	}
	lock = stmt
	if at, has := hotlock.ServerDeadline(ctx); has {
		if l := max(time.Until(at), hotlock.MinLimit); !ok || l < lock {
			lock = l
		}
		if !ok {
			stmt, ok = lock, true
		}
	}
	return stmt, lock, ok
}

// LockLimit returns the lock_timeout a PostgreSQL scope sets for an attempt
// that begins now, given the one its options set (0: none): given,
// lowered to ServerLimits' lock limit where that is smaller; 0 for none.
// A dbop.HotSpot's bound after its lock (hotlock.PostgresBound) never
// raises it.
func LockLimit(ctx context.Context, given time.Duration) time.Duration {
	_, lock, ok := ServerLimits(ctx)
	if !ok || (given > 0 && given < lock) {
		return given
	}
	return lock
}

// MySQLSessionLimits returns the statements that set, on a pinned MySQL or
// MariaDB connection, the session limits derived from limit (the smaller
// of [ServerLimits]'s two), saving the values they replace in user
// variables, and the statement that sets those back: MariaDB's
// max_statement_time (seconds, every statement, lock waits included); MySQL's
// max_execution_time (milliseconds, read-only SELECT only) and, when at
// least a second is left, innodb_lock_wait_timeout in whole seconds, both
// rounded down. One SET changes all of its variables or none. The user
// variables are @dbop_saved_<tag><name>: a savepoint's limits, set while a
// transaction's are in force, keep theirs under a tag of their own
// (SavepointLimits).
func MySQLSessionLimits(mariadb bool, limit time.Duration, tag string) (set, restore string) {
	type setting struct{ name, value string }
	var settings []setting
	if mariadb {
		us := int64(limit / time.Microsecond)
		settings = append(settings, setting{"max_statement_time", fmt.Sprintf("%d.%06d", us/1e6, us%1e6)})
	} else {
		if secs := int64(limit / time.Second); secs >= 1 {
			settings = append(settings, setting{"innodb_lock_wait_timeout", strconv.FormatInt(secs, 10)})
		}
		settings = append(settings, setting{"max_execution_time", strconv.FormatInt(int64(limit/time.Millisecond), 10)})
	}
	var sets, restores []string
	for _, s := range settings {
		saved := "@dbop_saved_" + tag + s.name
		sets = append(sets, saved+" = @@SESSION."+s.name, "@@SESSION."+s.name+" = "+s.value)
		restores = append(restores, "@@SESSION."+s.name+" = "+saved, saved+" = NULL")
	}
	return "SET " + strings.Join(sets, ", "), "SET " + strings.Join(restores, ", ")
}

// IsMySQLSessionLimits reports whether query is one of the statements
// MySQLSessionLimits writes: a SET of session variables and of the user
// variables that keep their earlier values, which writes no row. A scope
// sends the restore after its attempt whatever became of the transaction,
// after a deadlock that ended it too, so gormdb's pool does not count it as
// the function going on past that deadlock.
func IsMySQLSessionLimits(query string) bool {
	return strings.HasPrefix(query, "SET @dbop_saved_") ||
		(strings.HasPrefix(query, "SET @@SESSION.") && strings.Contains(query, " = @dbop_saved_"))
}

// ServerLimitsLess is ServerLimits less d, at least MinLimit each: the
// limits to set with a statement that takes d to reach the server and
// come back, so that the later statements, which start that much later,
// keep the whole margin (SavepointLimits).
func ServerLimitsLess(ctx context.Context, d time.Duration) (stmt, lock time.Duration, ok bool) {
	if stmt, lock, ok = ServerLimits(ctx); !ok {
		return 0, 0, false
	}
	return max(stmt-d, hotlock.MinLimit), max(lock-d, hotlock.MinLimit), true
}

// PostgresLimits returns a PostgreSQL scope's settings (names, with their
// values in milliseconds, each name once) with statement_timeout and
// lock_timeout lowered to stmt and lock (ServerLimits), in whole
// milliseconds rounded down, so that the margin stays whole, and at least
// one (0 is "no limit"): added after the others where not given, lowered
// where given longer or 0, never raised. It does not change its arguments.
func PostgresLimits(names []string, millis []int64, stmt, lock time.Duration) ([]string, []int64) {
	names, millis = slices.Clone(names), slices.Clone(millis)
	for _, l := range [...]struct {
		name  string
		limit time.Duration
	}{{"statement_timeout", stmt}, {"lock_timeout", lock}} {
		ms := max(int64(l.limit/time.Millisecond), 1)
		switch i := slices.Index(names, l.name); {
		case i < 0:
			names, millis = append(names, l.name), append(millis, ms)
		case millis[i] == 0 || millis[i] > ms:
			millis[i] = ms
		}
	}
	return names, millis
}
