package gormdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/dbop-go/dbop/scopes"
	"gorm.io/gorm"
)

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs: one run, one transaction. It is [scopes.InTx] for GORM: per
// run it begins a transaction with db.WithContext(ctx).Begin, hands fn the
// transaction's *gorm.DB, and commits when fn succeeds or rolls back when
// it fails or panics. Retrying the operation retries the whole
// transaction, fn's reads included:
//
//	transfer := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int64, error) { … })
//	id, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// fn must run every statement on tx, which carries ctx, must return the
// .Error of each one that fails, and must not call tx.Commit or
// tx.Rollback (nor Commit or Rollback on the *sql.Tx of [SQLTx]); InTx
// does. InTx cannot tell which of the two fn did, and reports such a
// transaction as [dbop.Ambiguous]: when its COMMIT finds the transaction
// ended (with [ResolveCommit], when the statement it runs before COMMIT
// does), when fn returned nil after ctx ended, when fn returned
// sql.ErrTxDone (a statement it sent afterwards, InSavepoint's RELEASE
// SAVEPOINT after a step that ended tx), and when fn returned an error a
// retry would act on whose COMMIT outcome the dialect calls unknown (a
// lost connection, a context error), which may be its own COMMIT's. fn's
// own COMMIT may have applied its work, so neither a retry not marked
// Idempotent nor a [dbop.Fallback] acts on it. Any other error fn returns
// after ending tx is taken as fn's failure: after fn's tx.Commit
// succeeded, a deadlock or serialization failure of later work is
// retried, applying the committed work again, and a unique violation is
// replaced by a Fallback or OrDefault. Nor does InTx see a COMMIT or
// ROLLBACK fn sends as a statement (tx.Exec("COMMIT")): the statements
// after it run in autocommit, and on PostgreSQL, MySQL and MariaDB InTx's
// own ROLLBACK or COMMIT finds no transaction and succeeds
// (docs/backends.md §1.21, §3.2).
//
// Errors are classified by the [ClassifyBy] classifiers, then GORM's own
// errors, then the dialect's classifier (see [Dialect]). A COMMIT error is
// judged by the dialect's COMMIT rules (docs/backends.md §11): an error
// raised before anything was sent, or a server error answering the COMMIT,
// means "not committed" and is classified like any other; a network or
// context error after the send leaves the outcome unknown and is returned
// as a [*scopes.AmbiguousCommitError] with the verdict [dbop.Ambiguous],
// retried only by a retry marked [dbop.Idempotent].
//
// database/sql ends the transaction with the context given to Begin: COMMIT
// and ROLLBACK run with it, and when it ends database/sql rolls the
// transaction back by itself (§10.3). InTx therefore begins with a context
// that has ctx's values but not its cancellation, and hands fn the
// transaction with ctx: a per-attempt dbop.WithTimeout listed after the
// retry bounds fn's statements (with pgx and go-sql-driver its expiry
// closes the connection, §2.7, §4.6, which the limits InTx derives from
// the deadline avoid; see the package documentation), while COMMIT and
// ROLLBACK are bounded by [RollbackTimeout] and never cut short by it.
//
// On MySQL, MariaDB and SQLite, tx runs its statements through a
// connection pool of this package's around the transaction's own, which
// sees their errors, and which statements go out after an error, on tx
// and on every handle derived from it (tx.WithContext, tx.Session, a
// nested tx.Transaction, whose errors GORM keeps on the derived handle).
// MySQL and MariaDB end the whole transaction at a deadlock (1213) and run
// the statements that follow on their own, each committed at once
// (docs/backends.md §3.2): when a statement fails with an error the
// dialect's classifier calls RetryTransaction or Ambiguous and fn goes on
// rather than returning it, InTx does not commit but returns an Ambiguous
// error saying so, as it does when a scope or a retry inside fn saw the
// transaction doomed. Going on includes running further statements and
// then returning that error: the statements ran on their own, and InTx
// returns an Ambiguous error rather than the retryable one, so that no
// retry applies them twice. The SAVEPOINT, ROLLBACK TO SAVEPOINT and
// RELEASE SAVEPOINT of a nested tx.Transaction or an [InSavepoint] write
// nothing and do not count, nor does a statement failing with
// driver.ErrBadConn, which was never sent; every other statement does,
// failed or not. Not seen there:
// an error read from a query's rows (rows.Err), the statements of a
// session fn opens with PrepareStmt, and those run on the *sql.Tx that
// [SQLTx] returns. A query's rows are where MariaDB reports the deadlock
// of a locking read that returned a row before it waited
// (docs/backends.md §3.19): tx.Clauses(clause.Locking{Strength:
// "UPDATE"}).Find(&items) over several rows, or Raw("… FOR
// UPDATE").Scan(&items). GORM puts the 1213 in .Error; a function that
// swallows it is not caught, its later statements commit on their own,
// and InTx commits nothing and reports success. Return such an error at
// once.
//
// On SQLite a write that a deadline interrupts rolls back the whole
// transaction, savepoints included, and SQLITE_FULL, IOERR, NOMEM and
// BUSY may (docs/backends.md §5.5, §5.6); the statements that follow are
// committed at once, as after a MariaDB deadlock. When fn went on after a
// scope or a retry saw the transaction doomed, returned an error after
// running statements past an error that may have ended the transaction
// (any but a NotRetryable one, such as a constraint's), or returned nil
// after ctx ended, InTx sends the ROLLBACK it owes before judging fn's
// error: if SQLite answers that no transaction is active, the error is
// Ambiguous, and so is a COMMIT that finds none. A SAVEPOINT (GORM's nested
// tx.Transaction, an InSavepoint step) sent after such an error fails with
// a RetryTransaction error when SQLite had ended the transaction, where it
// would begin another (docs/backends.md §5.15). Let an interrupted
// write's error out of fn at once.
//
// db must not be inside a transaction: BEGIN then fails with
// gorm.ErrInvalidTransaction, NotRetryable, and nothing is begun, whatever
// ctx's deadline. Use [InSavepoint] there. Only the handle a transaction
// was begun on knows it: a db bound to one connection (inside
// db.Connection) on which another handle of yours began a transaction
// (its Begin) is not seen, and the server ends yours when InTx begins on
// that connection (docs/backends.md §10.6a). Before
// beginning, InTx checks db.Error: GORM would otherwise begin a transaction
// and hand back a handle carrying the old error, which looks like a failed
// BEGIN and leaves the transaction open. Such an error is returned as
// NotRetryable, and nothing is begun.
//
// On MySQL and MariaDB each transaction runs on a *sql.Conn of db's pool
// that InTx takes for it (no extra round trip), or on db's own *sql.Conn
// (db.Connection). A Galera node outside the primary component answers
// COMMIT and ROLLBACK with 1047 and keeps the transaction open, and
// database/sql would pool that connection, whose next BEGIN commits the
// leftover (docs/backends.md §7.11): after a failed COMMIT or ROLLBACK,
// InTx asks SELECT @@in_transaction and closes the connection unless the
// answer is 0; a connection of the caller's so closed makes the error say
// so, not retried. A pool that is neither a *sql.DB (plain or under
// PrepareStmt, whose cache such a transaction does not use) nor a
// *sql.Conn, such as a resolver plugin's, is not guarded.
//
// The operation is safe for concurrent use if fn is: each run has its own
// transaction. InTx panics if db or fn is nil, an option is nil, db is on
// the mysql dialector without a [Dialect], the Dialect does not fit db's
// dialector, or an option does not fit the dialect ([LockTimeout] and
// [StatementTimeout] outside PostgreSQL, an [Isolation] level the driver
// refuses).
func InTx[T any](db *gorm.DB, fn func(ctx context.Context, tx *gorm.DB) (T, error), opts ...TxOption) dbop.Op[T] {
	if db == nil {
		panic("gormdb: InTx: the *gorm.DB is nil")
	}
	if fn == nil {
		panic("gormdb: InTx: the function to run in the transaction is nil")
	}
	b := newBeginner("InTx", db, opts)
	return scopes.InTx(b.coordinated, func(ctx context.Context, t *txn) (T, error) {
		t.watch(ctx)
		v, err := fn(ctx, t.fnDB)
		return v, t.judge(ctx, b, err)
	}, b.scopeOpts...)
}

