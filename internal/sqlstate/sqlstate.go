// Package sqlstate reads the SQLSTATE an error reports, without importing
// a driver.
package sqlstate

import "errors"

// Of returns the SQLSTATE of the first error in err's tree that reports
// one through an SQLState() string method (pgx's *pgconn.PgError, lib/pq's
// *pq.Error), looking through wrapped and joined errors, or "".
func Of(err error) string {
	if se, ok := errors.AsType[interface {
		error
		SQLState() string
	}](err); ok {
		return se.SQLState()
	}
	return ""
}
