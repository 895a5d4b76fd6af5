package sqldb

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/internal/sqldialect"
)

// timeouts is how InTx applies LockTimeout and StatementTimeout, and the
// limits it derives from the time left on the caller's context, for one
// dialect: server-side limits instead of context deadlines, which close
// the connection (docs/backends.md §2.7, §4.6, §10.7). It is built once, by
// InTx; [timeouts.attempt] gives one attempt's statements.
type timeouts struct {
	family     sqldialect.Family
	lock, stmt time.Duration // given; 0 when not

	// local holds PostgreSQL's SET LOCAL statements for the limits given,
	// run first in each transaction; "" when there are none. SET LOCAL
	// lasts until the end of the transaction (docs/backends.md §1.4), so
	// nothing outlives the attempt.
	local string
	// session holds the session settings of MySQL, MariaDB and SQLite for
	// the limits given, which have no transaction-scoped form and stay on a
	// pooled connection (docs/backends.md §3.10); nil when there are none.
	session *session
}

// session describes session settings applied to a pinned connection for the
// length of one attempt, and restored to their previous values afterwards.
//
// On MySQL and MariaDB one statement saves each setting's value in a user
// variable and sets the attempt's (a SET with several assignments changes
// all of them or, when one fails, none), and one statement sets the saved
// values back and clears the variables: two round trips, and nothing read
// from the server reaches the SQL text. SQLite's PRAGMA has no such form:
// its value is read (read), checked and written back (restoreSQL).
type session struct {
	family  sqldialect.Family
	names   []string // the settings, in the order read reads them
	read    string   // SQLite: reads the current values; "" on MySQL and MariaDB
	set     string   // sets the attempt's values (and saves the old ones)
	restore string   // MySQL and MariaDB: sets the saved values back
}

// sessionVar is the user variable in which a session setting's value is
// kept while an attempt runs.
func sessionVar(name string) string { return "@dbop_saved_" + name }

// newSession returns the session that sets names to values on MySQL or
// MariaDB.
func newSession(f sqldialect.Family, names, values []string) *session {
	s := &session{family: f, names: names}
	var sets, restores []string
	for i, name := range names {
		sets = append(sets, sessionVar(name)+" = @@SESSION."+name, "@@SESSION."+name+" = "+values[i])
		restores = append(restores, "@@SESSION."+name+" = "+sessionVar(name), sessionVar(name)+" = NULL")
	}
	s.set = "SET " + strings.Join(sets, ", ")
	s.restore = "SET " + strings.Join(restores, ", ")
	return s
}

// newTimeouts plans the per-attempt timeouts of c for dialect d. It panics,
// naming caller, on a combination the dialect cannot honour.
func newTimeouts(caller string, d Dialect, c *config) timeouts {
	t := timeouts{family: d.Family, lock: c.lockTimeout, stmt: c.statementTimeout}
	if d.Family == sqldialect.SQLite && t.stmt > 0 {
		panic("sqldb: " + caller + ": StatementTimeout does not exist for SQLite; use dbop.WithTimeout, which interrupts the statement and keeps the connection")
	}
	if t.lock == 0 && t.stmt == 0 {
		return t
	}
	switch t.family {
	case sqldialect.Postgres:
		t.local = localSQL(millisOrNone(t.lock), millisOrNone(t.stmt))
	case sqldialect.SQLite:
		t.session = &session{family: t.family, names: []string{"busy_timeout"}, read: "PRAGMA busy_timeout", set: "PRAGMA busy_timeout = " + millis(t.lock)}
	default:
		t.session = t.mySession(t.lockSeconds(), t.statementValue(t.stmt))
	}
	return t
}

// lockSeconds formats the lock timeout given for innodb_lock_wait_timeout,
// or returns "" when none was given.
func (t timeouts) lockSeconds() string {
	if t.lock <= 0 {
		return ""
	}
	return lockWaitSeconds(t.lock)
}

