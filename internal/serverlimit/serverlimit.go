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
	"strconv"
	"strings"
)

// PostgresLeast returns the call that sets the PostgreSQL parameter name, a
// limit in milliseconds (statement_timeout, lock_timeout), for the rest of
// the transaction to the smaller of ms and the value in force, or to ms when
// the value in force is 0 ("no limit"):
//
//	set_config('name', LEAST(NULLIF(EXTRACT(EPOCH FROM current_setting('name')::interval) * 1000, 0), ms)::bigint::text, true)
//
// set_config(…, true) is the function form of SET LOCAL, which takes no
// expression (docs/backends.md §1.4). current_setting returns the value as
// SHOW does, text with a unit ('150ms', '5s', '1min', '0'), which the
// interval type reads; EXTRACT(EPOCH …) gives its seconds. PostgreSQL's
// LEAST ignores NULL arguments, so NULLIF makes a 0 in force ("no limit")
// yield ms (§1.18). The result is a row: it is run with statements whose
// results are discarded (pgx's and database/sql's Exec without arguments
// use the simple protocol and ignore rows, §2.5). name is one of this
// module's constants, never user input.
func PostgresLeast(name string, ms int64) string {
	return "set_config('" + name + "', LEAST(NULLIF(EXTRACT(EPOCH FROM current_setting('" + name +
		"')::interval) * 1000, 0), " + strconv.FormatInt(ms, 10) + ")::bigint::text, true)"
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
