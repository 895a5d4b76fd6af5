package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/dbop-go/dbop/scopes"
)

// Beginner starts transactions. *sql.DB and *sql.Conn satisfy it.
type Beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs, as [scopes.InTx] does, over database/sql: one run, one
// transaction begun on db. Retry it with [dbop.WithRetry] to retry whole
// transactions:
//
//	transfer := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int64, error) {
//		…
//	}, sqldb.LockTimeout(2*time.Second))
//	n, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// The [ClassifyBy] classifiers, then the dialect's classifier
// (Dialect.Classify), classify fn's error and the errors of BEGIN, and the
// dialect's commit rules (Dialect.CommitOutcome) judge a failed COMMIT:
// only a COMMIT whose outcome is unknown becomes an
// [*scopes.AmbiguousCommitError], retried only by a retry marked
// [dbop.Idempotent].
//
// fn receives a context marked [dbop.WithinTx]: run its statements with it.
// fn must neither commit nor roll back tx; InTx does. A transaction fn
// ended is reported as [dbop.Ambiguous] when fn returned nil,
// sql.ErrTxDone (a statement it sent afterwards, InSavepoint's RELEASE
// SAVEPOINT after a step that ended tx), or an error a retry would act on
// whose COMMIT outcome the dialect calls unknown (a lost connection, a
// context error): fn's own COMMIT may have applied its work, so neither a
// retry not marked Idempotent nor a [dbop.Fallback] acts on it. Any other
// error fn returns after ending tx is taken as fn's failure, since a
// *sql.Tx does not say whether fn committed or rolled it back: after
// tx.Commit succeeded, a deadlock or serialization failure of later work
// is retried, applying the committed work again, and a unique violation
// is replaced by a Fallback or OrDefault. Nor does InTx see a COMMIT or
// ROLLBACK fn sends as a statement (tx.ExecContext(ctx, "COMMIT")): the
// statements after it run in autocommit, and on PostgreSQL, MySQL and
// MariaDB InTx's own ROLLBACK or COMMIT finds no transaction and succeeds
// (docs/backends.md §1.21, §3.2). If fn panics, the transaction is rolled
// back and the panic goes on.
//
// [LockTimeout] and [StatementTimeout] apply per attempt (see the package
// documentation); on MySQL, MariaDB and SQLite they need a connection to
// pin, so db must then be a *sql.Conn or have a Conn(ctx) (*sql.Conn, error)
// method as *sql.DB has.
//
// On MySQL and MariaDB, when db is a *sql.DB, each transaction runs on a
// *sql.Conn InTx takes for it (no extra round trip). A Galera node outside
// the primary component answers COMMIT and ROLLBACK with 1047 and keeps the
// transaction open, and database/sql would pool that connection, whose next
// BEGIN commits the leftover (docs/backends.md §7.11): after a failed
// COMMIT or ROLLBACK, InTx asks SELECT @@in_transaction and closes the
// connection unless the answer is 0. A *sql.Conn db is closed the same way,
// and the error says so; it is not retried, since no retry can begin on
// it. A Beginner of the caller's chooses and guards its connection itself
// (mysqldb.NodeSet under its Failover option).
//
// db must not be inside a transaction of yours: database/sql begins a
// second transaction on a *sql.Conn whose *sql.Tx is still open, and the
// server ends yours (MySQL and MariaDB commit it; PostgreSQL ignores the
// BEGIN, so this transaction's ROLLBACK undoes your work and its COMMIT
// commits it). Nothing tells InTx without a round trip, so it does not
// check (docs/backends.md §10.6a): use [InSavepoint] on your transaction.
//
// The operation is safe for concurrent use when db is a *sql.DB and fn is;
// a *sql.Conn serves one transaction at a time. InTx panics if db or fn is
// nil, d is invalid, an option is nil, or the options cannot be honoured
// with d and db.
func InTx[T any](db Beginner, d Dialect, fn func(ctx context.Context, tx *sql.Tx) (T, error), opts ...TxOption) dbop.Op[T] {
	if fn == nil {
		panic("sqldb: InTx: the function to run in the transaction is nil")
	}
	b := newBegin("InTx", db, d, opts)
	return scopes.InTx(b.coordinated, func(ctx context.Context, t *txn) (T, error) {
		t.own(ctx)
		v, err := fn(ctx, t.tx)
		return v, t.judge(ctx, b, err)
	}, b.scopeOpts...)
}