// Do is [InTx] for work with no result: fn returns only an error, and the
// operation's value is struct{}. It panics as InTx does.
func Do(db *gorm.DB, fn func(ctx context.Context, tx *gorm.DB) error, opts ...TxOption) dbop.Op[struct{}] {
	if db == nil {
		panic("gormdb: Do: the *gorm.DB is nil")
	}
	if fn == nil {
		panic("gormdb: Do: the function to run in the transaction is nil")
	}
	b := newBeginner("Do", db, opts)
	return scopes.Do(b.coordinated, func(ctx context.Context, t *txn) error {
		t.watch(ctx)
		return t.judge(ctx, b, fn(ctx, t.fnDB))
	}, b.scopeOpts...)
}

// beginner begins the transactions of one InTx or Do. It is immutable once
// built.
type beginner struct {
	caller          string
	db              *gorm.DB
	family          sqldialect.Family // 0 for a dialector this package does not know
	isolation       sql.IsolationLevel
	lock, stmt      time.Duration // LockTimeout, StatementTimeout; 0 when not given
	rollbackTimeout time.Duration
	resolve         bool // ResolveCommit, on a family that has a resolution
	scopeOpts       []scopes.TxOption
	classify        dbop.Classifier          // the caller's, GORM's, then the backend's
	dialect         dbop.Classifier          // the backend's alone: what ends a transaction (txPool)
	commitRules     func(error) dbop.Verdict // the backend's COMMIT rules (Dialect.CommitOutcome)
	// locks remembers what the server said of a HotSpot's locks
	// (coordinated): none at all, or no PostgreSQL lock tables.
	locks hotlock.State
}

