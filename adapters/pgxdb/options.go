package pgxdb

import (
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// An Option configures [InTx]. The options are [Isolation], [ReadOnly],
// [Deferrable], [WithClassifier], [RollbackTimeout], [CockroachRestart], and
// the per-attempt server settings [LockTimeout] and [StatementTimeout].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options set. It is built once, in InTx, and never
// changed afterwards, so one InTx operation serves many goroutines.
type config struct {
	txOptions       pgx.TxOptions
	settings        []Setting
	setSQL          string // the SET LOCAL statements of settings, built once
	classifier      dbop.Classifier
	rollbackTimeout time.Duration

	restart        bool // CockroachRestart was given
	maxRestarts    int
	restartBackoff dbop.Backoff
}

// Isolation sets the isolation level of each attempt's transaction:
// BEGIN ISOLATION LEVEL level. Without it the server's default applies
// (default_transaction_isolation, READ COMMITTED unless changed).
func Isolation(level pgx.TxIsoLevel) Option {
	return optionFunc(func(c *config) { c.txOptions.IsoLevel = level })
}

// ReadOnly begins read-only transactions (BEGIN READ ONLY). A write in one
// fails with SQLSTATE 25006 (read_only_sql_transaction), which is not
// retried.
func ReadOnly() Option {
	return optionFunc(func(c *config) { c.txOptions.AccessMode = pgx.ReadOnly })
}

// Deferrable begins DEFERRABLE transactions. PostgreSQL honours it only for
// SERIALIZABLE READ ONLY transactions, which then wait at their first
// statement for a snapshot that cannot take part in a serialization failure,
// so they never fail with 40001.
func Deferrable() Option {
	return optionFunc(func(c *config) { c.txOptions.DeferrableMode = pgx.Deferrable })
}

// WithClassifier puts c in front of [Classify]: c decides every error it has
// an opinion on, and Classify decides the errors for which c returns
// [dbop.Unclassified]. Several WithClassifier options are asked in the order
// given. It panics if c is nil.
func WithClassifier(c dbop.Classifier) Option {
	if c == nil {
		panic("pgxdb: WithClassifier(nil): a Classifier is required")
	}
	return optionFunc(func(cfg *config) {
		if cfg.classifier == nil {
			cfg.classifier = c
			return
		}
		cfg.classifier = dbop.FirstOf(cfg.classifier, c)
	})
}

// RollbackTimeout bounds the rollbacks InTx runs after a failed attempt to
// d, as [scopes.RollbackTimeout] does; the default is
// [scopes.DefaultRollbackTimeout]. It panics if d <= 0.
func RollbackTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("pgxdb: RollbackTimeout(%v): the timeout must be positive", d))
	}
	return optionFunc(func(c *config) { c.rollbackTimeout = d })
}

// CockroachRestart makes each attempt of [InTx] follow CockroachDB's
// client-side retry protocol (DB-REFERENCE §5), restarting the transaction
// in place up to maxRestarts times before giving up on it:
//
//	BEGIN
//	SAVEPOINT cockroach_restart
//	SET LOCAL …                             (the per-attempt settings, if any)
//	fn
//	RELEASE SAVEPOINT cockroach_restart     (commits, on CockroachDB)
//	COMMIT
//
// When fn or the RELEASE fails with SQLSTATE 40001 (or CockroachDB's legacy
// CR000), the attempt runs ROLLBACK TO SAVEPOINT cockroach_restart, waits as
// b says for that restart (restart n waits b.Delay(n, …)), applies the
// per-attempt settings again and runs fn again, reads included, in the same
// transaction. A restart keeps the transaction's identity; on CockroachDB
// that keeps its priority, so a transaction that keeps losing conflicts
// ends up winning them.
//
// When the restarts are used up the 40001 leaves InTx with the verdict
// [dbop.RetryTransaction], InTx rolls back, and a [dbop.WithRetry] around
// InTx begins a new transaction. In-place restarts and whole-transaction
// retries are thus two layers: maxRestarts and b bound the first, the
// retry's own backoff and limits the second. maxRestarts 0 uses the
// protocol's statements without restarting in place.
//
// RELEASE SAVEPOINT cockroach_restart is CockroachDB's commit point, so its
// errors are judged like COMMIT's ([CommitOutcome]): a network or context
// error after the RELEASE was sent is an [*scopes.AmbiguousCommitError], as
// crdb.ExecuteInTx reports it; an error raised before anything was sent, or
// a server error answering the RELEASE, means nothing was committed.
//
// # On PostgreSQL
//
// The protocol runs unchanged on PostgreSQL, where cockroach_restart is an
// ordinary savepoint and COMMIT is the commit point. But a PostgreSQL
// REPEATABLE READ or SERIALIZABLE transaction keeps its snapshot across
// ROLLBACK TO SAVEPOINT, so a restart reads the same stale rows and fails
// with 40001 again: only a new transaction heals it (TestCockroachRestart
// shows it). On PostgreSQL use maxRestarts
// 0, or rely on the whole-transaction retry the restarts escalate to.
//
// CockroachRestart panics if maxRestarts < 0 or b is nil.
func CockroachRestart(maxRestarts int, b dbop.Backoff) Option {
	if maxRestarts < 0 {
		panic(fmt.Sprintf("pgxdb: CockroachRestart(%d, …): the number of restarts must not be negative", maxRestarts))
	}
	if b == nil {
		panic("pgxdb: CockroachRestart: a Backoff is required (use dbop.Constant(0) to restart at once)")
	}
	return optionFunc(func(c *config) {
		c.restart = true
		c.maxRestarts = maxRestarts
		c.restartBackoff = b
	})
}

// newConfig applies opts, panicking on a nil option.
func newConfig(opts []Option) *config {
	c := &config{rollbackTimeout: scopes.DefaultRollbackTimeout}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("pgxdb: InTx: option %d of %d is nil", i+1, len(opts)))
		}
		o.apply(c)
	}
	c.setSQL = setLocalSQL(c.settings)
	if c.classifier == nil {
		c.classifier = Classify
	} else {
		c.classifier = dbop.FirstOf(c.classifier, Classify)
	}
	return c
}
