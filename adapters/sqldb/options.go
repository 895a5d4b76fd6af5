package sqldb

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
)

// An Option configures [InTx].
type Option func(*config)

// config is what the options set. It is built once, by InTx, and never
// changed afterwards.
type config struct {
	isolation        sql.IsolationLevel
	readOnly         bool
	lockTimeout      time.Duration
	statementTimeout time.Duration
	classifiers      []dbop.Classifier
	rollbackTimeout  time.Duration
}

// Isolation sets the isolation level of every transaction [InTx] begins
// (sql.TxOptions.Isolation). The driver applies it: go-sql-driver/mysql runs
// SET TRANSACTION ISOLATION LEVEL before START TRANSACTION, pgx begins with
// ISOLATION LEVEL; modernc.org/sqlite ignores it (SQLite transactions are
// serializable).
func Isolation(level sql.IsolationLevel) Option {
	return func(c *config) { c.isolation = level }
}

// ReadOnly makes [InTx] begin read-only transactions
// (sql.TxOptions{ReadOnly: true}): START TRANSACTION READ ONLY on
// MySQL/MariaDB, BEGIN READ ONLY on PostgreSQL. modernc.org/sqlite begins a
// read-only transaction with a plain BEGIN, whatever _txlock the DSN sets, so
// readers do not take the write lock; mattn/go-sqlite3 ignores the option.
func ReadOnly() Option {
	return func(c *config) { c.readOnly = true }
}

// LockTimeout bounds, on the server, how long each statement of an attempt
// waits for a lock; it is set per attempt and never outlives it:
//
//   - PostgreSQL: SET LOCAL lock_timeout, in milliseconds (55P03);
//   - MySQL, MariaDB: innodb_lock_wait_timeout, in whole seconds, rounded up
//     and at least 1 (1205);
//   - SQLite: PRAGMA busy_timeout, in milliseconds (SQLITE_BUSY).
//
// See "Per-attempt server timeouts" in the package documentation for how the
// session settings of MySQL, MariaDB and SQLite are restored. LockTimeout
// panics if d <= 0.
func LockTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("sqldb: LockTimeout(%v): the timeout must be positive", d))
	}
	return func(c *config) { c.lockTimeout = d }
}

// StatementTimeout bounds, on the server, how long each statement of an
// attempt may run; it is set per attempt and never outlives it:
//
//   - PostgreSQL: SET LOCAL statement_timeout, in milliseconds (57014
//     "canceling statement due to statement timeout");
//   - MySQL: max_execution_time, in milliseconds, which limits read-only
//     SELECT statements only (3024);
//   - MariaDB: max_statement_time, in seconds with microsecond precision,
//     any statement (1969).
//
// SQLite has no such setting: [InTx] panics if it is given with
// [SQLite]. Use [dbop.WithTimeout] there: modernc.org/sqlite interrupts the
// statement and keeps the connection (DB-REFERENCE §7). StatementTimeout
// panics if d <= 0.
func StatementTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("sqldb: StatementTimeout(%v): the timeout must be positive", d))
	}
	return func(c *config) { c.statementTimeout = d }
}

// WithClassifier adds c in front of the dialect's classifier
// ([Dialect.Classify]): c is asked first, and the dialect's classifier
// decides what c leaves Unclassified. Several are asked in the order given.
// WithClassifier panics if c is nil.
func WithClassifier(c dbop.Classifier) Option {
	if c == nil {
		panic("sqldb: WithClassifier(nil): a Classifier is required")
	}
	return func(cfg *config) { cfg.classifiers = append(cfg.classifiers, c) }
}

// RollbackTimeout bounds the ROLLBACK run when an attempt fails
// ([scopes.RollbackTimeout]) and the statement that restores session
// settings after an attempt (see [LockTimeout]); both run even when the
// caller's context has ended. The default is [scopes.DefaultRollbackTimeout].
// RollbackTimeout panics if d <= 0.
func RollbackTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("sqldb: RollbackTimeout(%v): the timeout must be positive", d))
	}
	return func(c *config) { c.rollbackTimeout = d }
}

// newConfig applies opts, panicking on a nil option.
func newConfig(opts []Option) *config {
	c := &config{rollbackTimeout: scopes.DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("sqldb: InTx: option %d of %d is nil", i+1, len(opts)))
		}
		o(c)
	}
	return c
}

// classifier returns the classifier InTx wires in: the WithClassifier ones,
// then the dialect's.
func (c *config) classifier(d Dialect) dbop.Classifier {
	if len(c.classifiers) == 0 {
		return d.Classify
	}
	return dbop.FirstOf(append(append([]dbop.Classifier(nil), c.classifiers...), d.Classify)...)
}
