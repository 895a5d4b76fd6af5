package gormdb

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/scopes"
)

// A TxOption configures [InTx] and [Do]: [ReadOnly], [Isolation],
// [LockTimeout], [StatementTimeout], [ResolveCommit], and every [Option].
type TxOption interface{ applyTx(*config) }

// A SavepointOption configures [InSavepoint]: every [Option]. A TxOption
// that is not an Option does not compile as a SavepointOption, so a
// transaction-only setting cannot be given to a savepoint.
type SavepointOption interface{ applySavepoint(*config) }

// An Option configures transactions and savepoints alike: [ClassifyBy],
// [RollbackTimeout] and [Dialect].
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

// config is what the options set. It is built once, when InTx, Do or
// InSavepoint is called, and never changed afterwards, so one operation
// serves many goroutines.
type config struct {
	readOnly         bool
	isolation        sql.IsolationLevel
	lockTimeout      time.Duration // 0: not set
	statementTimeout time.Duration // 0: not set
	classifiers      []dbop.Classifier
	rollbackTimeout  time.Duration
	dialect          *sqldb.Dialect // nil: chosen from the dialector
	resolve          bool           // ResolveCommit
}

// ReadOnly makes [InTx] begin read-only transactions, through the driver's
// own option: sql.TxOptions{ReadOnly: true}, which pgx turns into BEGIN
// READ ONLY and go-sql-driver/mysql into START TRANSACTION READ ONLY
// (docs/backends.md §4.8). A write then fails (PostgreSQL 25006, MySQL and
// MariaDB 1792), which is not retried (§1.11, §3).
func ReadOnly() TxOption {
	return txOnly(func(c *config) { c.readOnly = true })
}

// Isolation sets the isolation level of the transactions [InTx] begins
// (sql.TxOptions.Isolation). The default, sql.LevelDefault, is the server's.
//
// For the postgres dialector the levels pgx's database/sql driver accepts
// are allowed (LevelSnapshot means REPEATABLE READ there); for mysql those
// go-sql-driver/mysql accepts, which it sets with SET TRANSACTION ISOLATION
// LEVEL before START TRANSACTION, for the next transaction only, so nothing
// leaks onto the pooled connection (docs/backends.md §4.8;
// TestLiveMySQLOptionsReachTheServer checks both on the server). InTx
// panics, when it builds the operation, on a level the dialector's driver
// would refuse at every BEGIN.
//
// A dbop.HotSpot's lock on PostgreSQL waits in place under a deadline
// (the statements after it see what its holder committed) when the level
// given is REPEATABLE READ or SERIALIZABLE; without Isolation the
// server's default is taken to be READ COMMITTED, so on a server whose
// default is another, give it (docs/backends.md §1.14).
func Isolation(level sql.IsolationLevel) TxOption {
	return txOnly(func(c *config) { c.isolation = level })
}

// LockTimeout bounds each wait for a lock inside every transaction [InTx]
// begins to d, with PostgreSQL's lock_timeout set for that transaction only
// (see [StatementTimeout] for how). A wait that exceeds it fails with 55P03
// lock_not_available, which is RetryStatement: inside [InSavepoint] the
// retry runs the statement again, and the transaction's earlier work
// survives (docs/backends.md §1.7).
//
// It is PostgreSQL's only: InTx panics unless the dialect is of the
// PostgreSQL family (the postgres dialector's). See the package
// documentation for MySQL and MariaDB. The value given is set over any
// default and lowered only by a limit derived from the context's deadline
// (see [StatementTimeout]). The value is rounded up to whole
// milliseconds. LockTimeout panics if d <= 0 or d exceeds PostgreSQL's
// limit (2147483647 ms).
func LockTimeout(d time.Duration) TxOption {
	ms := timeoutMillis("LockTimeout", d)
	return txOnly(func(c *config) { c.lockTimeout = time.Duration(ms) * time.Millisecond })
}

// StatementTimeout bounds every statement inside every transaction [InTx]
// begins to d, with PostgreSQL's statement_timeout. A statement that
// exceeds it fails with 57014 "canceling statement due to statement
// timeout", which is RetryStatement (docs/backends.md §1.7).
//
// Right after BEGIN, InTx runs
//
//	SELECT set_config('lock_timeout', '…ms', true), set_config('statement_timeout', '…ms', true)
//
// (only the settings given). set_config with is_local true is SET LOCAL:
// the settings last until the end of the transaction and never reach the
// next user of the pooled connection (§1.4). Being one statement with no
// parameters it needs one round trip and works with prepared statements
// too. In a transaction that takes a dbop.HotSpot's lock on one of
// [CreateHotSpotLocks]'s tables the settings given are SET LOCAL instead,
// before the lock's LOCK TABLE, in its round trip, where they bound its
// wait: a SELECT takes a REPEATABLE READ or SERIALIZABLE transaction's
// snapshot, which must not predate the wait for the lock (§1.14), and SET
// LOCAL takes none. The server ends only the statement, not the connection, so these
// limits are safe where a context deadline is not: pgx closes the
// connection when a deadline expires, and at COMMIT the outcome is then
// unknown (§2.7, §11).
//
// A value given, by StatementTimeout or [LockTimeout], is set as it is,
// over any default of the role, the database or the session: you chose it.
// Only a limit derived from the context's deadline (see "Per-attempt
// timeouts" in the package documentation) lowers it, where that is
// smaller. Without the option, the derived limit is set to the smaller of
// it and the value in force, computed by the server in the same statement
// (set_config(…, LEAST(…current_setting(…)…), true)), so that it never
// raises a lower default.
//
// It is PostgreSQL's only, as [LockTimeout] is. The value is rounded up to
// whole milliseconds. StatementTimeout panics if d <= 0 or exceeds
// PostgreSQL's limit.
func StatementTimeout(d time.Duration) TxOption {
	ms := timeoutMillis("StatementTimeout", d)
	return txOnly(func(c *config) { c.statementTimeout = time.Duration(ms) * time.Millisecond })
}

