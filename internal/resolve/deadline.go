package resolve

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/serverlimit"
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
//
// The limits are meant only to lower what is in force: an adapter sets a
// limit the user gave no option for to the smaller of the derived value
// and the server's value in force, computed by the server in the statement
// that sets it (package serverlimit), and a limit the user gave to the
// smaller of the given and the derived value.
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
//
// A derived limit only lowers what is in force: each variable is set to the
// smaller of the derived value and the session's value, which the server
// computes in the same SET (serverlimit.MySQLLeast), so that a lower limit
// of the user's own (the global default, a DSN's or a session's SET) is
// kept; a max_statement_time or max_execution_time of 0 in force is "no
// limit" and takes the derived value.
func MySQLSessionLimits(mariadb bool, limit time.Duration) (set, restore string) {
	return mysqlLimits(mariadb, limit, "")
}

// mysqlLimits writes MySQLSessionLimits' statements, the values in force
// saved in the user variables @dbop_saved_<tag><name>. A max_execution_time
// is at least 1 ms: 0 would be "no limit".
func mysqlLimits(mariadb bool, limit time.Duration, tag string) (set, restore string) {
	type setting struct {
		name, value string
		zeroIsNone  bool
	}
	var settings []setting
	if mariadb {
		us := int64(limit / time.Microsecond)
		settings = append(settings, setting{"max_statement_time", fmt.Sprintf("%d.%06d", us/1e6, us%1e6), true})
	} else {
		if secs := int64(limit / time.Second); secs >= 1 {
			settings = append(settings, setting{"innodb_lock_wait_timeout", strconv.FormatInt(secs, 10), false})
		}
		settings = append(settings, setting{"max_execution_time", strconv.FormatInt(max(int64(limit/time.Millisecond), 1), 10), true})
	}
	var sets, restores []string
	for _, s := range settings {
		saved := "@dbop_saved_" + tag + s.name
		v := "@@SESSION." + s.name
		sets = append(sets, saved+" = "+v, v+" = "+serverlimit.MySQLLeast(s.name, s.value, s.zeroIsNone))
		restores = append(restores, v+" = "+saved, saved+" = NULL")
	}
	return "SET " + strings.Join(sets, ", "), "SET " + strings.Join(restores, ", ")
}
