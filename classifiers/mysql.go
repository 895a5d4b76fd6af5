package classifiers

import (
	"database/sql/driver"
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/go-sql-driver/mysql"
)

// MySQL classifies the errors of MySQL and MariaDB as go-sql-driver/mysql
// reports them: server errors by the Number of the first *mysql.MySQLError in
// the tree, then the driver's connection errors. The verdicts
// (DB-REFERENCE §3):
//
//	1213 ER_LOCK_DEADLOCK         RetryTransaction (InnoDB rolled back the whole
//	                              transaction; its savepoints are gone)
//	1205 ER_LOCK_WAIT_TIMEOUT     RetryStatement (only the statement is rolled back,
//	                              unless innodb_rollback_on_timeout is on)
//	3572 ER_LOCK_NOWAIT           RetryStatement (⚠ rollback scope unverified)
//	3024 ER_QUERY_TIMEOUT         RetryStatement (MySQL max_execution_time)
//	1969 ER_STATEMENT_TIMEOUT     RetryStatement (MariaDB max_statement_time)
//	1040 ER_CON_COUNT_ERROR       RetryTransaction (connect again with backoff)
//	1317 ER_QUERY_INTERRUPTED     NotRetryable (KILL QUERY: stopped on purpose)
//	1062 ER_DUP_ENTRY             NotRetryable
//	1792 read-only transaction    NotRetryable
//	1305 no such savepoint        NotRetryable
//	1451, 1452 (foreign keys)     NotRetryable
//	1193 unknown system variable  NotRetryable
//	driver.ErrBadConn             RetryTransaction (nothing was sent)
//	mysql.ErrInvalidConn          RetryTransaction (see below)
//
// mysql.ErrInvalidConn means that the connection failed after the request was
// written: the server may have run it, and the transaction on that connection
// is dead, so MySQL returns RetryTransaction. When the request was a COMMIT
// the outcome is unknown; telling that apart needs to know that the failed
// statement was the COMMIT, which only the transaction scope knows, so it is
// the scope, not this classifier, that reports such an error as Ambiguous
// (DB-REFERENCE §3 "Commit", §6).
//
// Any other error is Unclassified. MySQL is safe for concurrent use.
func MySQL(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		if v := mysqlNumber(me.Number); v != dbop.Unclassified {
			return v
		}
	}
	switch {
	case errors.Is(err, driver.ErrBadConn): // returned only when nothing was written (packets.go markBadConn)
		return dbop.RetryTransaction
	case errors.Is(err, mysql.ErrInvalidConn): // the read failed after the write (readPacket)
		return dbop.RetryTransaction
	}
	return dbop.Unclassified
}

// mysqlNumber maps a MySQL or MariaDB server error number to a verdict.
func mysqlNumber(n uint16) dbop.Verdict {
	switch n {
	case 1213: // ER_LOCK_DEADLOCK: "Retry the entire transaction" (MySQL 8.4 innodb-error-handling)
		return dbop.RetryTransaction
	case 1205: // ER_LOCK_WAIT_TIMEOUT: "roll[s] back the current statement" (same page)
		return dbop.RetryStatement
	case 3572: // ER_LOCK_NOWAIT: number confirmed, scope ⚠ in DB-REFERENCE §3; treated like 1205
		return dbop.RetryStatement
	case 3024, // ER_QUERY_TIMEOUT (MySQL): aborts "the individual query without affecting the larger transaction"
		1969: // ER_STATEMENT_TIMEOUT (MariaDB): "no effect on any larger transaction or connection contexts"
		return dbop.RetryStatement
	case 1040: // ER_CON_COUNT_ERROR (08004): retry connect with backoff (DB-REFERENCE summary)
		return dbop.RetryTransaction
	case 1317: // ER_QUERY_INTERRUPTED: KILL QUERY, "never automatically" (DB-REFERENCE summary)
		return dbop.NotRetryable
	case 1062, // ER_DUP_ENTRY
		1451, // ER_ROW_IS_REFERENCED_2: the constraint family GORM translates (DB-REFERENCE §8)
		1452: // ER_NO_REFERENCED_ROW_2
		return dbop.NotRetryable
	case 1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: a write in a READ ONLY transaction fails every time
		1305: // ER_SP_DOES_NOT_EXIST: "SAVEPOINT … does not exist" (DB-REFERENCE §3), like PostgreSQL's 3B001
		return dbop.NotRetryable
	case 1193: // ER_UNKNOWN_SYSTEM_VARIABLE: "Unknown system variable '%s'" (MySQL 8.4 error reference; MariaDB's is the same)
		// A MySQL-only variable set on MariaDB (max_execution_time), or one a server version lacks:
		// every attempt sets it again.
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
