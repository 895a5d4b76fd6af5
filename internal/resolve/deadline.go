package resolve

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
)

// ServerLimit returns the limit a server-side timeout set now should have
// so that the server ends a statement before ctx's deadline does: the time
// left, less the smaller of a tenth of it and hotlock.MaxMargin
// (hotlock.LimitFor). Where a dbop.HotSpot asked for an earlier server deadline
// (hotlock.WithServerDeadline), the time left until that one, at least a
// millisecond. ok is false when ctx has neither, or its deadline leaves
// less than a millisecond.
func ServerLimit(ctx context.Context) (limit time.Duration, ok bool) {
	if deadline, has := ctx.Deadline(); has {
		if limit, ok = hotlock.LimitFor(time.Until(deadline)); !ok {
			return 0, false
		}
	}
	if at, has := hotlock.ServerDeadline(ctx); has {
		if l := max(time.Until(at), hotlock.MinLimit); !ok || l < limit {
			limit, ok = l, true
		}
	}
	return limit, ok
}

// MySQLSessionLimits returns the statements that set, on a pinned MySQL or
// MariaDB connection, the session limits derived from limit (a
// [ServerLimit]), saving the values they replace in user variables, and
// the statement that sets those back: MariaDB's max_statement_time
// (seconds, every statement, lock waits included); MySQL's
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
