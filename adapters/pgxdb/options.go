package pgxdb

import (
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// A TxOption configures [InTx] and [Do]: [ReadOnly], [Isolation],
// [Deferrable], [CockroachRestart], [ResolveCommit], and every [Option].
type TxOption interface{ applyTx(*config) }

// A SavepointOption configures [InSavepoint]: every [Option]. A TxOption
// that is not an Option does not compile as a SavepointOption, so a
// transaction-only setting cannot be given to a savepoint.
type SavepointOption interface{ applySavepoint(*config) }

// An Option configures transactions and savepoints alike: [ClassifyBy],
// [RollbackTimeout], [LockTimeout] and [StatementTimeout].
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
// decorator is built, and never changed afterwards, so one InTx operation
// serves many goroutines.
type config struct {
	txOptions       pgx.TxOptions
	settings        []setting
	caller          dbop.Classifier // the ClassifyBy classifiers, nil when none
	rollbackTimeout time.Duration
	restart         dbop.Decorator // CockroachRestart's WithRetry, nil when not given
	resolve         bool           // ResolveCommit
	share           bool           // ShareCommits
	shareKey        int64          // ShareCommits's call site, hashed

	// Derived from the above by done.
	classifier dbop.Classifier // caller, then Classifier
	setSQL     string          // the SET LOCAL statements of settings
}

// Isolation sets the isolation level of each attempt's transaction:
// BEGIN ISOLATION LEVEL level. Without it the server's default applies
// (default_transaction_isolation, READ COMMITTED unless changed).
//
// A dbop.HotSpot's lock on PostgreSQL waits in place under a deadline
// (the statements after it see what its holder committed) when the level
// given is REPEATABLE READ or SERIALIZABLE; without Isolation the
// server's default is taken to be READ COMMITTED, so on a server whose
// default is another, give it (docs/backends.md §1.14).
func Isolation(level pgx.TxIsoLevel) TxOption {
	return txOnly(func(c *config) { c.txOptions.IsoLevel = level })
}

// ReadOnly begins read-only transactions (BEGIN READ ONLY). A write in one
// fails with SQLSTATE 25006 (read_only_sql_transaction, docs/backends.md
// §1.11), which is not retried.
func ReadOnly() TxOption {
	return txOnly(func(c *config) { c.txOptions.AccessMode = pgx.ReadOnly })
}

// Deferrable begins DEFERRABLE transactions. PostgreSQL honours it only for
// SERIALIZABLE READ ONLY transactions, which then wait at their first
// statement for a snapshot that cannot take part in a serialization failure,
// so they never fail with 40001.
func Deferrable() TxOption {
	return txOnly(func(c *config) { c.txOptions.DeferrableMode = pgx.Deferrable })
}

// ClassifyBy puts cs in front of [Classifier]: the first of cs, asked in
// order, that has an opinion on an error decides it, and Classifier decides
// the errors for which every one of cs returns [dbop.Unclassified]. Several
// ClassifyBy options are asked in the order given. It panics if cs is empty
// or one of cs is nil.
func ClassifyBy(cs ...dbop.Classifier) Option {
	if len(cs) == 0 {
		panic("pgxdb: ClassifyBy(): a Classifier is required")
	}
	for i, c := range cs {
		if c == nil {
			panic(fmt.Sprintf("pgxdb: ClassifyBy: classifier %d of %d is nil", i+1, len(cs)))
		}
	}
	cs = append([]dbop.Classifier(nil), cs...)
	return both(func(cfg *config) {
		for _, c := range cs {
			if cfg.caller == nil {
				cfg.caller = c
			} else {
				cfg.caller = cfg.caller.Or(c)
			}
		}
	})
}

// RollbackTimeout bounds the rollbacks run after a failed attempt to d: the
// ROLLBACK of [InTx], the ROLLBACK TO SAVEPOINT and RELEASE of
// [InSavepoint], as [scopes.RollbackTimeout] does; the default is
// [scopes.DefaultRollbackTimeout]. It panics if d <= 0.
func RollbackTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("pgxdb: RollbackTimeout(%v): the timeout must be positive", d))
	}
	return both(func(c *config) { c.rollbackTimeout = d })
}

// newTxConfig applies the options of InTx or Do, panicking on a nil one.
func newTxConfig(caller string, opts []TxOption) *config {
	c := &config{rollbackTimeout: scopes.DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("pgxdb: %s: option %d of %d is nil", caller, i+1, len(opts)))
		}
		o.applyTx(c)
	}
	return c.done()
}

// newSavepointConfig applies the options of InSavepoint, panicking on a nil
// one.
func newSavepointConfig(opts []SavepointOption) *config {
	c := &config{rollbackTimeout: scopes.DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("pgxdb: InSavepoint: option %d of %d is nil", i+1, len(opts)))
		}
		o.applySavepoint(c)
	}
	return c.done()
}

func (c *config) done() *config {
	c.setSQL = setLocalSQL(c.settings)
	c.classifier = Classifier
	if c.caller != nil {
		c.classifier = c.caller.Or(Classifier)
	}
	return c
}

// classify attaches the configured verdict to err where it changes what a
// retry does (see [dbop.Classifier.Classify]).
func (c *config) classify(err error) error { return c.classifier.Classify(err) }
