package pgxdb

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// isNil reports whether h, a handle passed to a constructor, is nil: the
// nil interface, or a nil pointer of one of pgx's own types, which a
// nil check on the interface misses and which would panic deep inside Run.
func isNil(h any) bool {
	switch h := h.(type) {
	case nil:
		return true
	case *pgxpool.Pool:
		return h == nil
	case *pgxpool.Conn:
		return h == nil
	case *pgxpool.Tx:
		return h == nil
	case *pgx.Conn:
		return h == nil
	}
	return false
}

// nilType returns ": a nil *T" naming the type of a typed nil h, or "" for
// the nil interface, for the message of a constructor's panic.
func nilType(h any) string {
	if h == nil {
		return ""
	}
	return fmt.Sprintf(" (a nil %T)", h)
}
