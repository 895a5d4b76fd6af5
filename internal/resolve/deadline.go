package resolve

import (
	"context"
	"fmt"
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
// rounded down. One SET changes all of its variables or none.
func MySQLSessionLimits(mariadb bool, limit time.Duration) (set, restore string) {
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
		saved := "@dbop_saved_" + s.name
		sets = append(sets, saved+" = @@SESSION."+s.name, "@@SESSION."+s.name+" = "+s.value)
		restores = append(restores, "@@SESSION."+s.name+" = "+saved, saved+" = NULL")
	}
	return "SET " + strings.Join(sets, ", "), "SET " + strings.Join(restores, ", ")
}