// newBeginner checks the options of InTx or Do, named caller, against db's
// dialect, panicking on a programmer error, and plans their transactions.
func newBeginner(caller string, db *gorm.DB, opts []TxOption) *beginner {
	c := newTxConfig(caller, opts)
	be := backendFor(caller, db, c.dialect)
	if (c.lockTimeout > 0 || c.statementTimeout > 0) && be.family != sqldialect.Postgres {
		panic(fmt.Sprintf("gormdb: %s: LockTimeout and StatementTimeout are implemented for PostgreSQL only, not %s; "+
			"for MySQL and MariaDB see the package documentation", caller, be.name))
	}
	if name := dialectorName(db); !isolationSupported(name, c.isolation) {
		panic(fmt.Sprintf("gormdb: %s: the %s dialector's driver does not support the isolation level %v", caller, name, c.isolation))
	}
	b := &beginner{
		classify:        c.classifier(be),
		dialect:         be.classify,
		commitRules:     be.commitOutcome,
		caller:          caller,
		db:              db,
		family:          be.family,
		isolation:       c.isolation,
		lock:            c.lockTimeout,
		stmt:            c.statementTimeout,
		rollbackTimeout: c.rollbackTimeout,
		resolve:         c.resolve && (be.family == sqldialect.Postgres || be.backquotes()),
		scopeOpts: []scopes.TxOption{
			scopes.ClassifyBy(c.classifier(be)),
			scopes.CommitOutcome(commitOutcome(be.commitOutcome)),
			scopes.RollbackTimeout(c.rollbackTimeout),
		},
	}
	if c.readOnly {
		b.scopeOpts = append(b.scopeOpts, scopes.ReadOnly())
	}
	if b.resolve {
		b.scopeOpts = append(b.scopeOpts, scopes.ResolveCommit())
	}
	return b
}

// isolationSupported reports whether the driver under the named dialector
// accepts level; other dialectors accept every level (their driver decides
// at BEGIN).
func isolationSupported(dialector string, level sql.IsolationLevel) bool {
	switch level {
	case sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable:
		return true
	case sql.LevelSnapshot:
		// pgx stdlib BeginTx maps it to REPEATABLE READ; go-sql-driver's
		// mapIsolationLevel refuses it.
		return dialector != mysqlDialector
	}
	return dialector != postgresDialector && dialector != mysqlDialector
}

