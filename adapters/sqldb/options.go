package sqldb

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
)

// A TxOption configures [InTx] and [Do]: [ReadOnly], [Isolation],
// [LockTimeout], [StatementTimeout], [ResolveCommit], and every [Option].
type TxOption interface{ applyTx(*config) }

// A SavepointOption configures [InSavepoint]: every [Option]. A TxOption
// that is not an Option does not compile as a SavepointOption, so a
// transaction-only setting cannot be given to a savepoint: MySQL's and
// MariaDB's session timeouts are not undone by ROLLBACK TO SAVEPOINT
// (docs/backends.md §3.10), so the timeouts here apply per transaction.
type SavepointOption interface{ applySavepoint(*config) }

// An Option configures transactions and savepoints alike: [ClassifyBy] and
// [RollbackTimeout].
type Option interface {
	TxOption
	SavepointOption
}

// txOnly is a TxOption that is not an Option.
type txOnly func(*config)

func (f txOnly) applyTx(c *config) { f(c) }

// both is an Option.
type both func(*config)

func (f both) applyTx(c *config)        { f(c) }
func (f both) applySavepoint(c *config) { f(c) }

// config is what the options set. It is built once, when the operation or
// decorator is built, and never changed afterwards.
type config struct {
	isolation        sql.IsolationLevel
	readOnly         bool
	lockTimeout      time.Duration
	statementTimeout time.Duration
	classifiers      []dbop.Classifier
	rollbackTimeout  time.Duration
	resolve          bool // ResolveCommit
}

// Isolation sets the isolation level of every transaction [InTx] begins
// (sql.TxOptions.Isolation). The driver applies it: go-sql-driver/mysql runs
// SET TRANSACTION ISOLATION LEVEL before START TRANSACTION
// (docs/backends.md §4.8), pgx begins with ISOLATION LEVEL;
// modernc.org/sqlite ignores it (SQLite transactions are serializable).
//
// A dbop.HotSpot's lock on PostgreSQL waits in place under a deadline
// (the statements after it see what its holder committed) when the level
// given is REPEATABLE READ or SERIALIZABLE; without Isolation the
// server's default is taken to be READ COMMITTED, so on a server whose
// default is another, give it (docs/backends.md §1.14).
func Isolation(level sql.IsolationLevel) TxOption {
	return txOnly(func(c *config) { c.isolation = level })
}

// ReadOnly makes [InTx] begin read-only transactions
// (sql.TxOptions{ReadOnly: true}): START TRANSACTION READ ONLY on
// MySQL/MariaDB, BEGIN READ ONLY on PostgreSQL. modernc.org/sqlite begins a
// read-only transaction with a plain BEGIN, whatever _txlock the DSN sets, so
// readers do not take the write lock (docs/backends.md §5.8);
// mattn/go-sqlite3 ignores the option (§5.13).
func ReadOnly() TxOption {
	return txOnly(func(c *config) { c.readOnly = true })
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
// session settings of MySQL, MariaDB and SQLite are restored. The value
// given is set as it is, over any default in force (you chose it), lowered
// only by the limit [InTx] derives from a context's deadline where that is
// smaller; without LockTimeout the derived limit never raises the value in
// force (see "Limits derived from a deadline"). LockTimeout panics if
// d <= 0.
func LockTimeout(d time.Duration) TxOption {
	if d <= 0 {
		panic(fmt.Sprintf("sqldb: LockTimeout(%v): the timeout must be positive", d))
	}
	return txOnly(func(c *config) { c.lockTimeout = d })
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
// SQLite has no such setting: [InTx] panics if it is given with the
// [SQLite] dialect. Use [dbop.WithTimeout] there: modernc.org/sqlite
// interrupts the statement and keeps the connection (docs/backends.md
// §5.9, §10.7). As with [LockTimeout], the value given is set over any
// default in force and lowered only by a limit derived from the context's
// deadline; without StatementTimeout the derived limit never raises the
// value in force. StatementTimeout panics if d <= 0.
func StatementTimeout(d time.Duration) TxOption {
	if d <= 0 {
		panic(fmt.Sprintf("sqldb: StatementTimeout(%v): the timeout must be positive", d))
	}
	return txOnly(func(c *config) { c.statementTimeout = d })
}

// ClassifyBy asks cs, in order, before the dialect's classifier
// (Dialect.Classify): the first verdict other than Unclassified decides,
// and the dialect's classifier decides what cs leave Unclassified. Several
// ClassifyBy options are asked in the order given. With pgx's database/sql
// driver, ClassifyBy(pgxdb.Classifier) adds pgx's own sentinel errors
// (github.com/dbop-go/dbop/adapters/pgxdb); with mattn/go-sqlite3, pass the
// classifier of github.com/dbop-go/dbop/classifiers/mattnsqlite. It panics
// if cs is empty or one of cs is nil.
func ClassifyBy(cs ...dbop.Classifier) Option {
	if len(cs) == 0 {
		panic("sqldb: ClassifyBy(): a Classifier is required")
	}
	for i, c := range cs {
		if c == nil {
			panic(fmt.Sprintf("sqldb: ClassifyBy: classifier %d of %d is nil", i+1, len(cs)))
		}
	}
	cs = append([]dbop.Classifier(nil), cs...)
	return both(func(c *config) { c.classifiers = append(c.classifiers, cs...) })
}

// RollbackTimeout bounds the rollback run when an attempt fails (ROLLBACK
// for [InTx], ROLLBACK TO SAVEPOINT and RELEASE for [InSavepoint]; see
// [scopes.RollbackTimeout]) and the statement that restores session
// settings after an attempt (see [LockTimeout]); all of them run even when
// the caller's context has ended. The default is
// [scopes.DefaultRollbackTimeout]. RollbackTimeout panics if d <= 0.
func RollbackTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("sqldb: RollbackTimeout(%v): the timeout must be positive", d))
	}
	return both(func(c *config) { c.rollbackTimeout = d })
}

// newTxConfig applies the options of InTx or Do, panicking, naming caller,
// on a nil one.
func newTxConfig(caller string, opts []TxOption) *config {
	c := &config{rollbackTimeout: scopes.DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("sqldb: %s: option %d of %d is nil", caller, i+1, len(opts)))
		}
		o.applyTx(c)
	}
	return c
}

// newSavepointConfig applies the options of InSavepoint, panicking on a
// nil one.
func newSavepointConfig(opts []SavepointOption) *config {
	c := &config{rollbackTimeout: scopes.DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("sqldb: InSavepoint: option %d of %d is nil", i+1, len(opts)))
		}
		o.applySavepoint(c)
	}
	return c
}

// classifyBy returns the scopes option that wires in the ClassifyBy
// classifiers, then the dialect's.
func (c *config) classifyBy(d Dialect) scopes.Option {
	return scopes.ClassifyBy(append(append([]dbop.Classifier(nil), c.classifiers...), d.Classify)...)
}
