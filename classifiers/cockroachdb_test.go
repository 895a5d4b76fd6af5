package classifiers_test

import (
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
)

func TestCockroachDB(t *testing.T) {
	pg := func(code, message string) error { return dboptest.PgError(code, message) }
	cases := []verdictCase{
		{"40001 restart transaction", pg("40001", "restart transaction: TransactionRetryWithProtoRefreshError: ReadWithinUncertaintyIntervalError"), dbop.RetryTransaction},
		{"CR000 legacy retry", pg("CR000", "restart transaction"), dbop.RetryTransaction},
		{"CR000 via another SQLState type", &sqlStateError{"CR000", "restart transaction"}, dbop.RetryTransaction},
		{"40003 result is ambiguous", pg("40003", "result is ambiguous (error=rpc error: code = Unavailable)"), dbop.Ambiguous},
		// YugabyteDB YSQL (docs/backends.md §6.6): 40001 and 40P01 retryable by
		// the client; 25P02, 2D000 and 3B001 not.
		{"YSQL 40P01", pg("40P01", "deadlock detected"), dbop.RetryTransaction},
		{"YSQL 25P02", pg("25P02", "current transaction is aborted"), dbop.NotRetryable},
		{"YSQL 2D000", pg("2D000", "invalid transaction termination"), dbop.NotRetryable},
		{"YSQL 3B001", pg("3B001", "savepoint does not exist"), dbop.NotRetryable},
		{"MySQL 1213 is not CockroachDB", dboptest.MySQLError(1213, "Deadlock found"), dbop.Unclassified},
		{"pgx.ErrTxCommitRollback is pgxdb's", pgx.ErrTxCommitRollback, dbop.Unclassified},
	}
	checkVerdicts(t, "CockroachDB", classifiers.CockroachDB, cases)
}

// Everything that is not CockroachDB's own goes to Postgres.
func TestCockroachDBDefersToPostgres(t *testing.T) {
	checkVerdicts(t, "CockroachDB", classifiers.CockroachDB, postgresCases(t))
}