// Do is [InTx] for work with no result: fn returns only an error, and the
// operation's value is struct{}. It panics as InTx does.
func Do(db Beginner, d Dialect, fn func(ctx context.Context, tx *sql.Tx) error, opts ...TxOption) dbop.Op[struct{}] {
	if fn == nil {
		panic("sqldb: Do: the function to run in the transaction is nil")
	}
	b := newBegin("Do", db, d, opts)
	return scopes.Do(b.coordinated, func(ctx context.Context, t *txn) error {
		t.own(ctx)
		return t.judge(ctx, b, fn(ctx, t.tx))
	}, b.scopeOpts...)
}

// begin is the scopes.BeginFunc of InTx and Do, and what it needs. It is
// immutable once built.
type begin struct {
	db        Beginner
	family    sqldialect.Family
	isolation sql.IsolationLevel
	timeouts  timeouts
	src       connSource // where to pin a connection for session settings; nil when db has none to give
	derive    bool       // session limits may be derived from a deadline: db is a *sql.DB or a *sql.Conn
	restoreTO time.Duration
	resolve   resolve.Conner // another connection for ResolveCommit; nil without it
	readOnly  bool
	guard     bool // MySQL or MariaDB: keep a transaction a failed end may have left open out of the pool (pinned.settle)
	own       bool // guard over a *sql.DB or *sql.Conn: hold the connection even without session settings
	scopeOpts []scopes.TxOption
	classify  dbop.Classifier // the caller's classifiers, then the dialect's
	// commitRules is the dialect's CommitOutcome: the rules that judge a
	// failed COMMIT.
	commitRules func(error) dbop.Verdict
	// locks remembers what the server said of a HotSpot's locks
	// (coordinated): none at all, or no PostgreSQL lock tables.
	locks hotlock.State
}

// newBegin checks the arguments of InTx or Do, named caller, and plans
// their transactions.
func newBegin(caller string, db Beginner, d Dialect, opts []TxOption) *begin {
	if isNil(db) {
		panic("sqldb: " + caller + ": the Beginner is nil" + nilType(db))
	}
	mustBeValid(d, caller)
	c := newTxConfig(caller, opts)
	b := &begin{
		db:        db,
		family:    d.Family,
		isolation: c.isolation,
		timeouts:  newTimeouts(caller, d, c),
		restoreTO: c.rollbackTimeout,
		readOnly:  c.readOnly,
	}
	switch db := db.(type) {
	case *sql.Conn:
		b.src, b.derive = callerConn{db}, true
	case *sql.DB:
		b.src, b.derive = poolSource{db}, true
	case interface {
		Conn(context.Context) (*sql.Conn, error)
	}:
		// A Beginner of the caller's (mysqldb.NodeSet, say) chooses its
		// connection at BeginTx: InTx pins one through its Conn only for
		// the session timeouts given, and derives none from a deadline.
		b.src = poolSource{db}
	}
	// On MySQL and MariaDB every connection InTx holds is guarded; over a
	// *sql.DB or a *sql.Conn InTx holds one for every transaction, so that
	// it can keep one a failed COMMIT or ROLLBACK left in a transaction out
	// of the pool (docs/backends.md §7.11). A Beginner of the caller's
	// chooses its own connection, and guards it or not (mysqldb.NodeSet's
	// Failover does).
	b.guard = d.Family == sqldialect.MySQL || d.Family == sqldialect.MariaDB
	b.own = b.guard && b.derive
	if b.timeouts.session != nil && b.src == nil {
		panic(fmt.Sprintf("sqldb: %s: %v session timeouts need a connection to pin: pass a *sql.DB or a *sql.Conn, not a %T", caller, d, db))
	}
	if c.resolve && d.Family != sqldialect.SQLite {
		pool, ok := db.(resolve.Conner)
		if _, conn := db.(*sql.Conn); !ok || conn {
			panic(fmt.Sprintf("sqldb: %s: ResolveCommit asks on another connection: pass a *sql.DB, not a %T", caller, db))
		}
		b.resolve = pool
	}
	b.classify = d.Classify
	b.commitRules = d.CommitOutcome
	for i := len(c.classifiers) - 1; i >= 0; i-- {
		b.classify = c.classifiers[i].Or(b.classify)
	}
	b.scopeOpts = []scopes.TxOption{
		c.classifyBy(d),
		scopes.CommitOutcome(commitOutcome(d.CommitOutcome)),
		scopes.RollbackTimeout(c.rollbackTimeout),
	}
	if c.readOnly {
		b.scopeOpts = append(b.scopeOpts, scopes.ReadOnly())
	}
	if b.resolve != nil {
		b.scopeOpts = append(b.scopeOpts, scopes.ResolveCommit())
	}
	return b
}

