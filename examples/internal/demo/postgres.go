package demo

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresCause names err by its SQLSTATE, as pgx reports it in a
// *pgconn.PgError (GORM's postgres driver runs pgx too): the code and its
// condition name for the codes the examples retry, such as
// "40P01 deadlock_detected", and the code and the server's message for
// others. An error that carries no SQLSTATE is named by its message.
func PostgresCause(err error) string {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return err.Error()
	}
	switch pgErr.Code {
	case "40001":
		return "40001 serialization_failure"
	case "40P01":
		return "40P01 deadlock_detected"
	case "55P03":
		return "55P03 lock_not_available"
	default:
		return pgErr.Code + " " + pgErr.Message
	}
}