// beginOnce begins one attempt's transaction, for coordinated, the
// scopes.BeginFunc of InTx and Do.
//
// The transaction is begun with a context of its own that carries ctx's
// values but not its cancellation: database/sql runs COMMIT and ROLLBACK
// with the context given to BEGIN, and rolls the transaction back by
// itself when that context ends (docs/backends.md §10.3), so a deadline of
// the caller's would cut a COMMIT short and leave its outcome unknown.
// Rollback and Commit cancel it when their own bound expires. fn receives
// the transaction with ctx (tx.WithContext(ctx)), so its statements still
// end with the caller's context.
//
// When ctx has a deadline, the attempt's server-side limits are derived
// from the time left (serverLimits). On PostgreSQL they are set, with the
// limits given, by one SELECT after BEGIN. forLock begins the transaction
// for a HotSpot's LOCK on a lock table (hotlock.Scope.BeginForLock): the
// limits are then not set but returned (lockLimits), for the LOCK's round
// trip, so that the attempt has no more round trips than without the lock.
//
// GORM's Begin adds gorm.Config.DefaultTransactionTimeout to a context
// without a deadline, such as the transaction's, and database/sql would
// then roll the transaction back by itself when that timer fires, COMMIT
// included. When it is set, Begin is given the transaction's context under
// noDefaultTimeout, which reports a deadline and has none.
//
// On MySQL, MariaDB and SQLite fn's handle runs its statements through a
// txPool, which sees the errors that end the transaction and the
// statements sent after them.
func (b *beginner) beginOnce(ctx context.Context, o scopes.BeginOptions, forLock bool) (*txn, hotlock.Limits, error) {
	if err := b.db.Error; err != nil {
		return nil, hotlock.Limits{}, dbop.Classify(fmt.Errorf("gormdb: the *gorm.DB given to %s carries an error: %w", b.caller, err), dbop.NotRetryable)
	}
	if _, ok := statementPool(b.db).(gorm.TxCommitter); ok {
		// GORM's Begin refuses a transaction's pool, but a connection
		// pinned for the attempt (holdConn) would not: the transaction
		// begun there would commit apart from the one db is in.
		return nil, hotlock.Limits{}, dbop.Classify(fmt.Errorf("gormdb: the *gorm.DB given to %s is inside a transaction (use InSavepoint there): %w",
			b.caller, gorm.ErrInvalidTransaction), dbop.NotRetryable)
	}
	var setLocal, pinSet, pinRestore string
	var limits hotlock.Limits // for the LOCK's round trip
	if forLock {
		limits = b.lockLimits(ctx)
	} else {
		setLocal, pinSet, pinRestore = b.serverLimits(ctx)
	}
	txCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	t := &txn{cancel: cancel, restoreTO: b.rollbackTimeout, sqlite: b.family == sqldialect.SQLite}
	beginCtx := context.Context(txCtx)
	if b.db.Config != nil && b.db.DefaultTransactionTimeout > 0 {
		beginCtx = noDefaultTimeout{txCtx}
	}
	base := b.db.WithContext(beginCtx)
	t.guard = b.backquotes()
	hold := func() error {
		p, err := holdConn(ctx, b.db, pinSet, pinRestore, b.rollbackTimeout, t.guard)
		if err != nil {
			return err
		}
		if t.pin = p; p != nil {
			base.Statement.ConnPool = p.conn // WithContext cloned the statement
		}
		return nil
	}
	if err := hold(); err != nil {
		cancel(nil)
		return nil, hotlock.Limits{}, err
	}
	opts := &sql.TxOptions{Isolation: b.isolation, ReadOnly: o.ReadOnly}
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	tx := base.Begin(opts)
	for try := 1; try < maxBadConnTries && pinSet == "" && t.pin != nil && t.pin.owned && errors.Is(tx.Error, driver.ErrBadConn); try++ {
		// *sql.DB.BeginTx takes another connection when BEGIN finds a
		// pooled one broken (driver.ErrBadConn: nothing was sent,
		// docs/backends.md §10.1); *sql.Conn.BeginTx does not, and has
		// discarded this one: take another as it would.
		_ = t.pin.conn.Close()
		t.pin = nil
		if err := hold(); err != nil {
			stop()
			cancel(nil)
			return nil, hotlock.Limits{}, err
		}
		tx = base.Begin(opts)
	}
	if !stop() {
		// ctx ended during BEGIN: the transaction's context is cancelled,
		// and database/sql rolls back a transaction it had begun, which
		// may fail too.
		t.release(ctx, context.Cause(ctx))
		cancel(nil)
		return nil, hotlock.Limits{}, txmark.ContextErr(ctx)
	}
	if err := tx.Error; err != nil {
		t.release(ctx, nil) // a BEGIN refused leaves no transaction open
		cancel(nil)
		return nil, hotlock.Limits{}, err
	}
	tx.Statement.Context = txCtx // noDefaultTimeout's deadline is for Begin alone
	t.db, t.fnDB = tx, tx.WithContext(ctx)
	if inner, ok := tx.Statement.ConnPool.(gorm.Tx); ok && (b.backquotes() || b.family == sqldialect.SQLite) {
		t.pool.Tx, t.pool.classify, t.pool.sqlite = inner, b.dialect, b.family == sqldialect.SQLite
		t.fnDB.Statement.ConnPool = &t.pool // WithContext cloned the statement: t.db keeps the transaction's own
	}
	if b.resolve {
		t.res = &resolve.SQLTx{Family: b.family, ReadOnly: o.ReadOnly, Serializable: b.isolation == sql.LevelSerializable || b.isolation == sql.LevelDefault}
	}
	if setLocal != "" {
		// Below GORM's prepared-statement cache, as ResolveCommit's
		// statements (rawConnPool): the values derived from the time left
		// differ at nearly every attempt, and each would be prepared, a
		// round trip, and kept in the cache.
		if _, err := rawConnPool(tx).ExecContext(txCtx, setLocal); err != nil {
			// scopes.InTx does not roll back after a BEGIN error: do it
			// here, bounded as scopes bounds its own rollbacks.
			rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), b.rollbackTimeout)
			defer stop()
			if rbErr := t.Rollback(rctx); rbErr != nil {
				return nil, hotlock.Limits{}, fmt.Errorf("gormdb: setting the transaction's timeouts: %w (rollback: %w)", err, rbErr)
			}
			return nil, hotlock.Limits{}, fmt.Errorf("gormdb: setting the transaction's timeouts: %w", err)
		}
	}
	return t, limits, nil
}

// serverLimits returns one attempt's server-side limits: on PostgreSQL the
// set_config statement of the limits given, lowered to the time left on
// ctx less a margin (resolve.ServerLimits) where that is smaller, and the
// lock timeout to a dbop.HotSpot's bound on lock waits; on MySQL
// and MariaDB, when ctx has a deadline, the session settings to apply on a
// pinned connection and the statement that restores them
// (resolve.MySQLSessionLimits). SQLite needs none: a context deadline
// interrupts the statement and keeps the connection (§5.9, §10.7).
//
// A derived limit only lowers what is in force: a limit given
// ([LockTimeout], [StatementTimeout]) is set to the smaller of the given
// and the derived value, as given over any default; a limit not given is
// set to the smaller of the derived value and the value in force, which
// the server computes in the same statement (serverlimit.PostgresLeast,
// serverlimit.MySQLLeast; docs/backends.md §1.18, §3.15).
func (b *beginner) serverLimits(ctx context.Context) (setLocal, pinSet, pinRestore string) {
	stmtLimit, lockLimit, ok := resolve.ServerLimits(ctx)
	switch {
	case b.family == sqldialect.Postgres:
		var calls []string
		for _, l := range b.postgresLimits(ctx) {
			if l.least != "" {
				calls = append(calls, l.least)
			} else {
				calls = append(calls, setConfig(l.name, l.value))
			}
		}
		return serverlimit.PostgresSelect(calls), "", ""
	case ok && b.backquotes():
		set, restore := resolve.MySQLSessionLimits(b.family == sqldialect.MariaDB, min(stmtLimit, lockLimit))
		return "", set, restore
	}
	return "", "", ""
}

