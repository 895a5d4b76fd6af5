package classifiers_test

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

// mysqlCases are the MySQL and MariaDB rows of DB-REFERENCE's summary table.
func mysqlCases() []verdictCase {
	my := func(n uint16, message string) error { return dboptest.MySQLError(n, message) }
	return []verdictCase{
		{"1213 deadlock", my(1213, "Deadlock found when trying to get lock; try restarting transaction"), dbop.RetryTransaction},
		{"1205 lock wait timeout", my(1205, "Lock wait timeout exceeded; try restarting transaction"), dbop.RetryStatement},
		{"3572 lock nowait", my(3572, "Statement aborted because lock(s) could not be acquired immediately and NOWAIT is set."), dbop.RetryStatement},
		{"3024 max_execution_time", my(3024, "Query execution was interrupted, maximum statement execution time exceeded"), dbop.RetryStatement},
		{"1969 max_statement_time", my(1969, "Query execution was interrupted (max_statement_time exceeded)"), dbop.RetryStatement},
		{"1040 too many connections", my(1040, "Too many connections"), dbop.RetryTransaction},
		{"1317 query interrupted", my(1317, "Query execution was interrupted"), dbop.NotRetryable},
		{"1792 read-only transaction", my(1792, "Cannot execute statement in a READ ONLY transaction."), dbop.NotRetryable},
		{"1305 savepoint does not exist", my(1305, "SAVEPOINT dbop_sp_1 does not exist"), dbop.NotRetryable},
		{"1062 duplicate entry", my(1062, "Duplicate entry 'a@b.c' for key 'users.email'"), dbop.NotRetryable},
		{"1451 row is referenced", my(1451, "Cannot delete or update a parent row: a foreign key constraint fails"), dbop.NotRetryable},
		{"1452 no referenced row", my(1452, "Cannot add or update a child row: a foreign key constraint fails"), dbop.NotRetryable},
		{"1193 unknown system variable", my(1193, "Unknown system variable 'max_execution_time'"), dbop.NotRetryable},
		{"driver.ErrBadConn", dboptest.BadConn(), dbop.RetryTransaction},
		{"mysql.ErrInvalidConn", dboptest.InvalidConn(), dbop.RetryTransaction},
	}
}

func TestMySQL(t *testing.T) {
	cases := append(mysqlCases(),
		verdictCase{"1146 no such table", dboptest.MySQLError(1146, "Table 'app.nope' doesn't exist"), dbop.Unclassified},
		verdictCase{"PostgreSQL 40001 is not MySQL", dboptest.PgError("40001", "could not serialize"), dbop.Unclassified},
		verdictCase{"deadline is Context's", context.DeadlineExceeded, dbop.Unclassified},
	)
	checkVerdicts(t, "MySQL", classifiers.MySQL, cases)
}