// beginOnce starts one attempt's transaction, with its timeouts applied:
// on PostgreSQL their SET LOCAL statements and the SELECT of the limits
// derived from a deadline, in one round trip after BEGIN. forLock begins
// the transaction for a HotSpot's LOCK on a lock table
// (hotlock.Scope.BeginForLock, coordinated): nothing is sent after BEGIN,
// and the statements are returned for the LOCK's round trip, so that the
// transaction takes two round trips before its work, as without a lock.
// Before the LOCK they bound its wait: the server ends it with 57014 or
// 55P03 and the connection survives (docs/backends.md §1.7). In a
// REPEATABLE READ or SERIALIZABLE transaction the SELECT goes after the
// lock's statements instead (Limits.After). A SELECT takes such a transaction's snapshot, and
// one before the LOCK would fix it before the wait for the lock, so that
// the attempt's writes to the rows the holder wrote would fail with 40001
// (§1.14, §1.18); SET LOCAL takes none. The LOCK's own wait is then
// bounded by the limits given and those in force, and by ctx, not by the
// limits derived from the deadline: a deadline that passes during the
// wait ends it on the client, and pgx closes the connection. With no
// Isolation the server's default is taken to be READ COMMITTED.
//
// The transaction is begun with a context of its own that carries ctx's
// values but not its cancellation (txContext): database/sql runs COMMIT
// and ROLLBACK with the context given to BeginTx, and rolls the
// transaction back by itself when that context ends (docs/backends.md
// §10.3), so a deadline of the caller's would otherwise cut a COMMIT short
// and leave its outcome unknown. fn's statements still run with ctx, and
// InTx rolls back when ctx ended while fn ran.
func (b *begin) beginOnce(ctx context.Context, o scopes.BeginOptions, forLock bool) (*txn, hotlock.Limits, error) {
	opts := &sql.TxOptions{Isolation: b.isolation, ReadOnly: o.ReadOnly}
	local, limits, sess := b.timeouts.attempt(ctx)
	var deferred hotlock.Limits
	if forLock {
		deferred, local = hotlock.LimitsFor(local, limits, hotlock.SQLSnapshot(b.isolation)), ""
	} else {
		local = serverlimit.Join(local, limits)
	}
	if !b.derive {
		sess = b.timeouts.session // no session limits derived (see newBegin)
	}
	t := &txn{restoreTO: b.restoreTO, sqlite: b.family == sqldialect.SQLite}
	if b.resolve != nil {
		t.res = &resolve.SQLTx{Family: b.family, ReadOnly: o.ReadOnly, Serializable: b.isolation == sql.LevelSerializable || b.isolation == sql.LevelDefault}
		t.other = b.resolve
	}
	var beginner Beginner = b.db
	switch {
	case sess != nil:
		p, err := pin(ctx, b.src, sess, b.restoreTO)
		if err != nil {
			return nil, deferred, err
		}
		t.pin, beginner = p, p.conn
	case b.own:
		p, err := take(ctx, b.src, b.restoreTO)
		if err != nil {
			return nil, deferred, err
		}
		t.pin, beginner = p, p.conn
	}
	t.guard = b.guard
	txCtx, cancelCause := context.WithCancelCause(context.WithoutCancel(ctx))
	cancel := func() { cancelCause(nil) }
	t.cancel, t.ended = cancel, cancelCause
	tx, err := beginWhile(ctx, txCtx, cancel, beginner, opts)
	for try := 1; try < maxBadConnTries && sess == nil && b.own && t.pin.owned && errors.Is(err, driver.ErrBadConn); try++ {
		// *sql.DB.BeginTx takes another connection when BEGIN finds a
		// pooled one broken (driver.ErrBadConn: nothing was sent,
		// docs/backends.md §10.1); *sql.Conn.BeginTx does not, and has
		// discarded this one: take another as it would.
		t.pin.close()
		p, perr := take(ctx, b.src, b.restoreTO)
		if perr != nil {
			t.pin = nil
			cancel()
			return nil, deferred, perr
		}
		t.pin, beginner = p, p.conn
		tx, err = beginWhile(ctx, txCtx, cancel, beginner, opts)
	}
	if err != nil {
		cancel()
		var endErr error // a BEGIN refused leaves no transaction open…
		if ctx.Err() != nil {
			endErr = err // …but one cut short is rolled back, and that may fail
		}
		t.release(ctx, endErr)
		return nil, deferred, err
	}
	t.tx = tx
	if local != "" {
		if _, err := tx.ExecContext(ctx, local); err != nil {
			// scopes.InTx rolls back only transactions whose begin
			// succeeded: roll back here, bounded as it bounds its own.
			rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), b.restoreTO)
			defer stop()
			_ = t.Rollback(rctx)
			return nil, deferred, fmt.Errorf("sqldb: %s: %w", local, err)
		}
	}
	return t, deferred, nil
}

