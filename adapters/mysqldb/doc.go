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
//	1317 interrupted, 1969 max_statement_time
//	mysql.ErrInvalidConn (read failed after the   unknown     ambiguous
//	write), a context error, anything else
//
// A deadlock (1213) ends the whole transaction on MariaDB 10.11: its
// savepoints are gone and later statements autocommit (docs/backends.md
// §3.2). The classifier calls it RetryTransaction, so a savepoint scope
// lets it out to the retry around the transaction. So does MariaDB's
// write-conflict error 1020 (ER_CHECKREAD) under innodb_snapshot_isolation,
// on by default from MariaDB 11.6.2: it rolls the whole transaction back
// too (§3.18), and is RetryTransaction; and 1206 (ER_LOCK_TABLE_FULL), the
// lock structures of a transaction that locks very many rows filling the
// buffer pool, whose transaction InnoDB rolls back whole (§3.20).
//
// # Galera: several nodes
//
// On a MariaDB Galera cluster (docs/backends.md §7) a certification
// conflict is 1213, on any statement or answering COMMIT, and nothing was
// committed: RetryTransaction, as a deadlock (§7.2). A node outside the
// primary component answers 1047 (§7.5): RetryTransaction too, since
// nothing ran and another node can serve the transaction. [Nodes] gives a
// [NodeSet], a Beginner over one *sql.DB per node for sqldb.InTx and
// sqldb.Do: each attempt begins on one node, and with [NodeSet.Failover]
// on the retry, an attempt that failed at the node level (a connection
// refused or lost, 1047, no answer within the attempt's deadline) sends
// the next one to another node. Moving happens only where a transaction
// begins, under the retry, so the safety invariants hold as on one
// server. Failover also closes the connection of a failed attempt that
// may still be in a transaction: a COMMIT or ROLLBACK refused with 1047
// leaves it open, and the next BEGIN on a pooled connection would commit
// it (§7.11).
//
// Writers on several nodes must write transactions as relative updates
// (SET cents = cents - ?) or as reads first, then compare-and-set writes
// whose miss returns a RetryTransaction error: a transaction that reads
// after it holds row locks can lose its atomicity without any error
// (§7.3; see [NodeSet] and its examples, and docs/clusters.md).
//
// # Commit markers
//
// MySQL and MariaDB cannot say, after the fact, whether a transaction
// committed. For sqldb.ResolveCommit and gormdb.ResolveCommit, each
// read-write transaction inserts a random token into [CommitMarkerTable]
// just before COMMIT; after a lost COMMIT answer the token is looked for on
// another connection by a locking read, which InnoDB makes wait until the
// transaction that inserted it has ended (its connection is ended with KILL
// CONNECTION while it is still open), so that the answer is final
// (docs/ambiguity.md). [CreateCommitMarkers] creates the table — once, with
// your migrations; nothing creates it silently, and without it those
// transactions fail with [ErrNoCommitMarkers]. [DeleteCommitMarkers] deletes
// old markers; one transaction in 64 that wrote one deletes some old ones
// after its COMMIT. No goroutine is started.
//
// # Importing
//
// This package imports github.com/go-sql-driver/mysql, which registers the
// "mysql" database/sql driver.
package mysqldb
