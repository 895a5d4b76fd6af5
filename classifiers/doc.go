// Package classifiers maps the errors of database drivers to [dbop.Verdict]
// values: one classifier per backend, and [Default] for all of them. It
// imports no driver: it recognises errors by capability and by the
// standard library's errors.
//
// Every classifier has the signature of a [dbop.Classifier]: it takes an
// error and returns a verdict, or Unclassified when the error is not one it
// knows, so that classifiers can be asked in turn with [dbop.ClassifyBy]
// (or [dbop.Classifier.Or]). Classifiers look through wrapped errors
// (fmt.Errorf with %w) and joined errors (errors.Join); the first error of
// a kind in the tree decides. They keep no state, are safe for concurrent
// use and never block.
//
// Which error means what is taken from the repository's backend reference,
// docs/backends.md, which cites the server documentation and driver
// sources; each rule in the code names its section there (§12 maps every
// rule to its sections).
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
// # Capabilities, not drivers
//
// A driver's error is recognised by what it can do, found with errors.As
// on an interface:
//
//   - SQLState() string: pgx's *pgconn.PgError, lib/pq's *pq.Error, and any
//     other driver of the PostgreSQL protocol ([Postgres], [CockroachDB]);
//   - SafeToRetry() bool: pgx's errors raised before anything was sent,
//     and its "conn closed" after a lost answer ([Postgres]);
//   - Code() int: modernc.org/sqlite's *sqlite.Error ([SQLite]);
//   - the standard library's errors: [driver.ErrBadConn], net.Error,
//     syscall errors, [io.ErrUnexpectedEOF] ([Network]), context errors
//     ([Context]).
//
// So a program links only the drivers it imports itself. Rules that need a
// driver's own error type live with that driver:
//
//   - MySQL and MariaDB (go-sql-driver/mysql's *mysql.MySQLError, its
//     ErrInvalidConn): github.com/dbop-go/dbop/adapters/mysqldb's
//     Classifier, and its MySQL and MariaDB dialects of the sqldb adapter;
//   - pgx's sentinel errors and fields (pgconn.ErrConnClosed,
//     pgx.ErrTxCommitRollback, pgx.ErrTxClosed, the severity of a
//     *pgconn.PgError): github.com/dbop-go/dbop/adapters/pgxdb's
//     Classifier; [Postgres] leaves them Unclassified, which no retry acts
//     on;
//   - mattn/go-sqlite3, which needs cgo: the module
//     github.com/dbop-go/dbop/classifiers/mattnsqlite.
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
//	             57P05 idle_session_timeout               RetryTransaction
//	             53100, 53200, 53300 resources            RetryTransaction
//	             53400 configuration_limit_exceeded       NotRetryable
//	             0A000 "cached plan must not change …"    RetryTransaction
//	             0A000 other feature_not_supported        NotRetryable
//	             25P02 in_failed_sql_transaction          NotRetryable
//	             25P03 idle_in_transaction timeout        RetryTransaction
//	             2D000, 3B001                             NotRetryable
//	             class 23 (23505, 23P01, …) constraints   NotRetryable
//	pgx          SafeToRetry() == true (see Postgres)     RetryTransaction
//	             pgconn "conn busy" (a bug, not a fault)  NotRetryable
//	CockroachDB  40001, CR000 restart transaction         RetryTransaction
//	             40003 result is ambiguous                Ambiguous
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
// [PostgresCommit] and [SQLiteCommit] are the scopes' judgement of a COMMIT
// error: not committed, or unknown. Without a driver's types they call
// ambiguous what they cannot tell apart (docs/backends.md §11): the
// adapters named after a driver judge its errors precisely.
package classifiers