// localSQL returns PostgreSQL's SET LOCAL statements for one attempt, in
// one string: lock_timeout and statement_timeout to lock and stmt (in
// milliseconds; "" for not set). With no arguments pgx (docs/backends.md
// §2.5) and lib/pq use the simple query protocol, which runs several
// statements in one round trip.
func localSQL(lock, stmt string) string {
	var stmts []string
	if lock != "" {
		stmts = append(stmts, "SET LOCAL lock_timeout = "+lock)
	}
	if stmt != "" {
		stmts = append(stmts, "SET LOCAL statement_timeout = "+stmt)
	}
	return strings.Join(stmts, "; ")
}

// millisOrNone formats d with millis, or returns "" when d is 0 (not set).
func millisOrNone(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return millis(d)
}

// statementValue formats stmt, a StatementTimeout given, for the
// dialect's session setting, or returns "" when none was given.
func (t timeouts) statementValue(stmt time.Duration) string {
	switch {
	case stmt <= 0:
		return ""
	case t.family == sqldialect.MySQL:
		return millis(stmt)
	}
	return statementSeconds(stmt)
}

// mySession returns the session settings of MySQL or MariaDB for a lock
// wait limit (innodb_lock_wait_timeout, §3.4) and a statement limit
// (MySQL's max_execution_time, §3.6; MariaDB's max_statement_time, §3.7,
// §3.8), each a value or an expression for SET ("" for none), or nil when
// there are none.
func (t timeouts) mySession(lock, stmt string) *session {
	var names, values []string
	if lock != "" {
		names, values = append(names, "innodb_lock_wait_timeout"), append(values, lock)
	}
	if stmt != "" {
		name := "max_statement_time"
		if t.family == sqldialect.MySQL {
			name = "max_execution_time"
		}
		names, values = append(names, name), append(values, stmt)
	}
	if len(names) == 0 {
		return nil
	}
	return newSession(t.family, names, values)
}

// attempt returns the statements of one attempt that begins now: on
// PostgreSQL local, its SET LOCAL statements, and limits, one SELECT of
// set_config calls (each "" when there are none); elsewhere the session
// settings. They set the limits given and, when ctx has a deadline, the
// limits derived from the time left on it less a margin
// (resolve.ServerLimits):
//
//   - PostgreSQL: statement_timeout and lock_timeout, in milliseconds;
//     lock_timeout lowered to a dbop.HotSpot's bound on lock waits, where
//     that is smaller (resolve.ServerLimits).
//   - MariaDB: max_statement_time, which covers every statement and the
//     lock waits within it; innodb_lock_wait_timeout only as given.
//   - MySQL: max_execution_time, which covers read-only SELECT only
//     (§3.6), and innodb_lock_wait_timeout in whole seconds, rounded down,
//     when at least one second is left; an UPDATE that runs long for
//     another reason than a row lock is not covered.
//   - SQLite: nothing; a context deadline interrupts the statement and
//     keeps the connection there (§5.9).
//
// A derived limit only lowers what is in force. A limit given
// ([LockTimeout], [StatementTimeout]) is set to the smaller of the given
// and the derived value, plainly (with SET LOCAL on PostgreSQL): the user
// chose it, over any default. A limit not given is set to the smaller of
// the derived value and the value in force on the server (a role's, a
// database's or the global default, a DSN's or a session's SET), which the
// server computes in the statement that sets it (serverlimit.PostgresLeast
// in limits, serverlimit.MySQLLeast; docs/backends.md §1.18, §3.15): a
// lower limit of the user's own is never lifted, and 0 in force ("no
// limit") takes the derived value.
//
// A derived limit is rounded down, so that the margin stays whole. Without
// a deadline it returns what newTimeouts built, allocating nothing.
func (t timeouts) attempt(ctx context.Context) (local, limits string, s *session) {
	stmtLimit, lockLimit, ok := resolve.ServerLimits(ctx)
	if !ok || t.family == sqldialect.SQLite {
		return t.local, "", t.session
	}
	if t.family == sqldialect.Postgres {
		var lock, stmt string
		var least []string
		for _, l := range [...]struct {
			name         string
			given, limit time.Duration
			value        *string
		}{{"lock_timeout", t.lock, lockLimit, &lock}, {"statement_timeout", t.stmt, stmtLimit, &stmt}} {
			ms := int64(l.limit / time.Millisecond) // ServerLimits leaves at least a millisecond
			switch {
			case l.given == 0:
				least = append(least, serverlimit.PostgresLeast(l.name, ms))
			case l.limit < l.given:
				*l.value = strconv.FormatInt(ms, 10)
			default:
				*l.value = millis(l.given)
			}
		}
		return localSQL(lock, stmt), serverlimit.PostgresSelect(least), nil
	}
	// One limit covers statements and lock waits: the smaller.
	limit := min(stmtLimit, lockLimit)
	lock := t.lockSeconds()
	stmt := t.statementValue(t.stmt)
	if t.family == sqldialect.MariaDB {
		stmt = mysqlValue("max_statement_time", t.stmt, limit, statementSecondsDown(limit), stmt, true)
		return "", "", t.mySession(lock, stmt)
	}
	// MySQL
	if secs := int64(limit / time.Second); secs >= 1 {
		lock = mysqlValue("innodb_lock_wait_timeout", t.lock, time.Duration(secs)*time.Second, strconv.FormatInt(secs, 10), lock, false)
	}
	stmt = mysqlValue("max_execution_time", t.stmt, limit, strconv.FormatInt(int64(limit/time.Millisecond), 10), stmt, true)
	return "", "", t.mySession(lock, stmt)
}

