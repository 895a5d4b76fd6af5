package mysqldb

import (
	"database/sql/driver"
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/go-sql-driver/mysql"
)

// Classifier classifies the errors of MySQL and MariaDB as
// go-sql-driver/mysql reports them: server errors by the Number of the
// first *mysql.MySQLError in the tree, then the driver's connection errors.
// The verdicts (docs/backends.md §3, §4, §12):
//
//	1213 ER_LOCK_DEADLOCK         RetryTransaction (InnoDB rolled back the whole
//	                              transaction; its savepoints are gone)
//	1020 ER_CHECKREAD             RetryTransaction (MariaDB's write conflict under
//	                              innodb_snapshot_isolation: the same)
//	1206 ER_LOCK_TABLE_FULL       RetryTransaction (InnoDB's lock structures filled
//	                              the buffer pool: the same)
//	1205 ER_LOCK_WAIT_TIMEOUT     RetryStatement (only the statement is rolled back,
//	                              unless innodb_rollback_on_timeout is on)
//	3572 ER_LOCK_NOWAIT           RetryStatement (⚠ rollback scope unverified)
//	3024 ER_QUERY_TIMEOUT         RetryStatement (MySQL max_execution_time)
//	1969 ER_STATEMENT_TIMEOUT     RetryStatement (MariaDB max_statement_time)
//	1040 ER_CON_COUNT_ERROR       RetryTransaction (connect again with backoff)
//	1047 WSREP not ready (Galera) RetryTransaction (a node outside the primary
//	                              component: a node-level failure; another node
//	                              can serve the transaction, see [Nodes])
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
// is dead, so Classifier returns RetryTransaction. When the request was a
// COMMIT the outcome is unknown; telling that apart needs to know that the
// failed statement was the COMMIT, which only the transaction scope knows,
// so it is the scope, with the COMMIT rules of the [MySQL] and [MariaDB]
// dialects, not this classifier, that reports such an error as Ambiguous
// (docs/backends.md §4.4, §4.7, §11).
//
// Galera's 1047 ("WSREP has not yet prepared node for application use")
// answers every statement, BEGIN included, on a node that is outside the
// primary component; nothing ran (§7.5). The transaction can run on another
// node, or on this one once it has rejoined: [Nodes] begins the next attempt
// elsewhere. Transport and context errors other than the two above are left to
// github.com/dbop-go/dbop/classifiers' Network and Context, which the
// dialects ask next.
//
// Any other error is Unclassified. Classifier is safe for concurrent use.
func Classifier(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		if v := number(me.Number); v != dbop.Unclassified {
			return v
		}
	}
	switch {
	case errors.Is(err, driver.ErrBadConn): // returned only when nothing was written (§4.3)
		return dbop.RetryTransaction
	case errors.Is(err, mysql.ErrInvalidConn): // the read failed after the write (§4.4)
		return dbop.RetryTransaction
	}
	return dbop.Unclassified
}

// number maps a MySQL or MariaDB server error number to a verdict.
func number(n uint16) dbop.Verdict {
	switch n {
	case 1213: // ER_LOCK_DEADLOCK: "Retry the entire transaction" (docs/backends.md §3.1, §3.2); Galera's certification failure too (§7.2)
		return dbop.RetryTransaction
	case 1020: // ER_CHECKREAD: MariaDB's innodb_snapshot_isolation write conflict rolls back the whole transaction,
		// as a deadlock does; on by default from MariaDB 11.6.2 (docs/backends.md §3.18)
		return dbop.RetryTransaction
	case 1206: // ER_LOCK_TABLE_FULL: InnoDB rolls back the whole transaction, as at a deadlock (docs/backends.md §3.20)
		return dbop.RetryTransaction
	case 1205: // ER_LOCK_WAIT_TIMEOUT: only the statement is rolled back (§3.3); MariaDB's NOWAIT too (§3.5)
		return dbop.RetryStatement
	case 3572: // ER_LOCK_NOWAIT: number confirmed, rollback scope ⚠ (§3.5); treated like 1205
		return dbop.RetryStatement
	case 3024, // ER_QUERY_TIMEOUT (MySQL): the transaction and connection are unaffected (§3.6, ⚠)
		1969: // ER_STATEMENT_TIMEOUT (MariaDB): leaves the transaction and connection as they were (§3.7)
		return dbop.RetryStatement
	case 1040: // ER_CON_COUNT_ERROR (08004): max_connections reached, retry connect with backoff (§3.11)
		return dbop.RetryTransaction
	case 1047: // ER_UNKNOWN_COM_ERROR (08S01), Galera's "WSREP has not yet prepared node": a node outside
		// the primary component refuses every statement before running it; a new transaction can run on
		// another node, or here once quorum is back (docs/backends.md §7.5, §7.9)
		return dbop.RetryTransaction
	case 1317: // ER_QUERY_INTERRUPTED: KILL QUERY, stopped on purpose (§3.11)
		return dbop.NotRetryable
	case 1062, // ER_DUP_ENTRY
		1451, // ER_ROW_IS_REFERENCED_2: the constraint family GORM translates (§3 table, §9.5)
		1452: // ER_NO_REFERENCED_ROW_2
		return dbop.NotRetryable
	case 1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: a write in a READ ONLY transaction fails every time (§3 table, §4.5)
		1305: // ER_SP_DOES_NOT_EXIST: "SAVEPOINT … does not exist" (§3.9, §3.2), like PostgreSQL's 3B001
		return dbop.NotRetryable
	case 1193: // ER_UNKNOWN_SYSTEM_VARIABLE: "Unknown system variable '%s'" (§3.8)
		// A MySQL-only variable set on MariaDB (max_execution_time), or one a server version lacks:
		// every attempt sets it again.
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
