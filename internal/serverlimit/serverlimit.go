// Package serverlimit writes the SQL that sets a server-side limit derived
// from a deadline (resolve.ServerLimits) or a dbop.HotSpot's bound
// (hotlock.PostgresBound) so that it only ever lowers the limit in force:
// the server computes the smaller of the derived value and the value in
// force, within the statement that sets it, so it costs no round trip of
// its own. A value in force of 0 means "no limit" for every setting written
// here but innodb_lock_wait_timeout, and the derived value then applies.
//
// A limit the user gave explicitly (an adapter's LockTimeout or
// StatementTimeout option) is not written here: it is set as given, lowered
// to the derived value where that is smaller, whatever was in force.
package serverlimit

import (
	"math"
	"strconv"
	"strings"
)

// PostgresMaxMillis is the most statement_timeout and lock_timeout take,
// 2^31-1 ms (about 24.8 days); a larger value makes set_config fail with
// 22023 (docs/backends.md §1.18).
const PostgresMaxMillis = math.MaxInt32

// PostgresLeast returns the call that sets the PostgreSQL parameter name, a
// limit in milliseconds (statement_timeout, lock_timeout), for the rest of
// the transaction to the smaller of ms and the value in force, or to ms when
// the value in force is 0 ("no limit"):
//
//	set_config('name', CASE WHEN cur = '0' OR <cur as interval> > '<ms>ms'
//		THEN '<ms>' ELSE cur END, true)
//
// where cur is current_setting('name'), text as SHOW gives it: on
// PostgreSQL with a unit ('150ms', '5s', '1min'), which the interval type
// reads; a bare number (CockroachDB shows its timeouts so, in milliseconds,
// where the interval type would read seconds) gets "ms" appended first. The
// value in force, when it is the smaller, is set again as the text it was
// shown as, which the parameter reads back exactly (docs/backends.md
// §1.18). This form compares intervals and names ms twice; it costs the
// server a tenth to a half less than PostgresLeastExpr's numeric form
// (§1.18), which stays for a statement whose value is a placeholder.
//
// set_config(…, true) is the function form of SET LOCAL, which takes no
// expression (§1.4). The result is a row: it is run with statements whose
// results are discarded (pgx's and database/sql's Exec without arguments
// use the simple protocol and ignore rows, §2.5). name is one of this
// module's constants, never user input.
//
// An ms above PostgresMaxMillis (a deadline more than about 24.8 days
// away) is taken as PostgresMaxMillis: set with a 0 in force, it would
// make set_config fail, and with it the BEGIN round trip (§1.18), where
// PostgresLeastExpr's numeric form, the one used before, gave 2^31-1.
func PostgresLeast(name string, ms int64) string {
	cur := "current_setting('" + name + "')"
	v := strconv.FormatInt(min(ms, PostgresMaxMillis), 10)
	asInterval := "(" + cur + " || CASE WHEN strpos('0123456789', right(" + cur + ", 1)) > 0 THEN 'ms' ELSE '' END)::interval"
	return "set_config('" + name + "', CASE WHEN " + cur + " = '0' OR " + asInterval + " > '" + v + "ms' THEN '" + v + "' ELSE " + cur + " END, true)"
}

// PostgresLeastExpr returns the expression, numeric, of the smaller of v
// (an expression in milliseconds) and the value in force of the parameter
// name, v where the value in force is 0 ("no limit"):
//
//	LEAST(COALESCE(NULLIF(in force, 0), 2147483647), v)
//
// where the value in force, in milliseconds, is read from current_setting,
// which returns it as SHOW does: on PostgreSQL text with a unit ('150ms',
// '5s', '1min', '0'), which the interval type reads, EXTRACT(EPOCH …)
// giving its seconds; a bare number (CockroachDB shows its timeouts so, in
// milliseconds, where the interval type would read seconds) is taken as
// milliseconds. A 0 in force counts as the most these parameters take
// (2^31-1 ms), so that v wins, without relying on LEAST's handling of NULL
// (PostgreSQL ignores NULL arguments, other servers do not), and v appears
// once: a driver whose placeholders are positional (?) takes one argument
// for it (§1.18).
func PostgresLeastExpr(name, v string) string {
	cur := "current_setting('" + name + "')"
	inForce := "CASE WHEN translate(" + cur + ", '0123456789', '') = '' THEN " + cur + "::numeric ELSE EXTRACT(EPOCH FROM " + cur + "::interval) * 1000 END"
	return "LEAST(COALESCE(NULLIF(" + inForce + ", 0), 2147483647), " + v + ")"
}

// PostgresSelect returns "SELECT " followed by calls (PostgresLeast's, or
// other set_config calls) separated by commas: one statement, which sets
// every parameter named, or "" when there are none.
func PostgresSelect(calls []string) string {
	if len(calls) == 0 {
		return ""
	}
	return "SELECT " + strings.Join(calls, ", ")
}

// MySQLLeast returns the expression that a MySQL or MariaDB SET assigns to
// the session variable name to set it to the smaller of value and the value
// in force: with zeroIsNone (max_statement_time, max_execution_time, whose
// 0 is "no limit"), value when the value in force is 0:
//
//	IF(@@SESSION.name = 0, value, LEAST(@@SESSION.name, value))
//
// and without it (innodb_lock_wait_timeout) LEAST(@@SESSION.name, value).
// MySQL's LEAST returns NULL when an argument is NULL, hence IF rather than
// NULLIF. A SET evaluates every right-hand side before it assigns any
// variable, so @@SESSION.name is the value in force before the SET, in
// this assignment and in one that saves it into a user variable in the
// same SET (docs/backends.md §3.15). value is a number this module
// formatted.
func MySQLLeast(name, value string, zeroIsNone bool) string {
	v := "@@SESSION." + name
	least := "LEAST(" + v + ", " + value + ")"
	if !zeroIsNone {
		return least
	}
	return "IF(" + v + " = 0, " + value + ", " + least + ")"
}

// Join joins the statements that are not "" with "; ", for one round trip
// of the simple query protocol.
func Join(stmts ...string) string {
	var out string
	for _, s := range stmts {
		switch {
		case s == "":
		case out == "":
			out = s
		default:
			out += "; " + s
		}
	}
	return out
}
