package mysqldb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/dboptest"
)

// docs/backends.md §4.7 and §11: go-sql-driver's ErrBadConn was not sent,
// a server error answers the COMMIT, ErrInvalidConn and context errors are
// ambiguous.
func TestCommitOutcome(t *testing.T) {
	cases := []verdictCase{
		{"ErrBadConn: nothing written", dboptest.BadConn(), dbop.RetryTransaction},
		{"1213 answering COMMIT", dboptest.MySQLError(1213, "Deadlock found"), dbop.Unclassified},
		{"1205 answering COMMIT", dboptest.MySQLError(1205, "Lock wait timeout"), dbop.Unclassified},
		{"1062 answering COMMIT", dboptest.MySQLError(1062, "Duplicate entry"), dbop.Unclassified},
		{"1927 connection killed", dboptest.MySQLError(1927, "Connection was killed"), dbop.Ambiguous},
		{"1053 server shutdown", dboptest.MySQLError(1053, "Server shutdown in progress"), dbop.Ambiguous},
		{"1317 query interrupted", dboptest.MySQLError(1317, "Query execution was interrupted"), dbop.Ambiguous},
		// MariaDB's max_statement_time, which the adapters derive from a
		// deadline and which is in force during COMMIT: the same kill as
		// 1317's (KILL_TIMEOUT), so no more a refusal than 1317 is.
		{"1969 max_statement_time", dboptest.MySQLError(1969, "Query execution was interrupted (max_statement_time exceeded)"), dbop.Ambiguous},
		{"ErrInvalidConn: read failed after the write", dboptest.InvalidConn(), dbop.Ambiguous},
		{"context deadline", context.DeadlineExceeded, dbop.Ambiguous},
		{"context canceled", context.Canceled, dbop.Ambiguous},
		{"network error", dboptest.NetworkError(), dbop.Ambiguous},
		{"unknown error", errors.New("what happened"), dbop.Ambiguous},
	}
	checkVerdicts(t, "MySQL.CommitOutcome", mysqldb.MySQL.CommitOutcome, cases)
	checkVerdicts(t, "MariaDB.CommitOutcome", mysqldb.MariaDB.CommitOutcome, cases)
}

func TestNil(t *testing.T) {
	for name, f := range map[string]func(error) dbop.Verdict{
		"Classifier":            mysqldb.Classifier,
		"MySQL.Classify":        mysqldb.MySQL.Classify,
		"MariaDB.Classify":      mysqldb.MariaDB.Classify,
		"MySQL.CommitOutcome":   mysqldb.MySQL.CommitOutcome,
		"MariaDB.CommitOutcome": mysqldb.MariaDB.CommitOutcome,
	} {
		if v := f(nil); v != dbop.Unclassified {
			t.Errorf("%s(nil) = %v, want unclassified", name, v)
		}
	}
}
