package mysqldb

import (
	"database/sql/driver"
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/go-sql-driver/mysql"
)

// commitOutcome judges a COMMIT error from go-sql-driver/mysql, whose
// Tx.Commit is exec("COMMIT") with no context watch (docs/backends.md §4.7,
// §11). It is the CommitOutcome of the [MySQL] and [MariaDB] dialects:
//
//	error                                   committed?  verdict
//	driver.ErrBadConn                       no          RetryTransaction
//	*mysql.MySQLError 1927, 1053, 1317,     unknown     Ambiguous
//	  1969
//	any other *mysql.MySQLError             no          Unclassified
//	mysql.ErrInvalidConn, anything else     unknown     Ambiguous
//
// The driver returns driver.ErrBadConn only when nothing was written
// (errBadConnNoWrite → markBadConn) or the connection was already closed
// (§4.3). A MySQLError is built only from the server's answer (§4.2), so
// the server refused the COMMIT (Galera's 1213 among them, §7.2) — except
// ER_CONNECTION_KILLED (1927, MariaDB), ER_SERVER_SHUTDOWN (1053),
// ER_QUERY_INTERRUPTED (1317) and ER_STATEMENT_TIMEOUT (1969, MariaDB's
// max_statement_time, which the adapters derive from a deadline and which
// is in force during COMMIT), the errors of a killed session or statement
// (MariaDB's THD::killed_errno), which report the COMMIT being stopped, not
// refused: judged ambiguous, conservatively (§3.11, ⚠ a kill after the
// commit not verified live). mysql.ErrInvalidConn means the read failed
// after the write (§4.4).
func commitOutcome(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if errors.Is(err, driver.ErrBadConn) {
		return dbop.RetryTransaction
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch me.Number {
		case 1927, 1053, 1317, 1969:
			return dbop.Ambiguous
		}
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}
