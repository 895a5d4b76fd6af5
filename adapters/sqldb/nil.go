package sqldb

import (
	"database/sql"
	"fmt"
)

// isNil reports whether h, a handle passed to a constructor, is nil: the
// nil interface, or a nil *sql.DB, *sql.Conn or *sql.Tx, which a nil check
// on the interface misses and which would panic deep inside Run.
func isNil(h any) bool {
	switch h := h.(type) {
	case nil:
		return true
	case *sql.DB:
		return h == nil
	case *sql.Conn:
		return h == nil
	case *sql.Tx:
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
