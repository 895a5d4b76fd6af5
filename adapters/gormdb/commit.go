package gormdb

import (
	"database/sql"
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
)

// commitOutcomeFor returns the rules that judge a COMMIT error for GORM's
// dialector name: [classifiers.PostgresCommit] for "postgres" (GORM's
// postgres dialector runs pgx's database/sql driver) and
// [classifiers.MySQLCommit] for "mysql" (go-sql-driver/mysql). The
// dialector, not the error type, decides, because driver.ErrBadConn means
// "nothing was sent" from go-sql-driver but proves nothing from a
// PostgreSQL driver. Any other dialector gets the safe default: every
// COMMIT error is ambiguous.
//
// Before those rules, sql.ErrTxDone is ambiguous: the transaction was
// ended by someone else — database/sql after its context ended, or fn
// itself — so whether fn's work was committed is unknown to this scope.
func commitOutcomeFor(dialector string) func(error) dbop.Verdict {
	rules := func(error) dbop.Verdict { return dbop.Ambiguous }
	switch dialector {
	case "postgres":
		rules = classifiers.PostgresCommit
	case "mysql":
		rules = classifiers.MySQLCommit
	}
	return func(err error) dbop.Verdict {
		if errors.Is(err, sql.ErrTxDone) {
			return dbop.Ambiguous
		}
		return rules(err)
	}
}