// pgLimit is one limit of an attempt on PostgreSQL: the parameter name set
// to value, or, where least is not "", by least, the set_config call that
// sets it to the least of the derived value and the value in force.
type pgLimit struct {
	name  string
	value time.Duration
	least string
}

// postgresLimits returns one attempt's limits on PostgreSQL, lock_timeout
// first (see serverLimits): the limits given, as values, lowered to those
// derived from ctx's deadline where those are smaller, and, with a
// deadline, the derived limits of the parameters not given, as set_config
// calls of their least.
func (b *beginner) postgresLimits(ctx context.Context) []pgLimit {
	stmtLimit, lockLimit, ok := resolve.ServerLimits(ctx)
	var limits []pgLimit
	for _, l := range [...]struct {
		name         string
		given, limit time.Duration
	}{{"lock_timeout", b.lock, lockLimit}, {"statement_timeout", b.stmt, stmtLimit}} {
		switch limit := l.limit.Truncate(time.Millisecond); {
		case !ok && l.given == 0:
		case !ok:
			limits = append(limits, pgLimit{name: l.name, value: l.given})
		case l.given == 0:
			limits = append(limits, pgLimit{name: l.name, least: serverlimit.PostgresLeast(l.name, limit.Milliseconds())})
		case limit < l.given:
			limits = append(limits, pgLimit{name: l.name, value: limit})
		default:
			limits = append(limits, pgLimit{name: l.name, value: l.given})
		}
	}
	return limits
}

// lockLimits returns the statements of one attempt's limits on PostgreSQL
// for the round trip of a HotSpot's LOCK (hotlock.Limits), in place of the
// SELECT that serverLimits runs after BEGIN. The limits given, as values,
// are SET LOCAL before the LOCK, where they bound its wait: SET LOCAL
// takes no snapshot, and with the LOCK it goes on the transaction's own
// connection (hotlock.SQL over rawConnPool), with no arguments, in one
// round trip of the simple query protocol, so that neither GORM's prepared
// statements nor a statement of its own are needed for it. The derived
// limits of the parameters not given stay in one SELECT, whose server
// computes their least (serverlimit.PostgresLeast, docs/backends.md
// §1.18): before the LOCK, so that the server bounds its wait by them and
// ends it with 57014 or 55P03, keeping the connection (§1.7); after it in
// a REPEATABLE READ or SERIALIZABLE transaction (hotlock.SQLSnapshot), as
// far as [Isolation] says, whose snapshot the SELECT would take before the
// wait, so that the attempt's writes to the rows the holder wrote would
// fail with 40001 (§1.14). There the LOCK's wait is bounded by the limits
// given and those in force, and by ctx, not by the limits derived from
// the deadline: a deadline that passes during the wait ends it on the
// client, and pgx closes the connection. With no Isolation the server's
// default is taken to be READ COMMITTED.
func (b *beginner) lockLimits(ctx context.Context) hotlock.Limits {
	var set, least []string
	for _, l := range b.postgresLimits(ctx) {
		if l.least != "" {
			least = append(least, l.least)
		} else {
			set = append(set, "SET LOCAL "+l.name+" = "+strconv.FormatInt(l.value.Milliseconds(), 10))
		}
	}
	return hotlock.LimitsFor(strings.Join(set, "; "), serverlimit.PostgresSelect(least), hotlock.SQLSnapshot(b.isolation))
}

// backquotes reports whether the family is MySQL's or MariaDB's.
func (b *beginner) backquotes() bool {
	return b.family == sqldialect.MySQL || b.family == sqldialect.MariaDB
}

// statementPool returns the connection pool db's statements run on.
func statementPool(db *gorm.DB) gorm.ConnPool {
	if db.Statement != nil && db.Statement.ConnPool != nil {
		return db.Statement.ConnPool
	}
	return db.ConnPool
}

// pinned is the connection an attempt's transaction runs on, when InTx
// holds it: on MySQL and MariaDB, to carry the attempt's session settings,
// whose limits have no transaction-scoped form (docs/backends.md §3.10),
// and to keep a transaction that COMMIT or ROLLBACK may have left open out
// of the pool (settle).
type pinned struct {
	conn    *sql.Conn
	owned   bool   // taken from the pool: close it after the attempt
	restore string // "" when no session setting was changed
	timeout time.Duration
}

