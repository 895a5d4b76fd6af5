// Package sqldb runs dbop operations over database/sql: a transaction per
// attempt with the backend's classifier and commit rules wired in,
// savepoints over *sql.Tx, and per-attempt server timeouts that never leave
// a setting behind on a pooled connection.
//
//	transfer := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int64, error) {
//		… tx.ExecContext(ctx, …) …
//	}, sqldb.LockTimeout(2*time.Second))
//	n, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// Which error means what comes from the repository's backend reference,
// docs/backends.md; the comments in the code cite the section each rule
// comes from.
//
// # Dialects
//
// A [Dialect] is a value that describes the database and driver behind a
// *sql.DB: this package declares [Postgres] (pgx's database/sql driver or
// lib/pq) and [SQLite] (modernc.org/sqlite), and
// github.com/dbop-go/dbop/adapters/mysqldb declares mysqldb.MySQL and
// mysqldb.MariaDB (go-sql-driver/mysql). A Dialect carries its classifier
// (Classify: the backend's classifier, then classifiers.Network, then
// classifiers.Context), the rules that judge a failed COMMIT
// (CommitOutcome), and its Family, which decides how per-attempt timeouts
// are set and how savepoint names are quoted.
//
// # Options
//
// [InTx] and [Do] take [TxOption] values, [InSavepoint] takes
// [SavepointOption] values, and an [Option] is both:
//
//	option               InTx, Do   InSavepoint
//	ClassifyBy(c…)       yes        yes
//	RollbackTimeout(d)   yes        yes
//	ReadOnly()           yes        –
//	Isolation(level)     yes        –
//	LockTimeout(d)       yes        –
//	StatementTimeout(d)  yes        –
//	ResolveCommit()      yes        –
//
// A transaction-only option given to InSavepoint does not compile. The
// timeouts are per transaction because MySQL's and MariaDB's session
// variables are not undone by ROLLBACK TO SAVEPOINT (docs/backends.md
// §3.10).
//
// # Transactions
//
// [InTx] builds an operation that begins a transaction on a [Beginner] (a
// *sql.DB or a *sql.Conn) each time it runs, calls fn with it, and commits;
// it is [scopes.InTx] over *sql.Tx, and [Do] is the same for a function
// with no result. Retrying the operation with [dbop.WithRetry] retries
// whole transactions, fn's reads included. fn receives a context marked
// [dbop.WithinTx]: a retry inside it, such as one around [InSavepoint],
// retries only statement-level errors. fn must not commit or roll back tx
// itself: InTx cannot tell which it did, and reports such a transaction as
// Ambiguous when fn returned nil or an error that its own COMMIT may have
// returned (see [InTx]).
//
// [ReadOnly] and [Isolation] become sql.TxOptions. database/sql's Commit and
// Rollback take no context: the driver uses the one given to BeginTx, and if
// that context ends first, database/sql rolls the transaction back by itself
// (docs/backends.md §10.3). So InTx begins each transaction with a context
// that carries the caller's values but not its cancellation: fn's
// statements still run with the caller's context, InTx rolls back when that
// context ended while fn ran, and COMMIT, once sent, is not cut short by a
// deadline (it is bounded by [RollbackTimeout] instead).
//
// # Commit outcomes
//
// A COMMIT that fails may still have committed. InTx reports a COMMIT error
// as an [*scopes.AmbiguousCommitError] with verdict [dbop.Ambiguous],
// retried only by a retry marked [dbop.Idempotent], unless the dialect's rules
// show that nothing was committed; then the error is classified like any
// other (docs/backends.md §11):
//
//	dialect           COMMIT error                                  committed?  verdict
//	all               database/sql returned before sending COMMIT   no          as classified (context: deadline →
//	                  (its context was done: ctx.Err(), or                      retry-transaction, cancel → not-retryable)
//	                  sql.ErrTxDone after its own rollback)
//	                  sql.ErrTxDone, context alive (fn ended tx)    unknown     ambiguous
//	Postgres          pgconn "conn busy" (not sent; a bug)          no          as classified (not-retryable)
//	                  SafeToRetry (pgx: also a lost answer)         unknown     ambiguous
//	                  driver.ErrBadConn (lib/pq: FATAL or EOF       unknown     ambiguous
//	                  after the send)
//	                  server error answering the COMMIT (40001,     no          as classified
//	                  23xxx deferred constraint, 25P03, …)
//	                  class 08, 57P01, 57P02, 57P03, 40003          unknown     ambiguous
//	                  network or context error, anything else       unknown     ambiguous
//	                  (pgx.ErrTxCommitRollback included)
//	SQLite            driver.ErrBadConn                             no          retry-transaction
//	                  *sqlite.Error (modernc forces a ROLLBACK)     no          as classified (BUSY → retry-transaction)
//	                  context error, anything else                  unknown     ambiguous
//	mysqldb.MySQL,    driver.ErrBadConn (nothing was written)       no          retry-transaction
//	mysqldb.MariaDB   *mysql.MySQLError answering the COMMIT        no          as classified (1213 → retry-transaction)
//	                  1927 connection killed, 1053 shutdown,        ⚠ unknown   ambiguous
//	                  1317 interrupted, 1969 max_statement_time
//	                  mysql.ErrInvalidConn (read failed after the   unknown     ambiguous
//	                  write), a context error, anything else
//
// The rules of Postgres and SQLite are [classifiers.PostgresCommit] and
// [classifiers.SQLiteCommit], shared with the other adapters; their
// documentation gives the source of each. They link no driver, so what
// only a driver's types reveal stays on the safe side: pgx reports a
// lost answer to COMMIT as "conn closed" while claiming SafeToRetry
// (docs/backends.md §2.4), which only pgx's pgconn.ErrConnClosed tells
// apart from an error raised before sending, so every SafeToRetry error at
// COMMIT is ambiguous here; so is pgx.ErrTxCommitRollback, which means
// "not committed". github.com/dbop-go/dbop/adapters/pgxdb judges pgx's
// errors precisely; a copy of Postgres whose CommitOutcome applies pgx's
// rules first brings that precision to database/sql.
//
// go-sql-driver watches the context only during BeginTx, not during Commit
// (docs/backends.md §4.7), so over database/sql a context error from its
// COMMIT can only come from database/sql itself, before sending; it is
// still judged ambiguous unless the context was already done when Commit
// was called, the safe side.
//
// [ResolveCommit] resolves the ambiguous outcomes where the server can
// tell: pg_xact_status on PostgreSQL, a commit marker row on MySQL and
// MariaDB (mysqldb.CreateCommitMarkers creates its table). Committed work
// then returns fn's value; work known not committed is retried without
// Idempotent. See docs/ambiguity.md for what each backend can and cannot
// resolve, and what it costs.
//
// # Per-attempt server timeouts
//
// [LockTimeout] and [StatementTimeout] set server-side limits for each
// attempt. They are preferable to a context deadline ([dbop.WithTimeout])
// alone, which with go-sql-driver and pgx closes the connection and kills
// the transaction (docs/backends.md §2.7, §4.6, §10.7). None of them
// outlives the attempt:
//
//	dialect    LockTimeout                       StatementTimeout
//	Postgres   SET LOCAL lock_timeout (ms)       SET LOCAL statement_timeout (ms)
//	MySQL      innodb_lock_wait_timeout (s)      max_execution_time (ms, SELECT only)
//	MariaDB    innodb_lock_wait_timeout (s)      max_statement_time (s, µs precision, any statement)
//	SQLite     PRAGMA busy_timeout (ms)          — (InTx panics; use dbop.WithTimeout)
//
// Values are rounded up, never to 0, which disables each of these limits:
// innodb_lock_wait_timeout takes whole seconds, at least 1, so a
// LockTimeout of 1.2s waits up to 2s (docs/backends.md §3.4).
//
// On PostgreSQL the SET LOCAL statements run first in the transaction, in
// one round trip, and end with it (docs/backends.md §1.4).
//
// MySQL, MariaDB and SQLite have no transaction-scoped form, so the settings
// are session settings, and a session belongs to a pooled connection
// (docs/backends.md §3.10). For each attempt InTx pins a connection
// (db.Conn when db is a *sql.DB; a *sql.Conn passed as db is used as it is
// and stays the caller's), sets the attempt's values, begins the
// transaction on that connection, and after the COMMIT or ROLLBACK sets the
// previous values back before releasing the connection. On MySQL and
// MariaDB one SET saves the old values in user variables
// (@dbop_saved_<name>) and sets the new ones — it changes all of them or,
// when one fails, none — and one SET puts them back and clears the
// variables; SQLite's PRAGMA is read first and written back. That restore
// runs even when the caller's context has ended, bounded by
// [RollbackTimeout]. If it fails, the connection is discarded, not pooled
// (sql.Conn.Raw returning driver.ErrBadConn makes database/sql close it,
// docs/backends.md §10.6); a transaction that committed still succeeds. A
// caller's *sql.Conn is discarded too, and then returns sql.ErrConnDone.
// The cost is two statements per attempt on MySQL and MariaDB (three on
// SQLite) on top of the transaction.
//
// # Limits derived from a deadline
//
// When the context InTx runs with has a deadline (a per-attempt
// [dbop.WithTimeout], or the caller's), each attempt also sets server-side
// limits from the time left less a margin, the smaller of 10 % and 50 ms,
// unless a smaller limit was given, so that the server ends a statement
// that would outlast the deadline and the connection survives:
//
//	dialect    derived from the deadline                        cost per attempt
//	Postgres   statement_timeout, lock_timeout (ms), SET LOCAL   one statement, after BEGIN
//	           or set_config
//	MariaDB    max_statement_time (every statement, lock waits)  two statements, pinned connection
//	MySQL      max_execution_time (read-only SELECT only),      two statements, pinned connection
//	           innodb_lock_wait_timeout (whole seconds, ≥ 1 s)
//	SQLite     —: a deadline interrupts the statement and keeps the connection (§5.9)
//
// A derived limit only ever lowers what is in force. Where [LockTimeout] or
// [StatementTimeout] gave the setting, the attempt gets the smaller of the
// given and the derived value: the given one applies over any default, as
// you chose it. Where neither did, it gets the smaller of the derived
// value and the value in force on the server — a role's, a database's or
// the global default, a DSN's or a session's SET — which the server
// computes in the statement that sets it (set_config with current_setting
// on PostgreSQL, in the same SELECT; IF and LEAST in the same SET on MySQL
// and MariaDB; docs/backends.md §1.18, §3.15), so that a lower limit of
// your own is never lifted; 0 in force (statement_timeout, lock_timeout,
// max_statement_time, max_execution_time: no limit) takes the derived value.
//
// On MySQL an UPDATE that runs long for a reason other than a row lock,
// and any lock wait when less than a second is left, is not covered: the
// deadline still closes the connection then. The limits are set when the
// attempt begins, so a statement that starts late in a long transaction
// can still be overtaken by the deadline. On MySQL and MariaDB the
// settings need a connection to pin: they are derived only when db is a
// *sql.DB or a *sql.Conn, not another Beginner (mysqldb.NodeSet, say,
// which chooses its connection at BeginTx).
//
// MariaDB's per-query SET STATEMENT … FOR cannot cover a whole transaction,
// which is why the session form is used there too.
//
// # Savepoints
//
// [InSavepoint] is [scopes.InSavepoint] over a *sql.Tx, quoting names as
// the dialect wants ("name" on PostgreSQL and SQLite, `name` on MySQL and
// MariaDB) and with the dialect's classifier. A statement-level error
// (1205, 1969, 55P03, 57014 statement timeout) is retried at the
// savepoint, keeping the transaction's earlier work; a transaction-level
// one passes out, without ROLLBACK TO, to the retry around InTx.
//
// On MariaDB (10.11, observed by this package's tests) a deadlock (1213)
// rolls back and ends the whole transaction: @@in_transaction is 0 after
// it, ROLLBACK TO SAVEPOINT fails with 1305, and a statement run afterwards
// is outside any transaction, so it autocommits and survives a later
// ROLLBACK (docs/backends.md §3.2). Code that swallows a 1213 and goes on
// commits part of its work; let the error out of fn at once. Running more
// statements and then returning the 1213 is going on too, and the one way
// this package cannot see: fn's statements run on the bare *sql.Tx, so
// InTx takes a function that returns the error that doomed the transaction
// at its word, and a retry then applies those statements again.
//
// # SQLite
//
// SQLite allows one writer at a time. A writer that finds the lock taken
// waits up to busy_timeout, then fails with SQLITE_BUSY, which the SQLite
// dialect retries as a whole transaction. A deferred transaction (BEGIN) that
// reads and then writes after another connection committed fails with
// SQLITE_BUSY_SNAPSHOT (517) at once, whatever busy_timeout says; only a new
// transaction can succeed, and the dialect retries it so (docs/backends.md
// §5.3). Beginning writers with BEGIN IMMEDIATE avoids that (§5.4), but
// database/sql cannot send it through BeginTx: set it in the DSN with
// modernc's _txlock=immediate. [SQLiteDSN] builds a DSN with that, WAL and
// a busy timeout; transactions begun with [ReadOnly] still use a plain
// BEGIN in modernc and take no write lock.
//
// A write that a deadline interrupts rolls back the whole transaction,
// savepoints included, and SQLITE_FULL, IOERR, NOMEM and BUSY may
// (docs/backends.md §5.5, §5.6); the statements that follow run outside
// any transaction and are committed at once, as after a MariaDB deadlock.
// When fn went on after a scope or a retry saw the transaction doomed, or
// returned nil after its context ended, InTx sends the ROLLBACK it owes
// before judging fn's error: if SQLite answers that no transaction is
// active, the error is Ambiguous, and so is a COMMIT that finds none. Code
// that swallows an interrupted write and goes on commits part of its work;
// let the error out of fn at once. As on MySQL and MariaDB, running more
// statements and then returning the error is going on too, which InTx
// cannot see: it takes fn at its word, and a retry applies those
// statements again.
//
// For mattn/go-sqlite3 use the [SQLite] dialect with its classifier passed
// through [ClassifyBy] (github.com/dbop-go/dbop/classifiers/mattnsqlite);
// mattn ignores sql.TxOptions (docs/backends.md §5.13), and its COMMIT
// errors are judged ambiguous (§11).
//
// # Concurrency
//
// Operations built by InTx and Do and decorators built by InSavepoint are
// immutable and safe for concurrent use, as far as their database handle
// is: a *sql.DB serves many goroutines, a *sql.Conn or *sql.Tx one at a
// time.
//
// # Importing
//
// This package links no driver: the Postgres and SQLite dialects recognise
// errors by capability (github.com/dbop-go/dbop/classifiers), and the
// MySQL and MariaDB dialects, which need go-sql-driver/mysql's error type,
// live in github.com/dbop-go/dbop/adapters/mysqldb. Import the driver you
// use yourself: modernc.org/sqlite ("sqlite"),
// github.com/jackc/pgx/v5/stdlib ("pgx"), lib/pq, or
// github.com/go-sql-driver/mysql through mysqldb ("mysql").
package sqldb