// ClassifyBy asks cs, in order, before this package's own rules: GORM's
// errors (see the package documentation), then the dialect's classifier
// (Dialect.Classify). The first verdict other than Unclassified decides.
// Several ClassifyBy options are asked in the order given. On the postgres
// dialector, ClassifyBy(classifiers.CockroachDB) adds CockroachDB's rules;
// on the sqlite dialector (mattn/go-sqlite3), the classifier of
// github.com/dbop-go/dbop/classifiers/mattnsqlite. It panics if cs is empty
// or one of cs is nil.
func ClassifyBy(cs ...dbop.Classifier) Option {
	if len(cs) == 0 {
		panic("gormdb: ClassifyBy(): a Classifier is required")
	}
	for i, c := range cs {
		if c == nil {
			panic(fmt.Sprintf("gormdb: ClassifyBy: classifier %d of %d is nil", i+1, len(cs)))
		}
	}
	cs = append([]dbop.Classifier(nil), cs...)
	return both(func(c *config) { c.classifiers = append(c.classifiers, cs...) })
}

// RollbackTimeout bounds the rollback run when an attempt fails: the
// ROLLBACK of [InTx] and [Do], the ROLLBACK TO SAVEPOINT and RELEASE of
// [InSavepoint] (see [scopes.RollbackTimeout]). It runs even when the
// caller's context has ended; the default is [scopes.DefaultRollbackTimeout].
//
// database/sql's ROLLBACK takes no context: the driver uses the one given
// to BEGIN (docs/backends.md §10.3). So when the bound expires InTx stops
// waiting and cancels the context the transaction was begun with, which
// pgx's driver obeys by closing the connection (§2.7); go-sql-driver/mysql
// does not watch a context during ROLLBACK (§4.7), and its rollback goes on
// in the background until the connection answers or fails. Either way the
// attempt's error, with the rollback's joined to it, is returned when the
// bound expires. RollbackTimeout panics if d <= 0.
func RollbackTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("gormdb: RollbackTimeout(%v): the timeout must be positive", d))
	}
	return both(func(c *config) { c.rollbackTimeout = d })
}

// Dialect names the database and driver behind the *gorm.DB: its
// classifier, its COMMIT rules and its SQL family (see [sqldb.Dialect]).
//
// The postgres and sqlite dialectors need none: [sqldb.Postgres] and
// [sqldb.SQLite] are chosen for them. The mysql dialector serves MySQL and
// MariaDB through go-sql-driver/mysql, whose error type its rules need, and
// this package links no driver: pass Dialect(mysqldb.MySQL) or
// Dialect(mysqldb.MariaDB) (github.com/dbop-go/dbop/adapters/mysqldb), or
// [InTx], [Do] and [InSavepoint] panic when they are called. A dialect of
// another family than the dialector's (sqldb.Postgres for a mysql
// dialector, say) panics there too. Pass a copy of a declared Dialect to
// change a rule (a CommitOutcome of your own, say); for a dialector this
// package does not know, a Dialect of any family is taken as it is.
//
// Dialect panics if d is not a usable Dialect (the zero Dialect, or one
// missing a field).
func Dialect(d sqldb.Dialect) Option {
	if err := sqldialect.Check(d); err != nil {
		panic("gormdb: Dialect: " + err.Error() + ": use sqldb.Postgres, sqldb.SQLite, mysqldb.MySQL or mysqldb.MariaDB, or a copy of one")
	}
	return both(func(c *config) { c.dialect = &d })
}

// maxTimeoutMillis is the largest value PostgreSQL accepts for lock_timeout
// and statement_timeout: INT_MAX milliseconds ("Value exceeds integer
// range" beyond it; checked live on PostgreSQL 15).
const maxTimeoutMillis = 1<<31 - 1

// timeoutMillis returns d in whole milliseconds, rounded up so that a
// positive d never becomes 0, which PostgreSQL reads as "no limit".
func timeoutMillis(fn string, d time.Duration) int64 {
	if d <= 0 {
		panic(fmt.Sprintf("gormdb: %s(%v): the timeout must be positive", fn, d))
	}
	if d > time.Duration(maxTimeoutMillis)*time.Millisecond {
		panic(fmt.Sprintf("gormdb: %s(%v): PostgreSQL accepts at most %d ms", fn, d, maxTimeoutMillis))
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// newTxConfig applies the options of InTx or Do, named caller, panicking on
// a nil one.
func newTxConfig(caller string, opts []TxOption) *config {
	c := &config{rollbackTimeout: scopes.DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("gormdb: %s: option %d of %d is nil", caller, i+1, len(opts)))
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
			panic(fmt.Sprintf("gormdb: InSavepoint: option %d of %d is nil", i+1, len(opts)))
		}
		o.applySavepoint(c)
	}
	return c
}