// maxBadConnTries is how many connections begin tries while BEGIN finds
// them broken, as *sql.DB.BeginTx does (database/sql's maxBadConnRetries
// plus one, docs/backends.md §10.1).
const maxBadConnTries = 3

// holdConn returns the connection the attempt's transaction is to run on,
// with set applied to it when set is not "", or nil when InTx need not
// hold one (set is "" and guard false) or cannot: a connection pool GORM
// was given that is neither a *sql.DB (plain or under GORM's
// PreparedStmtDB) nor a *sql.Conn, such as a resolver plugin's, is left to
// begin on its own. A *sql.Conn in db's statement (db.Connection's) is the
// caller's: it is used, never closed after a success. *sql.DB.Conn sends
// nothing to the server, so holding a connection costs no round trip.
//
// Under PreparedStmtDB, statements in a held transaction are prepared on
// that transaction alone, not kept in GORM's cache: a statement prepared
// on one connection cannot be cached for the pool.
func holdConn(ctx context.Context, db *gorm.DB, set, restore string, timeout time.Duration, guard bool) (*pinned, error) {
	pool := statementPool(db)
	var sqlDB *sql.DB
	switch p := pool.(type) {
	case *sql.Conn:
		if set != "" {
			if _, err := p.ExecContext(ctx, set); err != nil {
				return nil, fmt.Errorf("gormdb: %s: %w", set, err)
			}
		}
		return &pinned{conn: p, restore: restore, timeout: timeout}, nil
	case *sql.DB:
		sqlDB = p
	case *gorm.PreparedStmtDB:
		sqlDB, _ = p.ConnPool.(*sql.DB)
	}
	if sqlDB == nil {
		if set == "" {
			return nil, nil // unguarded: see the package documentation
		}
		if _, ok := pool.(gorm.TxCommitter); ok {
			// db.DB() would return the *sql.DB under the transaction, and
			// a transaction begun on another of its connections would
			// commit apart from this one (beginOnce refuses it first).
			return nil, gorm.ErrInvalidTransaction
		}
		var err error
		if sqlDB, err = db.DB(); err != nil {
			return nil, fmt.Errorf("gormdb: the *gorm.DB has no *sql.DB to pin a connection of: %w", err)
		}
	}
	if set == "" && !guard {
		return nil, nil
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		if set == "" {
			return nil, err // as BEGIN on the pool would have failed
		}
		return nil, fmt.Errorf("gormdb: pin a connection: %w", err)
	}
	if set != "" {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			_ = conn.Close() // one SET changes all of its variables or none
			return nil, fmt.Errorf("gormdb: %s: %w", set, err)
		}
	}
	return &pinned{conn: conn, owned: true, restore: restore, timeout: timeout}, nil
}

