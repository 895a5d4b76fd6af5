package resolve

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
)

// MaxMargin is the most of the time left on a context that [ServerLimit]
// keeps for the client: the server's limit fires this long before the
// context's deadline at most. MarginFraction is the share of the time left
// it keeps when that is less.
//
// The margin must cover what separates the server's timer from the
// client's: the statement's trip to the server (the server's timer starts
// when it reads the statement), the timer's own lateness, and the error's
// trip back. benchmarks/resolve_test.go measures it
// (BenchmarkServerTimeoutOvershoot, BenchmarkDeadlineMargin; saved in
// benchmarks/results/resolve-margin.txt, discussed in docs/ambiguity.md):
// on a local server the error arrives a median 0.4–0.6 ms after the limit,
// but on a machine loaded several times over its cores the 99th
// percentile reached tens of milliseconds, and with deadlines of 50 ms or
// less the context then often wins. 50 ms leaves room for a network and
// for such stalls on long deadlines; 10 % keeps short deadlines useful. A
// context that wins costs the connection and the attempt, never an
// ambiguous COMMIT: COMMIT runs without the caller's cancellation.
//
// The limit is derived once, when the attempt begins, and applies to each
// statement from its own start: a statement that starts late in the
// attempt gets more time than is left, and a slow one may still be ended
// by the context.
const (
	MaxMargin      = 50 * time.Millisecond
	MarginFraction = 10
	// minLimit is the smallest limit worth setting: below it the context
	// ends the statement anyway.
	minLimit = time.Millisecond
)

// ServerLimit returns the limit a server-side timeout set now should have
// so that the server ends a statement before ctx's deadline does: the time
// left, less the smaller of a tenth of it and MaxMargin. Where a
// dbop.HotSpot asked for an earlier server deadline
// (hotlock.WithServerDeadline), the time left until that one, at least a
// millisecond. ok is false when ctx has neither, or its deadline leaves
// less than a millisecond.
func ServerLimit(ctx context.Context) (limit time.Duration, ok bool) {
	if deadline, has := ctx.Deadline(); has {
		if limit, ok = limitFor(time.Until(deadline)); !ok {
			return 0, false
		}
	}
	if at, has := hotlock.ServerDeadline(ctx); has {
		if l := max(time.Until(at), minLimit); !ok || l < limit {
			limit, ok = l, true
		}
	}
	return limit, ok
}

// limitFor returns the server-side limit for left, the time left before
// the deadline.
func limitFor(left time.Duration) (time.Duration, bool) {
	limit := left - min(left/MarginFraction, MaxMargin)
	if limit < minLimit {
		return 0, false
	}
	return limit, true
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
