// Package gormdb runs GORM transactions and savepoints as dbop operations:
// the scopes of github.com/dbop-go/dbop/scopes over a *gorm.DB, with the
// backend's classifier and commit judgement wired in, savepoint statements
// whose failures are seen, and per-attempt server-side timeouts.
//
// It works with GORM v1.31 and its postgres and mysql dialectors
// (gorm.io/driver/postgres, which runs pgx v5 through database/sql, and
// gorm.io/driver/mysql, which runs go-sql-driver/mysql for MySQL and
// MariaDB). Other dialectors work with the generic classifier,
// classifiers.Default, and without the timeouts.
//
// # Transactions
//
// [InTx] builds an operation that runs a function in a transaction of its
// own each time it runs. Retrying it retries the whole transaction:
//
//	transfer := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int64, error) {
//		var from Account
//		if err := tx.First(&from, fromID).Error; err != nil {
//			return 0, err
//		}
//		// decide, then write: all of it runs again on a retry
//		return from.ID, tx.Model(&from).Update("balance", from.Balance-amount).Error
//	}, gormdb.Isolation(sql.LevelSerializable))
//	id, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// Options: [ReadOnly] and [Isolation] map onto sql.TxOptions, the driver's
// own way to begin such a transaction; [WithClassifier] replaces the
// backend classifier; [LockTimeout] and [StatementTimeout] set server-side
// limits for the transaction.
//
// # Savepoints that see failures
//
// GORM's tx.SavePoint and tx.RollbackTo go through the dialector, and the
// postgres dialector (the sqlite one too) returns nil even when the
// statement failed: tx.RollbackTo("does_not_exist").Error is nil while the
// transaction is left aborted (DB-REFERENCE §8; this package's tests show
// it on a live server). GORM never releases a savepoint either. [Savepoints]
// runs the three statements itself and returns each one's error, and
// [InSavepoint] is scopes.InSavepoint over it with the classifier wired in:
//
//	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
//		r := tx.WithContext(ctx).Exec("UPDATE stock SET n = n - 1 WHERE id = ?", id)
//		return r.RowsAffected, r.Error
//	})
//	n, err := step.With(dbop.WithRetry(backoff), gormdb.InSavepoint(tx)).Run(ctx)
//
// A lock timeout in the step rolls back to the savepoint and runs the step
// again; the transaction's earlier work stays. A deadlock or serialization
// failure travels out untouched to the retry around InTx, which starts a
// new transaction (after a MySQL deadlock the server has already rolled
// the transaction back and dropped its savepoints).
//
// # Classification and the driver's error
//
// [Classifier] classifies GORM's sentinel errors (all NotRetryable) and
// then defers to the backend's classifier: classifiers.Postgres for the
// postgres dialector, classifiers.MySQL for mysql. The classifiers read the
// driver's error (*pgconn.PgError, *mysql.MySQLError), so that error must
// stay reachable with errors.As. This package never hides it: what InTx
// and the savepoint scope return wraps the error fn returned, and the
// COMMIT, ROLLBACK and savepoint errors are each statement's own. But GORM
// can lose it before it reaches this package (DB-REFERENCE pitfall 4):
//
//   - GORM's AddError keeps the first error of a *gorm.DB as it is and
//     chains each later one as fmt.Errorf("%v; %w", old, new): only the
//     last error stays reachable, the earlier ones survive as text only.
//     The error is then classified by the last one alone, often
//     Unclassified, which a retry retries. Return a statement's .Error as
//     soon as it fails, rather than running more statements on the same
//     *gorm.DB; on PostgreSQL the statements after a failure fail anyway,
//     with 25P02, which says nothing about whether a retry can help.
//   - With gorm.Config{TranslateError: true}, the mysql dialector replaces
//     a *mysql.MySQLError numbered 1062, 1451 or 1452 by a bare
//     gorm.ErrDuplicatedKey or gorm.ErrForeignKeyViolated. Classification
//     still works, since Classifier judges those sentinels NotRetryable as
//     the numbers are, but errors.As(err, &mysqlErr) no longer finds the
//     server's error. Leave TranslateError off to keep it, or test for the
//     sentinels. The postgres dialector keeps the *pgconn.PgError inside
//     its translation, and never translates a retryable code.
//
// # Ambiguous commits
//
// InTx judges a COMMIT error by DB-REFERENCE §6: driver.ErrBadConn and
// pgx's SafeToRetry (nothing was sent), and a server error answering the
// COMMIT, mean "not committed", and the error is classified as usual;
// mysql.ErrInvalidConn, context and network errors after the send, and a
// PostgreSQL error that ends the session (class 08, 57P01–57P03, FATAL)
// answering the COMMIT, leave the outcome unknown. So does
// pgconn.ErrConnClosed, although pgx calls it safe to retry: pgx v5.12.0
// returns it when the answer to COMMIT is lost after COMMIT was sent, and
// this package's tests show the server committing then. Those come back
// as a *scopes.AmbiguousCommitError with the verdict dbop.Ambiguous, which
// dbop.WithRetry retries only when marked dbop.Idempotent.
//
// # Writes outside a transaction
//
// Run writes inside InTx, even single statements. Outside a transaction,
// database/sql runs a statement again when the driver returns
// driver.ErrBadConn, and pgx's database/sql driver returns it for the same
// lost answer: an autocommit INSERT through GORM's postgres dialector can
// be applied twice while GORM reports success (shown on a live server in
// this package's tests). Inside a transaction database/sql never retries,
// and InTx rolls back and judges the error instead.
//
// # Per-attempt timeouts
//
// A context deadline makes a poor per-attempt timeout for a transaction:
// database/sql rolls the transaction back when the context given to BEGIN
// ends, pgx and go-sql-driver close the connection, and a deadline during
// COMMIT makes its outcome unknown (DB-REFERENCE pitfall 5). Server-side
// limits end only the statement. On PostgreSQL, [LockTimeout] and
// [StatementTimeout] set lock_timeout and statement_timeout for each
// transaction InTx begins, as SET LOCAL does, so they never outlive it on
// the pooled connection; a statement that exceeds them fails with 55P03 or
// 57014, which the classifier judges RetryStatement: inside [InSavepoint]
// only the statement runs again.
//
// They are not implemented for MySQL and MariaDB, and InTx panics if they
// are given with another dialector. There the limits are session
// variables (innodb_lock_wait_timeout, MariaDB's max_statement_time) with
// no transaction-scoped form, so setting them per attempt needs a pinned
// connection whose settings are restored, or discarded, after each
// attempt, which GORM's transaction API does not offer. Use
// github.com/dbop-go/dbop/adapters/sqldb for that, or set them once for
// every connection in the DSN (go-sql-driver sends DSN parameters it does
// not know as SET statements when it connects), or per statement with
// MariaDB's SET STATEMENT max_statement_time=N FOR … and MySQL's
// MAX_EXECUTION_TIME hint (SELECT only).
//
// # Concurrency
//
// The operations and decorators this package builds keep no state between
// runs and are safe for concurrent use, as a *gorm.DB is. A transaction,
// and so a Savepointer, serves one goroutine at a time.
package gormdb