// mysqlValue returns the value a MySQL or MariaDB session variable name
// takes for an attempt whose derived limit is derived, formatted as value:
// with no option given (given 0), the smaller of it and the value in force,
// computed by the server (serverlimit.MySQLLeast; zeroIsNone: a 0 in force
// is "no limit"); the derived value where it is smaller than the one given;
// else keep, the given value as the option formats it.
func mysqlValue(name string, given, derived time.Duration, value, keep string, zeroIsNone bool) string {
	switch {
	case given == 0:
		return serverlimit.MySQLLeast(name, value, zeroIsNone)
	case derived < given:
		return value
	}
	return keep
}

// restoreSQL returns the statement that sets SQLite's busy_timeout back to
// prev, the value read before the attempt. The value is parsed as a number
// and written back in plain decimal notation, so that nothing read from
// the server reaches the SQL text unchecked. It fails on anything but a
// finite number >= 0.
func (s *session) restoreSQL(prev []string) (string, error) {
	if len(prev) != len(s.names) {
		return "", fmt.Errorf("sqldb: read %d session values, want %d", len(prev), len(s.names))
	}
	values := make([]string, len(prev))
	for i, v := range prev {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("sqldb: unexpected value %q of %s", v, s.names[i])
		}
		values[i] = strconv.FormatFloat(f, 'f', -1, 64)
	}
	return "PRAGMA busy_timeout = " + values[0], nil
}

// ceilDiv returns d/unit rounded up, for d > 0.
func ceilDiv(d, unit time.Duration) int64 {
	q := int64(d / unit)
	if d%unit != 0 {
		q++
	}
	return q
}

// millis formats d in whole milliseconds, rounded up so that a timeout never
// becomes 0 (which disables it in all three engines), and capped at the
// 32-bit range that lock_timeout, statement_timeout and busy_timeout take.
func millis(d time.Duration) string {
	return strconv.FormatInt(min(ceilDiv(d, time.Millisecond), 1<<31-1), 10)
}

// lockWaitSeconds formats d for innodb_lock_wait_timeout: whole seconds,
// rounded up, from 1 to 1073741824 (its range in MySQL 8.4 and MariaDB).
// A LockTimeout of 1.2s therefore waits up to 2s.
func lockWaitSeconds(d time.Duration) string {
	return strconv.FormatInt(min(ceilDiv(d, time.Second), 1<<30), 10)
}

// statementSeconds formats d for MariaDB's max_statement_time, a DOUBLE in
// seconds: microseconds rounded up, capped at 31536000 (one year, its
// maximum).
func statementSeconds(d time.Duration) string {
	return formatMicros(min(ceilDiv(d, time.Microsecond), 31536000*1e6))
}

// statementSecondsDown is statementSeconds rounded down, for a limit
// derived from a deadline; d is at least a millisecond.
func statementSecondsDown(d time.Duration) string {
	return formatMicros(min(int64(d/time.Microsecond), 31536000*1e6))
}

func formatMicros(us int64) string { return fmt.Sprintf("%d.%06d", us/1e6, us%1e6) }