// release sets the session back and gives the connection back; if the
// restore fails, the connection is discarded rather than pooled with the
// attempt's settings (Conn.Raw returning driver.ErrBadConn,
// docs/backends.md §10.6). It runs without the caller's cancellation,
// bounded.
func (p *pinned) release(ctx context.Context) {
	if p.restore != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
		defer cancel()
		if _, err := p.conn.ExecContext(rctx, p.restore); err != nil {
			_ = p.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	if p.owned {
		_ = p.conn.Close()
	}
}

// maxGuardWait bounds the question settle asks: a healthy server answers
// it at once, and so does a Galera node outside the primary component
// (docs/backends.md §7.5).
const maxGuardWait = time.Second

// settle gives the connection back once the transaction on it has ended,
// with endErr the error of BEGIN, COMMIT or ROLLBACK, and reports whether
// it closed a connection that was still open.
//
// A Galera node outside the primary component answers COMMIT and ROLLBACK
// with 1047 and keeps the transaction open (docs/backends.md §7.11);
// database/sql would pool that connection after any error but
// driver.ErrBadConn, and the next BEGIN on it would commit the leftover,
// work InTx judged not committed and may have run again. So on MySQL and
// MariaDB (guard), after an error, settle asks SELECT @@in_transaction (a
// failure path only) and discards the connection, which rolls the leftover
// back, unless the answer is 0. The caller's *sql.Conn is discarded too:
// its next BEGIN, a retry's included, would commit the leftover.
func (p *pinned) settle(ctx context.Context, endErr error, guard bool) (discarded bool) {
	if endErr == nil || !guard {
		p.release(ctx)
		return false
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(p.timeout, maxGuardWait))
	var open int64
	err := p.conn.QueryRowContext(qctx, "SELECT @@in_transaction").Scan(&open)
	cancel()
	if err == nil && open == 0 {
		p.release(ctx)
		return false
	}
	discarded = errors.Is(p.conn.Raw(func(any) error { return driver.ErrBadConn }), driver.ErrBadConn)
	if p.owned {
		_ = p.conn.Close()
	}
	return discarded
}

// txn is a GORM transaction as scopes.InTx sees it. scopes.InTx calls
// exactly one of Commit and Rollback on it, and with ResolveCommit maybe
// ResolveCommit after Commit.
type txn struct {
	db        *gorm.DB                // from Begin, with the transaction's own context
	fnDB      *gorm.DB                // db with the caller's context, for fn
	cancel    context.CancelCauseFunc // cancels the context the transaction was begun with
	pin       *pinned                 // nil when InTx holds no connection
	guard     bool                    // settle pin after a failed end (pinned.settle)
	restoreTO time.Duration
	res       *resolve.SQLTx // nil without ResolveCommit
	pool      txPool         // fnDB's pool on MySQL, MariaDB and SQLite; its Tx is nil elsewhere
	sqlite    bool           // the SQLite family: a COMMIT may find the transaction ended (sqldialect.TxEnded)
	// rolledBack says that rollbackEarly rolled the transaction back, and
	// endErr is the error to report for it when scopes.InTx rolls back.
	rolledBack bool
	endErr     error
}

// judge returns the error of fn, which returned err on t's transaction
// (tx.Commit or tx.Rollback on its handle, or on the *sql.Tx of SQLTx):
// Ambiguous where fn may have ended the transaction itself
// (sqldialect.EndedInFn; InTx's COMMIT finds the other cases:
// commitOutcome), else as sqldialect.Judge says. A transaction that is not
// a *sql.Tx (a connection pool's own, SQLTx) is taken as not ended.
func (t *txn) judge(ctx context.Context, b *beginner, err error) error {
	done := func() bool {
		tx, ok := SQLTx(t.db)
		return ok && sqldialect.TxDone(tx)
	}
	if e := sqldialect.EndedInFn(ctx, err, errEndedInFn, b.classify, b.commitRules, done); e != nil {
		return e
	}
	return sqldialect.Judge(ctx, b.family, "gormdb", err, t.pool.wentOn.Load(), func() error { return t.rollbackEarly(ctx) })
}

// errEndedInFn says that fn committed or rolled back InTx's transaction
// itself, so that what it applied is unknown to InTx.
var errEndedInFn = errors.New("gormdb: the transaction was committed or rolled back inside fn; leave that to InTx")

// watch gives the pool of fn's statements, when there is one (txPool), the
// state of the transaction, which scopes.InTx hands fn in ctx.
func (t *txn) watch(ctx context.Context) {
	if t.pool.Tx != nil {
		t.pool.state = txmark.StateOf(ctx)
		if t.pool.state != nil {
			// A savepoint step on MySQL or MariaDB sets session limits
			// only on the transaction InTx holds the connection of
			// (resolve.SavepointLimits).
			t.pool.state.SetSession(&t.pool)
		}
	}
}

// noDefaultTimeout is the transaction's context as GORM's Begin sees it
// when gorm.Config.DefaultTransactionTimeout is set: it reports a deadline
// too far off to matter, so that Begin adds no timer of its own, while its
// Done is the transaction's context's, which Commit and Rollback cancel.
// Nothing else reads that deadline: database/sql and the drivers never
// ask the context given to Begin for one, and the transaction's statements
// run with the context beginOnce sets back afterwards.
type noDefaultTimeout struct{ context.Context }

// farDeadline is the deadline noDefaultTimeout reports.
var farDeadline = time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC)

func (noDefaultTimeout) Deadline() (time.Time, bool) { return farDeadline, true }

