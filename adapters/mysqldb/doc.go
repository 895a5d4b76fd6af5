// Package mysqldb holds what needs go-sql-driver/mysql's own types: the
// classifier of MySQL and MariaDB errors ([Classifier]) and the [MySQL] and
// [MariaDB] dialects of github.com/dbop-go/dbop/adapters/sqldb (values of
// [sqldb.Dialect]), which the GORM adapter takes too. Keeping them here lets
// the sqldb adapter and the classifiers package link no driver: a program
// links go-sql-driver/mysql only when it imports this package.
//
//	db, err := sql.Open("mysql", dsn)
//	…
//	transfer := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int64, error) {
//		…
//	}, sqldb.LockTimeout(2*time.Second))
//	n, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// For statements outside a transaction, pass the classifier to
// dbop.ClassifyBy:
//
//	op.With(dbop.WithRetry(backoff), dbop.ClassifyBy(mysqldb.Classifier, classifiers.Default))
//
// Which error means what comes from the repository's backend reference,
// docs/backends.md (§3 for the servers, §4 for the driver, §7 for Galera);
// each rule in the code names its section.
//
// # Dialects
//
// [MySQL] and [MariaDB] differ only in the statement time limit that
// sqldb.StatementTimeout sets: max_execution_time on MySQL (milliseconds,
// read-only SELECT only, error 3024), max_statement_time on MariaDB
// (seconds with microsecond precision, any statement, error 1969).
// MariaDB has no max_execution_time: setting it fails with 1193 on every
// attempt (docs/backends.md §3.8), so pick the dialect of the server.
//
// Both classify errors with [Classifier], then the transport and context
// rules of github.com/dbop-go/dbop/classifiers (Network, Context), and
// judge a failed COMMIT (docs/backends.md §4.7, §11):
//
//	COMMIT error                                  committed?  verdict
//	driver.ErrBadConn (nothing was written)       no          retry-transaction
//	*mysql.MySQLError answering the COMMIT        no          as classified (1213 → retry-transaction)
//	1927 connection killed, 1053 shutdown,        ⚠ unknown   ambiguous
//	1317 interrupted
//	mysql.ErrInvalidConn (read failed after the   unknown     ambiguous
//	write), a context error, anything else
//
// A deadlock (1213) ends the whole transaction on MariaDB 10.11: its
// savepoints are gone and later statements autocommit (docs/backends.md
// §3.2). The classifier calls it RetryTransaction, so a savepoint scope
// lets it out to the retry around the transaction.
//
// # Importing
//
// This package imports github.com/go-sql-driver/mysql, which registers the
// "mysql" database/sql driver.
package mysqldb