// execer runs a statement outside a transaction: *sql.DB and *sql.Conn.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// beginWhile begins a transaction on db with txCtx, which ctx's end
// cancels while BeginTx runs, so that the caller's deadline still bounds
// BEGIN. If ctx ended meanwhile, the transaction is rolled back and ctx's
// cause returned.
func beginWhile(ctx, txCtx context.Context, cancel context.CancelFunc, db Beginner, opts *sql.TxOptions) (*sql.Tx, error) {
	stop := context.AfterFunc(ctx, cancel)
	tx, err := db.BeginTx(txCtx, opts)
	if !stop() {
		// ctx ended: txCtx is cancelled, and database/sql rolls back a
		// transaction it had begun.
		if err == nil {
			_ = tx.Rollback()
		}
		return nil, txmark.ContextErr(ctx)
	}
	return tx, err
}

// txn adapts *sql.Tx to [scopes.Tx] and releases the pinned connection, if
// any, once the transaction has ended. scopes.InTx calls exactly one of
// Commit and Rollback on it, and with ResolveCommit, maybe ResolveCommit
// after Commit.
type txn struct {
	tx        *sql.Tx
	cancel    context.CancelFunc // cancels the context tx was begun with
	pin       *pinned            // nil when InTx holds no connection
	guard     bool               // settle pin after a failed end (pinned.settle)
	restoreTO time.Duration
	res       *resolve.SQLTx // nil without ResolveCommit
	other     resolve.Conner
	sqlite    bool // the SQLite family: a COMMIT may find the transaction ended (sqldialect.TxEnded)
	// rolledBack says that rollbackEarly rolled the transaction back, and
	// endErr is the error to report for it when scopes.InTx rolls back.
	rolledBack bool
	endErr     error

	// ended cancels the context tx was begun with once COMMIT or ROLLBACK
	// returned, with the cause txmark.ErrEndedCleanly when it succeeded: a
	// Beginner that chose the connection (mysqldb.NodeSet) then pools it
	// without asking whether a transaction is still open on it
	// (docs/backends.md §7.11).
	ended context.CancelCauseFunc
}

// judge returns the error of fn, which returned err on t's transaction:
// Ambiguous where fn may have ended the transaction itself
// (sqldialect.EndedInFn; InTx's COMMIT finds the other cases:
// commitError), else as sqldialect.Judge says.
func (t *txn) judge(ctx context.Context, b *begin, err error) error {
	if e := sqldialect.EndedInFn(ctx, err, errEndedInFn, b.classify, b.commitRules, func() bool { return sqldialect.TxDone(t.tx) }); e != nil {
		return e
	}
	return sqldialect.Judge(ctx, b.family, "sqldb", err, false, func() error { return t.rollbackEarly(ctx) })
}

// own records t's *sql.Tx in the state of the transaction scopes.InTx
// hands fn in ctx, before fn runs: a savepoint step on MySQL or MariaDB sets
// session limits only on the transaction InTx holds the connection of
// (resolve.SavepointLimits).
func (t *txn) own(ctx context.Context) {
	if st := txmark.StateOf(ctx); st != nil {
		st.SetSession(t.tx)
	}
}

// Commit commits. database/sql's Commit takes no context: the driver uses
// the one given to BeginTx (docs/backends.md §10.3), which carries no
// cancellation; ctx, which scopes.InTx bounds by RollbackTimeout, cancels
// it when it ends, so that a COMMIT that hangs still ends (pgx's driver
// closes the connection; go-sql-driver does not watch the context during
// COMMIT, §4.7). With ResolveCommit, the id's read or the marker's write
// runs first, in its own round trip.
func (t *txn) Commit(ctx context.Context) error {
	if t.res != nil {
		if err := t.res.BeforeCommit(ctx, t.tx); err != nil {
			_ = t.Rollback(ctx)
			if errors.Is(err, sql.ErrTxDone) {
				// The statement's context was alive (database/sql checks
				// it first), and the transaction's is cancelled only
				// below: fn ended tx itself, and COMMIT not being sent
				// proves nothing (docs/backends.md §10.3).
				return fmt.Errorf("%w: %w", errEndedInFn, err)
			}
			return fmt.Errorf("sqldb: %w", err)
		}
	}
	doneBefore := ctx.Err()
	if doneBefore != nil {
		// Cancel now, not in AfterFunc's goroutine: database/sql's Commit
		// sends COMMIT unless its first check sees the transaction's
		// context done, and a COMMIT sent and then cut by that cancel
		// returns a context error too (pgx's driver: context.Canceled,
		// docs/backends.md §2.6), which commitError would take for "not
		// sent".
		t.cancel()
	}
	stop := context.AfterFunc(ctx, t.cancel)
	err := t.tx.Commit()
	stop()
	t.end(err)
	if err == nil && t.res != nil {
		// One transaction in 64 that wrote a commit marker deletes old
		// ones, on the same connection when it is pinned.
		if t.pin != nil {
			_, _ = t.res.AfterCommit(ctx, t.pin.conn) // a failed cleanup fails nothing
		} else if db, ok := t.other.(execer); ok {
			_, _ = t.res.AfterCommit(ctx, db)
		}
	}
	lost := t.release(ctx, err)
	if err != nil {
		err = commitError(ctx, doneBefore, err)
		if t.sqlite && sqldialect.NoTransaction(err) {
			err = sqldialect.TxEnded("sqldb", err)
		}
		if lost {
			err = &connDiscardedError{err}
		}
		return err
	}
	return nil
}