// Commit commits with GORM's Commit and returns its .Error. database/sql
// commits with the context given to Begin (docs/backends.md §10.3), which
// carries no cancellation; ctx, which scopes.InTx bounds, cancels it when
// it ends. With ResolveCommit, the id's read or the marker's write runs
// first, in its own round trip.
func (t *txn) Commit(ctx context.Context) error {
	if t.res != nil {
		if err := t.res.BeforeCommit(ctx, rawConnPool(t.db)); err != nil {
			_ = t.Rollback(ctx)
			if errors.Is(err, sql.ErrTxDone) {
				// The statement's context was alive (database/sql checks
				// it first), and the transaction's is cancelled only
				// below: fn ended tx itself, and COMMIT not being sent
				// proves nothing (docs/backends.md §10.3).
				return fmt.Errorf("%w: %w", errEndedInFn, err)
			}
			return fmt.Errorf("gormdb: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { t.cancel(context.Cause(ctx)) })
	err := t.end((*gorm.DB).Commit)
	stop()
	t.cancel(nil)
	if t.sqlite && sqldialect.NoTransaction(err) {
		err = sqldialect.TxEnded("gormdb", err)
	}
	if err == nil && t.res != nil {
		if t.pin != nil {
			_, _ = t.res.AfterCommit(ctx, t.pin.conn) // a failed cleanup fails nothing
		} else if sqlDB, derr := t.db.DB(); derr == nil {
			_, _ = t.res.AfterCommit(ctx, sqlDB)
		}
	}
	if t.release(ctx, err) {
		err = fmt.Errorf("%w (%w)", err, errConnDiscarded)
	}
	return err
}

// errConnDiscarded is joined to the error of a COMMIT or ROLLBACK that
// failed on a *sql.Conn of the caller's (db.Connection's), which InTx then
// closed because the transaction may have stayed open on it
// (docs/backends.md §7.11). A COMMIT error carrying it is not retried,
// since no retry can begin on that connection, unless its outcome is
// unknown (commitOutcome).
var errConnDiscarded = errors.New("gormdb: the *sql.Conn was closed: the transaction may have stayed open on it")

// ResolveCommit implements scopes.CommitResolver: see [ResolveCommit].
func (t *txn) ResolveCommit(ctx context.Context, _ error) (scopes.Resolution, error) {
	if t.res == nil {
		return scopes.Unresolved, errors.New("gormdb: ResolveCommit was not given")
	}
	sqlDB, err := t.db.DB()
	if err != nil {
		return scopes.Unresolved, fmt.Errorf("gormdb: ResolveCommit: no *sql.DB for another connection: %w", err)
	}
	r, err := t.res.Resolve(ctx, sqlDB)
	if err != nil {
		err = fmt.Errorf("gormdb: %w", err)
	}
	return r, err
}

// rawConnPool returns the connection pool of tx's statement, below GORM's
// prepared-statement cache: the statements ResolveCommit runs carry a new
// token each time, and those setting an attempt's limits values derived
// from the time left, and must not fill the cache.
func rawConnPool(tx *gorm.DB) resolve.SQLConn {
	pool := tx.Statement.ConnPool
	if p, ok := pool.(*gorm.PreparedStmtTX); ok && p.Tx != nil {
		return p.Tx
	}
	return pool
}

// Rollback rolls back with GORM's Rollback and returns its .Error, waiting
// no longer than ctx allows (scopes bounds it by the rollback timeout).
// database/sql's Rollback takes no context, so it runs on a goroutine of
// its own; when ctx ends first, Rollback cancels the context the
// transaction was begun with, which pgx's driver reads during ROLLBACK (it
// closes the connection, §2.7), and returns ctx's cause without waiting
// further. sql.ErrTxDone is not an error here: database/sql has already
// rolled the transaction back, because the context given to Begin ended.
//
// When ctx ends first, the connection is settled (pinned.settle) by that
// goroutine once ROLLBACK returns, as after a failed ROLLBACK: the
// connection cannot be asked or closed while ROLLBACK still holds it.
//
// After rollbackEarly, Rollback returns its outcome and sends nothing.
func (t *txn) Rollback(ctx context.Context) error {
	if t.rolledBack {
		return t.endErr
	}
	done := make(chan error)
	abandoned := make(chan struct{})
	p, guard := t.pin, t.guard
	t.pin = nil
	go func() {
		err := t.end((*gorm.DB).Rollback)
		select {
		case done <- err:
		case <-abandoned:
			if p != nil {
				p.settle(ctx, errors.New("gormdb: ROLLBACK did not finish in time"), guard)
			}
		}
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		close(abandoned)
		t.cancel(context.Cause(ctx))
		t.cancel(nil)
		return fmt.Errorf("gormdb: ROLLBACK did not finish in time: %w", context.Cause(ctx))
	}
	t.cancel(nil)
	if errors.Is(err, sql.ErrTxDone) {
		// database/sql rolled back: its ROLLBACK's error, if any, is not
		// reported; the guard asks the connection all the same.
		t.pin = p
		t.release(ctx, err)
		return nil
	}
	t.pin = p
	if t.release(ctx, err) {
		err = fmt.Errorf("%w (%w)", err, errConnDiscarded)
	}
	return err
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

// release gives back the held connection, if any, once, after the
// transaction ended with endErr (nil when it ended well), and reports
// whether it closed a *sql.Conn of the caller's (see pinned.settle).
func (t *txn) release(ctx context.Context, endErr error) (callerConnLost bool) {
	if t.pin == nil {
		return false
	}
	p := t.pin
	t.pin = nil
	return p.settle(ctx, endErr, t.guard) && !p.owned
}

// end runs Commit or Rollback on a new session of the transaction whose
// Error is cleared, so that .Error is the outcome of that statement alone:
// GORM adds the outcome to the handle's Error, chaining it after any error
// fn may have added there ("%v; %w", docs/backends.md §9.4), and a
// successful COMMIT would then look failed.
func (t *txn) end(f func(*gorm.DB) *gorm.DB) error {
	s := t.db.Session(&gorm.Session{NewDB: true})
	s.Error = nil
	return f(s).Error
}

// setConfig returns the call that sets the PostgreSQL parameter name to d,
// in whole milliseconds, for the current transaction.
func setConfig(name string, d time.Duration) string {
	return fmt.Sprintf("set_config('%s', '%dms', true)", name, d.Milliseconds())
}
