package mysqldb_test

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/dboptest"
)

// mysqlCases are the MySQL and MariaDB rules of docs/backends.md §12.
func mysqlCases() []verdictCase {
	my := func(n uint16, message string) error { return dboptest.MySQLError(n, message) }
	return []verdictCase{
		{"1213 deadlock", my(1213, "Deadlock found when trying to get lock; try restarting transaction"), dbop.RetryTransaction},
		{"1206 lock table full", my(1206, "The total number of locks exceeds the lock table size"), dbop.RetryTransaction},
		{"1020 write conflict (MariaDB innodb_snapshot_isolation)", my(1020, "Record has changed since last read in table 't'; try restarting transaction"), dbop.RetryTransaction},
		{"1205 lock wait timeout", my(1205, "Lock wait timeout exceeded; try restarting transaction"), dbop.RetryStatement},
		{"3572 lock nowait", my(3572, "Statement aborted because lock(s) could not be acquired immediately and NOWAIT is set."), dbop.RetryStatement},
		{"3024 max_execution_time", my(3024, "Query execution was interrupted, maximum statement execution time exceeded"), dbop.RetryStatement},
		{"1969 max_statement_time", my(1969, "Query execution was interrupted (max_statement_time exceeded)"), dbop.RetryStatement},
		{"1040 too many connections", my(1040, "Too many connections"), dbop.RetryTransaction},
		{"1047 Galera node outside the primary component", my(1047, "WSREP has not yet prepared node for application use"), dbop.RetryTransaction},
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

func TestClassifier(t *testing.T) {
	cases := append(mysqlCases(),
		verdictCase{"1146 no such table", dboptest.MySQLError(1146, "Table 'app.nope' doesn't exist"), dbop.Unclassified},
		verdictCase{"PostgreSQL 40001 is not MySQL", dboptest.PgError("40001", "could not serialize"), dbop.Unclassified},
		verdictCase{"deadline is Context's", context.DeadlineExceeded, dbop.Unclassified},
		verdictCase{"network error is Network's", dboptest.NetworkError(), dbop.Unclassified},
	)
	checkVerdicts(t, "Classifier", mysqldb.Classifier, cases)
}

// The dialects read MySQL's errors, then transport and context errors; they
// do not misread another backend's.
func TestDialectClassify(t *testing.T) {
	for _, d := range []struct {
		name     string
		classify func(error) dbop.Verdict
	}{{"MySQL", mysqldb.MySQL.Classify}, {"MariaDB", mysqldb.MariaDB.Classify}} {
		t.Run(d.name, func(t *testing.T) {
			checkVerdicts(t, d.name+".Classify", d.classify, append(mysqlCases(),
				verdictCase{"network", dboptest.NetworkError(), dbop.RetryTransaction},
				verdictCase{"deadline", context.DeadlineExceeded, dbop.RetryTransaction},
				verdictCase{"canceled", context.Canceled, dbop.NotRetryable},
				verdictCase{"postgres", dboptest.PgError("40001", "serialize"), dbop.Unclassified},
			))
		})
	}
}

// Classifying allocates nothing, so a retry loop can classify every error.
func TestClassifierDoesNotAllocate(t *testing.T) {
	for _, err := range []error{
		dboptest.MySQLError(1205, "Lock wait timeout exceeded"),
		dboptest.InvalidConn(),
		dboptest.PgError("40001", "could not serialize"),
	} {
		if n := testing.AllocsPerRun(100, func() { mysqldb.MariaDB.Classify(err) }); n != 0 {
			t.Errorf("MariaDB.Classify(%v) allocates %v times per call, want 0", err, n)
		}
	}
}
