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
//	*mysql.MySQLError 1927, 1053, 1317      unknown     Ambiguous
//	any other *mysql.MySQLError             no          Unclassified
//	mysql.ErrInvalidConn, anything else     unknown     Ambiguous
//
// The driver returns driver.ErrBadConn only when nothing was written
// (errBadConnNoWrite → markBadConn) or the connection was already closed
// (§4.3). A MySQLError is built only from the server's answer (§4.2), so
// the server refused the COMMIT (Galera's 1213 among them, §7.2) — except
// ER_CONNECTION_KILLED (1927, MariaDB), ER_SERVER_SHUTDOWN (1053) and
// ER_QUERY_INTERRUPTED (1317), which report the session or statement being
// stopped, not the COMMIT being refused: judged ambiguous, conservatively
// (§3.11, ⚠ not verified live). mysql.ErrInvalidConn means the read failed
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
		case 1927, 1053, 1317:
			return dbop.Ambiguous
		}
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}
