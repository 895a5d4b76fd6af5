package sqldb

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/sqldialect"
)

// timeouts is how InTx applies LockTimeout and StatementTimeout for one
// dialect: server-side limits instead of context deadlines, which close
// the connection (docs/backends.md §2.7, §4.6, §10.7). It is built once, by
// InTx.
type timeouts struct {
	// local holds PostgreSQL's SET LOCAL statements, run first in each
	// transaction; "" when there are none. SET LOCAL lasts until the end of
	// the transaction (docs/backends.md §1.4), so nothing outlives the
	// attempt.
	local string
	// session holds the session settings of MySQL, MariaDB and SQLite, which
	// have no transaction-scoped form and stay on a pooled connection
	// (docs/backends.md §3.10); nil when there are none.
	session *session
}

// session describes session settings applied to a pinned connection for the
// length of one attempt, and restored to their previous values afterwards.
type session struct {
	family sqldialect.Family
	names  []string // the settings, in the order read reads them
	read   string   // reads the current values
	set    string   // sets the attempt's values
}

// newTimeouts plans the per-attempt timeouts of c for dialect d. It panics,
// naming caller, on a combination the dialect cannot honour.
func newTimeouts(caller string, d Dialect, c *config) timeouts {
	lock, stmt := c.lockTimeout, c.statementTimeout
	if lock == 0 && stmt == 0 {
		return timeouts{}
	}
	type setting struct{ name, value string }
	var settings []setting
	switch f := d.Family; f {
	case sqldialect.Postgres:
		var stmts []string
		if lock > 0 {
			stmts = append(stmts, "SET LOCAL lock_timeout = "+millis(lock))
		}
		if stmt > 0 {
			stmts = append(stmts, "SET LOCAL statement_timeout = "+millis(stmt))
		}
		// One round trip: with no arguments pgx (docs/backends.md §2.5) and
		// lib/pq use the simple query protocol, which runs several
		// statements.
		return timeouts{local: strings.Join(stmts, "; ")}
	case sqldialect.MySQL, sqldialect.MariaDB:
		if lock > 0 { // §3.4
			settings = append(settings, setting{"innodb_lock_wait_timeout", lockWaitSeconds(lock)})
		}
		if stmt > 0 && f == sqldialect.MySQL { // §3.6
			settings = append(settings, setting{"max_execution_time", millis(stmt)})
		}
		if stmt > 0 && f == sqldialect.MariaDB { // §3.7, §3.8
			settings = append(settings, setting{"max_statement_time", statementSeconds(stmt)})
		}
	case sqldialect.SQLite:
		if stmt > 0 {
			panic("sqldb: " + caller + ": StatementTimeout does not exist for SQLite; use dbop.WithTimeout, which interrupts the statement and keeps the connection")
		}
		s := &session{family: f, names: []string{"busy_timeout"}, read: "PRAGMA busy_timeout", set: "PRAGMA busy_timeout = " + millis(lock)}
		return timeouts{session: s}
	}
	s := &session{family: d.Family}
	var reads, sets []string
	for _, st := range settings {
		s.names = append(s.names, st.name)
		reads = append(reads, "@@SESSION."+st.name)
		sets = append(sets, "@@SESSION."+st.name+" = "+st.value)
	}
	s.read = "SELECT " + strings.Join(reads, ", ")
	s.set = "SET " + strings.Join(sets, ", ")
	return timeouts{session: s}
}

// restoreSQL returns the statement that sets the settings back to prev, the
// values read before the attempt. The values are parsed as numbers and
// written back in plain decimal notation: the server may report them in
// exponent notation (MariaDB returns max_statement_time 0.000001 as
// "1e-06"), and nothing read from the server reaches the SQL text
// unchecked. It fails on anything but a finite number >= 0, which every one
// of these settings is.
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
	if s.family == sqldialect.SQLite {
		return "PRAGMA busy_timeout = " + values[0], nil
	}
	sets := make([]string, len(values))
	for i, v := range values {
		sets[i] = "@@SESSION." + s.names[i] + " = " + v
	}
	return "SET " + strings.Join(sets, ", "), nil
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
	us := min(ceilDiv(d, time.Microsecond), 31536000*1e6)
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}
