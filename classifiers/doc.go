// Package classifiers maps the errors of database drivers to [dbop.Verdict]
// values: one classifier per backend, and [Default] for all of them.
//
// Every classifier has the signature of a [dbop.Classifier]: it takes an
// error and returns a verdict, or Unclassified when the error is not one it
// knows, so that classifiers can be tried in turn with [dbop.FirstOf].
// Classifiers look through wrapped errors (fmt.Errorf with %w) and joined
// errors (errors.Join); the first error of a kind in the tree decides. They
// keep no state, are safe for concurrent use and never block.
//
// Which error means what is taken from the project's DB-REFERENCE.md, which
// cites the server documentation and driver sources; each rule in the code
// names its source.
//
// # Usage
//
//	op.With(
//		dbop.WithRetry(backoff),
//		dbop.ClassifyBy(classifiers.Default),
//	)
//
// A classifier for one backend is a little cheaper and cannot misread an
// error from another: dbop.ClassifyBy(classifiers.Postgres).
//
// # Verdicts by backend
//
//	backend      error                                    verdict
//	PostgreSQL   40001 serialization_failure              RetryTransaction
//	             40P01 deadlock_detected                  RetryTransaction
//	             40003 statement_completion_unknown       Ambiguous
//	             55P03 lock_not_available                 RetryStatement
//	             57014 "… due to statement timeout"       RetryStatement
//	             57014 "… due to user request" (or other) NotRetryable
//	             class 08 connection_exception            RetryTransaction
//	             08007 transaction_resolution_unknown     Ambiguous
//	             57P01, 57P02, 57P03 shutdown/starting    RetryTransaction
//	             53100, 53200, 53300 resources            RetryTransaction
//	             53400 configuration_limit_exceeded       NotRetryable
//	             0A000 "cached plan must not change …"    RetryTransaction
//	             0A000 other feature_not_supported        NotRetryable
//	             25P02 in_failed_sql_transaction          NotRetryable
//	             25P03 idle_in_transaction timeout        RetryTransaction
//	             2D000, 3B001                             NotRetryable
//	             class 23 (23505, 23P01, …) constraints   NotRetryable
//	pgx          SafeToRetry() == true (nothing sent)     RetryTransaction
//	             pgconn "conn busy" (a bug, not a fault)  NotRetryable
//	             pgconn.ErrConnClosed                     RetryTransaction
//	             pgx.ErrTxCommitRollback alone            NotRetryable
//	             pgx.ErrTxClosed alone                    NotRetryable
//	CockroachDB  40001, CR000 restart transaction         RetryTransaction
//	             40003 result is ambiguous                Ambiguous
//	MySQL        1213 deadlock                            RetryTransaction
//	MariaDB      1205 lock wait timeout                   RetryStatement
//	             3572 lock NOWAIT                         RetryStatement
//	             3024, 1969 statement time limit          RetryStatement
//	             1040 too many connections                RetryTransaction
//	             1317 query interrupted                   NotRetryable
//	             1062, 1451, 1452 constraints             NotRetryable
//	             1193 unknown system variable             NotRetryable
//	             mysql.ErrInvalidConn                     RetryTransaction
//	SQLite       517 BUSY_SNAPSHOT                        RetryTransaction
//	(modernc)    5 BUSY and its extended codes            RetryTransaction
//	             6 LOCKED and its extended codes          RetryTransaction
//	             9 INTERRUPT                              RetryTransaction
//	             19 CONSTRAINT and its extended codes     NotRetryable
//	any          driver.ErrBadConn                        RetryTransaction
//	             net.Error, net.ErrClosed                 RetryTransaction
//	             io.ErrUnexpectedEOF                      RetryTransaction
//	             ECONNRESET, ECONNREFUSED, ECONNABORTED,  RetryTransaction
//	             EPIPE
//	             context.DeadlineExceeded                 RetryTransaction
//	             context.Canceled                         NotRetryable
//	             sql.ErrTxDone alone (Default only)       NotRetryable
//
// mattn/go-sqlite3 needs cgo, so its classifier lives in the separate package
// github.com/dbop-go/dbop/classifiers/mattnsqlite; Default does not include
// it.
//
// # Commits
//
// A classifier sees only the error, not the statement that returned it. A
// lost connection or a deadline while a COMMIT was in flight leaves the
// outcome unknown, yet the same error on any other statement means the
// transaction is dead and may be retried whole. The classifiers therefore
// return RetryTransaction for such errors, and the transaction scope, which
// knows when it is committing, reports them as Ambiguous. Only errors that
// are ambiguous wherever they occur (40003, 08007) are Ambiguous here.
//
// # Importing
//
// This package imports pgx, go-sql-driver/mysql and modernc.org/sqlite for
// their error types. Importing the last two registers their database/sql
// drivers, named "mysql" and "sqlite".
package classifiers
