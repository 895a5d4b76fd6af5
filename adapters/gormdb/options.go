package gormdb

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"gorm.io/gorm"
)

// An Option configures [InTx].
type Option func(*config)

// config is what the options set. It is built once, when InTx builds the
// operation, and never changed afterwards.
type config struct {
	readOnly         bool
	isolation        sql.IsolationLevel
	classifier       dbop.Classifier // replaces the backend classifier; nil: chosen from the dialector
	lockTimeout      time.Duration   // 0: not set
	statementTimeout time.Duration   // 0: not set
}

// ReadOnly makes [InTx] begin read-only transactions, through the driver's
// own option: sql.TxOptions{ReadOnly: true}, which pgx turns into BEGIN
// READ ONLY and go-sql-driver/mysql into START TRANSACTION READ ONLY. A
// write then fails (PostgreSQL 25006, MySQL and MariaDB 1792), and
// [Classifier] judges that NotRetryable.
func ReadOnly() Option {
	return func(c *config) { c.readOnly = true }
}

// Isolation sets the isolation level of the transactions [InTx] begins
// (sql.TxOptions.Isolation). The default, sql.LevelDefault, is the server's.
//
// For the postgres dialector the levels pgx's database/sql driver accepts
// are allowed (LevelSnapshot means REPEATABLE READ there); for mysql those
// go-sql-driver/mysql accepts, which it sets with SET TRANSACTION ISOLATION
// LEVEL before START TRANSACTION (DB-REFERENCE §3): for the next
// transaction only, so nothing leaks onto the pooled connection
// (TestLiveMySQLOptionsReachTheServer checks both on the server). InTx panics, when it builds the operation, on
// a level the dialector's driver would refuse at every BEGIN.
func Isolation(level sql.IsolationLevel) Option {
	return func(c *config) { c.isolation = level }
}

// WithClassifier makes [InTx] classify errors with c instead of the
// classifier chosen from the dialector's name (see [Classifier]). GORM's own
// errors are still classified first, as Classifier does; an error that
// already carries a verdict keeps it. For CockroachDB behind GORM's
// postgres dialector, pass classifiers.CockroachDB. It panics if c is nil.
func WithClassifier(c dbop.Classifier) Option {
	if c == nil {
		panic("gormdb: WithClassifier(nil): a Classifier is required")
	}
	return func(cfg *config) { cfg.classifier = c }
}

// LockTimeout bounds each wait for a lock inside every transaction [InTx]
// begins to d, with PostgreSQL's lock_timeout set for that transaction only
// (see [StatementTimeout] for how). A wait that exceeds it fails with 55P03
// lock_not_available, which the classifier judges RetryStatement: inside
// [InSavepoint] the retry runs the statement again, and the transaction's
// earlier work survives.
//
// The value is rounded up to whole milliseconds. LockTimeout panics if
// d <= 0 or d exceeds PostgreSQL's limit (2147483647 ms), and InTx panics
// if the dialector is not postgres: see the package documentation for MySQL
// and MariaDB.
func LockTimeout(d time.Duration) Option {
	ms := timeoutMillis("LockTimeout", d)
	return func(c *config) { c.lockTimeout = time.Duration(ms) * time.Millisecond }
}

// StatementTimeout bounds every statement inside every transaction [InTx]
// begins to d, with PostgreSQL's statement_timeout. A statement that
// exceeds it fails with 57014 "canceling statement due to statement
// timeout", which the classifier judges RetryStatement.
//
// Right after BEGIN, InTx runs
//
//	SELECT set_config('lock_timeout', '…ms', true), set_config('statement_timeout', '…ms', true)
//
// (only the settings given). set_config with is_local true is SET LOCAL
// (PostgreSQL docs, functions-admin): the settings last until the end of
// the transaction and never reach the next user of the pooled connection
// (DB-REFERENCE §1, pitfall 5). Being one statement with no parameters it
// needs one round trip and works with prepared statements too. The server
// ends only the statement, not the connection, so these limits are safe
// where a context deadline is not: with pgx a deadline closes the
// connection, and at COMMIT makes the outcome unknown (pitfall 5).
//
// The value is rounded up to whole milliseconds. StatementTimeout panics
// if d <= 0 or exceeds PostgreSQL's limit, and InTx panics if the
// dialector is not postgres.
func StatementTimeout(d time.Duration) Option {
	ms := timeoutMillis("StatementTimeout", d)
	return func(c *config) { c.statementTimeout = time.Duration(ms) * time.Millisecond }
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

// newConfig applies opts for InTx on db and checks them against db's
// dialector, panicking on a programmer error.
func newConfig(db *gorm.DB, opts []Option) *config {
	c := &config{}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("gormdb: InTx: option %d of %d is nil", i+1, len(opts)))
		}
		o(c)
	}
	name := dialectorName(db)
	if (c.lockTimeout > 0 || c.statementTimeout > 0) && name != postgresDialect {
		panic(fmt.Sprintf("gormdb: InTx: LockTimeout and StatementTimeout are implemented for the postgres dialector only, not %q; "+
			"for MySQL and MariaDB see the package documentation", name))
	}
	if !isolationSupported(name, c.isolation) {
		panic(fmt.Sprintf("gormdb: InTx: the %s dialector's driver does not support the isolation level %v", name, c.isolation))
	}
	return c
}

// isolationSupported reports whether the driver under the named dialector
// accepts level; unknown dialectors accept every level (their driver
// decides at BEGIN).
func isolationSupported(dialector string, level sql.IsolationLevel) bool {
	switch level {
	case sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable:
		return true
	case sql.LevelSnapshot:
		// pgx stdlib BeginTx maps it to REPEATABLE READ; go-sql-driver's
		// mapIsolationLevel refuses it.
		return dialector != mysqlDialect
	}
	return dialector != postgresDialect && dialector != mysqlDialect
}