// ResolveCommit implements scopes.CommitResolver: see [ResolveCommit].
func (t *txn) ResolveCommit(ctx context.Context, _ error) (scopes.Resolution, error) {
	if t.res == nil {
		return scopes.Unresolved, errors.New("sqldb: ResolveCommit was not given")
	}
	r, err := t.res.Resolve(ctx, t.other)
	if err != nil {
		err = fmt.Errorf("sqldb: %w", err)
	}
	return r, err
}

// Rollback rolls back. database/sql's Rollback takes no context; ctx,
// bounded by scopes.InTx, cancels the context the transaction was begun
// with when it ends, and bounds the restore of the session settings.
func (t *txn) Rollback(ctx context.Context) error {
	if t.rolledBack {
		return t.endErr
	}
	stop := context.AfterFunc(ctx, t.cancel)
	err := t.tx.Rollback()
	stop()
	t.end(err)
	if t.release(ctx, err) {
		err = &connDiscardedError{err}
	}
	return err
}

// end cancels the context t's transaction was begun with, now that its
// COMMIT or ROLLBACK returned err: with the cause txmark.ErrEndedCleanly when
// err is nil (see txn.ended). A context the caller's end cancelled during
// the COMMIT or ROLLBACK keeps its first cause.
func (t *txn) end(err error) {
	if err == nil {
		t.ended(txmark.ErrEndedCleanly)
		return
	}
	t.ended(err)
}

// rollbackEarly rolls back before scopes.InTx would, bounded as it bounds
// its own rollback, for sqldialect.SwallowedSQLite: Rollback then returns
// the same outcome without sending ROLLBACK again — nothing when SQLite
// answered that no transaction was active, which the Ambiguous error
// SwallowedSQLite returns says already.
func (t *txn) rollbackEarly(ctx context.Context) error {
	rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), t.restoreTO)
	defer stop()
	err := t.Rollback(rctx)
	t.rolledBack, t.endErr = true, err
	if sqldialect.NoTransaction(err) {
		t.endErr = nil
	}
	return err
}

// release gives back the pinned connection, if any, once, after the
// transaction ended with endErr (nil when it ended well), and reports
// whether it closed a *sql.Conn of the caller's (see pinned.settle).
func (t *txn) release(ctx context.Context, endErr error) (callerConnLost bool) {
	if t.pin == nil {
		return false
	}
	// After a successful COMMIT a failed restore must not fail the
	// operation (a retry would apply it twice): release discards the
	// connection instead.
	p := t.pin
	t.pin = nil
	return p.settle(ctx, endErr, t.guard) && !p.owned
}

// maxBadConnTries is how many connections begin tries while BEGIN finds
// them broken, as *sql.DB.BeginTx does (database/sql's maxBadConnRetries
// plus one, docs/backends.md §10.1).
const maxBadConnTries = 3

// connDiscardedError is the error of a COMMIT or ROLLBACK that failed on a
// *sql.Conn the caller passed, which InTx then closed because the
// transaction may have stayed open on it (docs/backends.md §7.11): the
// caller's *sql.Conn now returns sql.ErrConnDone, and a retry cannot begin
// on it, so the error is not retried (commitOutcome) unless the COMMIT's
// outcome is unknown.
type connDiscardedError struct{ err error }

func (e *connDiscardedError) Error() string {
	return e.err.Error() + " (sqldb: the *sql.Conn was closed: the transaction may have stayed open on it)"
}

func (e *connDiscardedError) Unwrap() error { return e.err }
