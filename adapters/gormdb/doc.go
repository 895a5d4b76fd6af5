// Package gormdb runs GORM transactions and savepoints as dbop operations:
// the scopes of github.com/dbop-go/dbop/scopes over a *gorm.DB, with the
// backend's classifier and COMMIT rules wired in, savepoint statements whose
// failures are seen, and per-attempt server-side timeouts on PostgreSQL.
//
// It works with GORM v1.31 and its postgres, mysql and sqlite dialectors
// (gorm.io/driver/postgres, which runs pgx v5 through database/sql;
// gorm.io/driver/mysql, which runs go-sql-driver/mysql for MySQL and
// MariaDB; gorm.io/driver/sqlite). It links no database driver itself: a
// program links the driver its dialector brings, and go-sql-driver/mysql's
// error rules only when it imports github.com/dbop-go/dbop/adapters/mysqldb.
// Code comments cite the repository's backend reference, docs/backends.md,
// by section.
//
// # Transactions
//
// [InTx] builds an operation that runs a function in a transaction of its
// own each time it runs; [Do] is the same for a function with no result.
// Retrying the operation retries the whole transaction:
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
// Build the models fn writes inside fn, as from is above, not outside it.
// GORM writes back into the value it is given — the primary key a Create
// or Save got from the server, CreatedAt — and the rollback of a failed
// attempt does not undo that (docs/backends.md §9.9). A retry that saves
// the same value finds its key set: tx.Save takes it for an update,
// updates no row, and inserts it with the hooks skipped, so its
// BeforeCreate and AfterCreate hooks (one that writes a ledger row, say)
// run on no attempt that commits, while the retry reports success:
//
//	order := Order{Item: item} // wrong: a retry saves it with the rolled-back attempt's ID
//	op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
//		order := Order{Item: item} // right: a new value for each attempt
//		return tx.Save(&order).Error
//	})
//
// # Options
//
// [InTx] and [Do] take [TxOption] values, [InSavepoint] takes
// [SavepointOption] values, and an [Option] is both:
//
//	option               InTx, Do   InSavepoint
//	ClassifyBy(c…)       yes        yes
//	RollbackTimeout(d)   yes        yes
//	Dialect(d)           yes        yes
//	ReadOnly()           yes        –
//	Isolation(level)     yes        –
//	LockTimeout(d)       yes        –   (PostgreSQL only)
//	StatementTimeout(d)  yes        –   (PostgreSQL only)
//	ResolveCommit()      yes        –   (postgres and mysql dialectors)
//
// A transaction-only option given to InSavepoint does not compile.
// [ReadOnly] and [Isolation] map onto sql.TxOptions, the driver's own way to
// begin such a transaction; [ClassifyBy] puts classifiers of your own before
// this package's rules; [RollbackTimeout] bounds the rollback after a
// failure; [LockTimeout] and [StatementTimeout] set server-side limits for
// the transaction.
//
// # Dialects
//
// A dialect (a [sqldb.Dialect] value) tells what the backend's errors mean:
// its classifier, its COMMIT rules and its SQL family, which decides how
// savepoint names are quoted and whether the timeouts can be set. For the
// postgres dialector this package chooses [sqldb.Postgres], for the sqlite
// one [sqldb.SQLite]; both link no driver. The mysql dialector serves MySQL
// and MariaDB through go-sql-driver/mysql, whose error type the rules need:
// name the server with [Dialect] on every scope,
//
//	mariadb := gormdb.Dialect(mysqldb.MariaDB) // or mysqldb.MySQL
//	op := gormdb.InTx(db, fn, mariadb)
//	… step.With(dbop.WithRetry(backoff), gormdb.InSavepoint(tx, mariadb)) …
//
// or InTx, Do and InSavepoint panic when they are called, rather than link
// go-sql-driver into every GORM program. A Dialect of another family than
// the dialector's panics there too. A dialector this package does not know
// gets classifiers.Default and judges every COMMIT error ambiguous, unless a
// Dialect says otherwise.
//
// The driver-free dialects recognise errors by capability (SQLSTATE, SQLite
// result codes), so a few of the driver's own values are beyond them. On the
// postgres dialector, pgx's pgx.ErrTxCommitRollback and its SafeToRetry
// errors at COMMIT are judged ambiguous, the safe side, where only pgx's
// own types could tell that nothing was committed (classifiers.PostgresCommit,
// docs/backends.md §11); a copy of sqldb.Postgres with a CommitOutcome of your
// own, given with Dialect, can tell them apart. On the sqlite dialector,
// which runs mattn/go-sqlite3, add the classifier of
// github.com/dbop-go/dbop/classifiers/mattnsqlite with ClassifyBy: mattn's
// errors have no Code method (§5.11).
//
// # Savepoints that see failures
//
// GORM's tx.SavePoint and tx.RollbackTo go through the dialector, and the
// postgres dialector (the sqlite one too) returns nil even when the
// statement failed: tx.RollbackTo("does_not_exist").Error is nil while the
// transaction is left aborted (docs/backends.md §9.3; this package's tests
// show it on a live server). GORM never releases a savepoint either.
// [InSavepoint] runs SAVEPOINT, ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT
// itself and sees each one's error; it is scopes.InSavepoint with the
// dialect's rules wired in:
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
// new transaction (after a MariaDB deadlock the server has already rolled
// the transaction back and dropped its savepoints, §3.2).
//
// GORM's own nested transaction, tx.Transaction inside InTx's function,
// rolls back to its savepoint when its function fails. After a MySQL or
// MariaDB deadlock there is neither savepoint nor transaction left; GORM
// keeps the failed ROLLBACK TO on the handle it was called on, and what
// the function runs next is committed on its own. InTx sees the deadlock
// all the same (see [InTx]): it does not report success, but returns an
// Ambiguous error, also when the function runs more statements and then
// returns the deadlock, since those statements were committed on their
// own. On SQLite an interrupted write ends the transaction likewise, and
// InTx, finding no transaction at its ROLLBACK or COMMIT, returns an
// Ambiguous error too. Return the nested transaction's error at once
// rather than going on.
//
// # The *sql.Tx under the transaction
//
// Code that takes a *sql.Tx (sqlc's, sqlx's) gets the one under InTx's
// transaction from [SQLTx]. tx.Statement.ConnPool is not it on MySQL,
// MariaDB and SQLite, where InTx runs the function's statements through a
// pool of its own that watches them, nor under gorm.Config{PrepareStmt:
// true}. Statements run on that *sql.Tx bypass the watch: InTx sees an
// error there only when the function returns it, and does not see them go
// on after an error that ended the transaction. Return such an error at
// once.
//
// # Classification and the driver's error
//
// Errors are classified by the [ClassifyBy] classifiers, in order, then by
// GORM's own errors, then by the dialect's classifier. GORM's sentinel
// errors (gorm.ErrRecordNotFound, ErrDuplicatedKey, ErrForeignKeyViolated,
// ErrCheckConstraintViolated, ErrInvalidTransaction, ErrInvalidField,
// ErrMissingWhereClause, ErrInvalidData and the rest of gorm's errors.go)
// and database/sql's sql.ErrTxDone are all NotRetryable: each says the
// program asked for something that trying again cannot change. A record not
// found, in particular, is a result, not a failure of the database; an
// operation that wants to wait for a row written by someone else can return
// dbop.Classify(err, dbop.RetryTransaction) itself, or pass a classifier
// with ClassifyBy, and an error that already carries a verdict keeps it.
//
// The dialects' classifiers read the driver's error (*pgconn.PgError,
// *mysql.MySQLError), so that error must stay reachable with errors.As. This
// package never hides it: what InTx and InSavepoint return wraps the error
// fn returned, and the COMMIT, ROLLBACK and savepoint errors are each
// statement's own. But GORM can lose it before it reaches this package:
//
//   - GORM's AddError keeps the first error of a *gorm.DB as it is and
//     chains each later one as fmt.Errorf("%v; %w", old, new): only the
//     last error stays reachable, the earlier ones survive as text only
//     (docs/backends.md §9.4). The error is then classified by the last one
//     alone, often Unclassified, which no retry retries. Return a
//     statement's .Error as soon as it fails, rather than running more
//     statements on the same *gorm.DB; on PostgreSQL the statements after a
//     failure fail anyway, with 25P02, which says nothing about whether a
//     retry can help (§1.1).
//   - With gorm.Config{TranslateError: true}, the mysql dialector replaces a
//     *mysql.MySQLError numbered 1062, 1451 or 1452 by a bare
//     gorm.ErrDuplicatedKey or gorm.ErrForeignKeyViolated (§9.5).
//     Classification still works, since those sentinels are NotRetryable as
//     the numbers are, but errors.As(err, &mysqlErr) no longer finds the
//     server's error. Leave TranslateError off to keep it, or test for the
//     sentinels. The postgres dialector keeps the *pgconn.PgError inside its
//     translation, and never translates a retryable code.
//
// # Ambiguous commits
//
// InTx judges a COMMIT error with the dialect's COMMIT rules
// (docs/backends.md §11): an error raised before anything was sent (from
// go-sql-driver, driver.ErrBadConn), and a server error answering the
// COMMIT, mean "not committed", and the error is classified as usual;
// mysql.ErrInvalidConn, context and network errors after the send, and a
// PostgreSQL error that ends the session (class 08, 57P01–57P03) answering
// the COMMIT, leave the outcome unknown. So does pgx's "conn closed",
// although pgx calls it safe to retry: pgx v5.12.0 returns it when the
// answer to COMMIT is lost after COMMIT was sent (§2.4), and this package's
// tests show the server committing then. sql.ErrTxDone is ambiguous too:
// someone else ended the transaction, database/sql or fn itself, whose own
// COMMIT may have applied its work (see [InTx]). Those come back as a
// *scopes.AmbiguousCommitError with the verdict dbop.Ambiguous, which
// dbop.WithRetry retries only when marked dbop.Idempotent.
//
// [ResolveCommit] asks the server instead, on another connection of the
// *sql.DB under db: pg_xact_status on PostgreSQL, a commit marker row on
// MySQL and MariaDB. Committed work returns fn's value; work known not
// committed is retried without Idempotent; only what the server cannot
// tell stays ambiguous. See docs/ambiguity.md.
//
// # Writes outside a transaction
//
// Run writes inside InTx, even single statements. Outside a transaction,
// database/sql runs a statement again when the driver returns
// driver.ErrBadConn (§10.1), and pgx's database/sql driver returns it for
// the same lost answer (§2.14): an autocommit INSERT through GORM's postgres
// dialector can be applied twice while GORM reports success (shown on a
// live server in this package's tests). Inside a transaction database/sql
// never retries, and InTx rolls back and judges the error instead.
//
// A transaction of GORM's own (db.Transaction, db.Begin) and an
// autocommit statement are commits dbop does not see: as the first step of
// a dbop.Then or dbop.All under a retry, such a step runs again when a
// later step fails and the retry runs the whole (see dbop.Then). Make it
// an InTx, whose commit the Then counts.
//
// # Per-attempt timeouts
//
// A context deadline alone makes a poor per-attempt timeout for a
// transaction: pgx and go-sql-driver close the connection when it expires
// during a statement (§2.7, §4.6). InTx begins each transaction with a
// context that carries the caller's values but not its cancellation, so
// that database/sql does not roll back by itself when the caller's
// context ends (§10.3) and a deadline never cuts a COMMIT short (it is
// bounded by [RollbackTimeout] instead); fn receives the transaction with
// the caller's context (tx.WithContext(ctx)), so its statements still end
// with it. For the same reason gorm.Config.DefaultTransactionTimeout does
// not apply to the transactions InTx begins: GORM's Begin adds it to a
// context without a deadline, and database/sql would roll the transaction
// back by itself when it expires, in the middle of fn or of its COMMIT
// (§9.1); bound attempts with dbop.WithTimeout instead.
//
// Server-side limits end only the statement. On PostgreSQL, [LockTimeout] and
// [StatementTimeout] set lock_timeout and statement_timeout for each
// transaction InTx begins, as SET LOCAL does, so they never outlive it on
// the pooled connection (§1.4); a statement that exceeds them fails with
// 55P03 or 57014, which is RetryStatement: inside [InSavepoint] only the
// statement runs again (§1.7).
//
// When the context has a deadline, each attempt also derives limits from
// the time left less a margin, the smaller of 10 % and 50 ms: on
// PostgreSQL statement_timeout and lock_timeout (lowered further by the
// options), set with the others; on MySQL and MariaDB the session limits
// of a connection pinned for the attempt, saved and set in one statement
// and restored in another after the transaction, the connection discarded
// if the restore fails (MariaDB's max_statement_time, every statement;
// MySQL's max_execution_time, read-only SELECT only, and
// innodb_lock_wait_timeout in whole seconds when a second is left). The
// server then ends a statement that would outlast the deadline, and the
// connection survives.
//
// A derived limit only ever lowers what is in force. A limit the options
// gave is set to the smaller of the given and the derived value: the given
// one applies over any default, as you chose it. A limit they did not give
// is set to the smaller of the derived value and the server's value in
// force — a role's, a database's or the global default, a DSN's or a
// session's SET — which the server computes in the statement that sets it
// (set_config with current_setting on PostgreSQL; IF and LEAST in the SET
// on MySQL and MariaDB; docs/backends.md §1.18, §3.15), so a lower limit of
// your own is never lifted; 0 in force (no limit) takes the derived value.
//
// The options are PostgreSQL's only, and InTx panics if they are given with
// a dialect of another family. On MySQL and MariaDB the limits are session
// variables (innodb_lock_wait_timeout, MariaDB's max_statement_time) with no
// transaction-scoped form, which ROLLBACK does not undo (§3.10): beyond
// those derived from a deadline, use github.com/dbop-go/dbop/adapters/sqldb
// for fixed ones, or set them
// once for every connection in the DSN (go-sql-driver sends DSN parameters
// it does not know as SET statements when it connects, §4.9), or per
// statement with MariaDB's SET STATEMENT max_statement_time=N FOR … and
// MySQL's MAX_EXECUTION_TIME hint (SELECT only; §3.6, §3.7).
//
// # Concurrency
//
// The operations and decorators this package builds keep no state between
// runs and are safe for concurrent use, as a *gorm.DB is. A transaction, and
// so a savepoint step on it, serves one goroutine at a time.
package gormdb
