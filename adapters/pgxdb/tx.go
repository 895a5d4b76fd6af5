package pgxdb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Beginner begins a real transaction with options: *pgxpool.Pool,
// *pgxpool.Conn and *pgx.Conn satisfy it.
//
// pgx.Tx does not, on purpose. Its Begin has no options and opens a
// "pseudo nested transaction", a savepoint (docs/backends.md §2.10), whose
// Commit is a RELEASE. A retry of such a nested InTx could not heal what
// retries are for: a serialization failure or a deadlock dooms the
// enclosing transaction, and every later attempt would fail with 25P02
// (§1.1). For a retried step inside a transaction you own, use
// [InSavepoint], which lets transaction-level failures out to the retry
// around your transaction.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs, begun on db: [scopes.InTx] with PostgreSQL's rules wired in,
// so the operation needs no further setup to be retried correctly:
//
//	transfer := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) { … })
//	id, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// Each attempt runs
//
//	BEGIN [ISOLATION LEVEL …] [READ ONLY] [DEFERRABLE]; SET LOCAL …; SELECT set_config(…)
//	                                             (SET LOCAL with LockTimeout, StatementTimeout;
//	                                              set_config for the limits a deadline on ctx
//	                                              derives: one round trip)
//	SAVEPOINT cockroach_restart                  (with CockroachRestart; SET LOCAL then here)
//	fn
//	RELEASE SAVEPOINT cockroach_restart          (with CockroachRestart)
//	SELECT pg_current_xact_id_if_assigned() …    (with ResolveCommit)
//	COMMIT                                       (ROLLBACK if anything failed)
//
// Errors are classified by [Classifier], with any [ClassifyBy] classifiers
// asked first, so a [dbop.WithRetry] around the operation retries the whole
// transaction, fn's reads included, on serialization failures (40001),
// deadlocks (40P01), lock and statement timeouts and lost connections, and
// gives up at once on errors that would repeat (docs/backends.md §1.5,
// §1.6). A COMMIT error is judged by what it says about the transaction:
// an outcome that is unknown is an [*scopes.AmbiguousCommitError] with the
// verdict [dbop.Ambiguous], retried only when the retry is
// [dbop.Idempotent]; an error that proves nothing was committed is
// classified like any other (see "Errors and verdicts" in the package
// documentation). errors.As reaches the driver's error (a
// *pgconn.PgError, say) on everything InTx returns.
//
// The per-attempt settings are SET LOCAL, which ends with the transaction
// (§1.4), so nothing is left behind on a pooled connection. With a
// deadline on ctx, statement_timeout and lock_timeout are lowered to the
// time left less a margin (see "Per-attempt timeouts" in the package
// documentation), and COMMIT runs without ctx's cancellation, bounded by
// [RollbackTimeout].
//
// fn receives a context marked [dbop.WithinTx]: run the statements and any
// savepoint steps with it. fn must not call tx.Commit or tx.Rollback: InTx
// ends the transaction. If fn commits it, whatever fn returns then, the
// outcome is an [*scopes.AmbiguousCommitError] with the verdict
// [dbop.Ambiguous], never retried but by an Idempotent retry; if fn rolls
// it back, fn's error is returned, or, for a nil, an error no retry acts
// on. A COMMIT or ROLLBACK fn sends as a statement (tx.Exec(ctx, "COMMIT"),
// the same on tx.Conn(), or a transaction begun on tx.Conn(), whose COMMIT
// ends this one, docs/backends.md §1.21) is found when fn returns (the
// connection is outside any transaction) and is Ambiguous too, whichever
// it was: the statements after it ran in autocommit. fn must return the
// error of a failed statement rather than go on: a failed statement aborts
// a PostgreSQL transaction, and a COMMIT after it only rolls back
// (pgx.ErrTxCommitRollback, which is not retried, §1.1, §1.2). To go on after an error, run the statement in
// [InSavepoint]. A retry runs fn again: build a pgx.CopyFromSource, an
// io.Reader or a *pgx.Batch inside fn, not once outside it (see "One-shot
// inputs" in the package documentation).
//
// db must not be inside a transaction: on a *pgx.Conn or a *pgxpool.Conn
// inside one (a Tx the caller began on it), BEGIN fails with a
// NotRetryable error and nothing is sent. Use [InSavepoint] there.
//
// The operation is safe for concurrent use when db is a pool; a *pgx.Conn
// serves one goroutine at a time. InTx panics if db or fn is nil or an
// option is nil.
func InTx[T any](db Beginner, fn func(ctx context.Context, tx pgx.Tx) (T, error), opts ...TxOption) dbop.Op[T] {
	return inTx("InTx", db, fn, opts)
}

// Do is [InTx] for work with no result: fn returns only an error, and the
// operation's value is struct{}. It panics as InTx does.
func Do(db Beginner, fn func(ctx context.Context, tx pgx.Tx) error, opts ...TxOption) dbop.Op[struct{}] {
	if fn == nil {
		return inTx[struct{}]("Do", db, nil, opts)
	}
	return inTx("Do", db, func(ctx context.Context, tx pgx.Tx) (struct{}, error) { return struct{}{}, fn(ctx, tx) }, opts)
}

func inTx[T any](caller string, db Beginner, fn func(context.Context, pgx.Tx) (T, error), opts []TxOption) dbop.Op[T] {
	if isNil(db) {
		panic("pgxdb: " + caller + ": the Beginner is nil" + nilType(db))
	}
	if fn == nil {
		panic("pgxdb: " + caller + ": the function to run in the transaction is nil")
	}
	c := newTxConfig(caller, opts)
	c.shareCheck(caller)
	var res *resolver
	if c.resolve {
		res = newResolver(caller, db, c)
	}
	var locks hotlock.State // what the server said of the HotSpot's locks (coordinated)
	begin := func(ctx context.Context, o scopes.BeginOptions) (*txn, error) {
		if c.restart != nil {
			return c.begin(ctx, db, o, res, "")
		}
		return c.coordinated(ctx, db, o, res, &locks)
	}
	run := func(ctx context.Context, t *txn) (T, error) { return fn(ctx, t.forFn()) }
	if c.restart != nil {
		run = func(ctx context.Context, t *txn) (T, error) {
			return runRestarts(ctx, c, t.forFn(), t.setSQL, fn)
		}
	}
	scopeOpts := []scopes.TxOption{
		scopes.ClassifyBy(c.classifier),
		scopes.CommitOutcome(c.commitVerdict),
		scopes.RollbackTimeout(c.rollbackTimeout),
	}
	if res != nil {
		scopeOpts = append(scopeOpts, scopes.ResolveCommit())
	}
	if c.share {
		return sharedInTx(db, fn, c, scopeOpts)
	}
	return scopes.InTx(begin, run, scopeOpts...)
}

// begin begins one attempt's transaction with its per-attempt settings
// (attemptSettings): in the BEGIN round trip itself, or, with
// CockroachRestart, left in the txn for the restart scope to run after its
// savepoint. A lock statement that is not "" (coordinated) travels in the
// same round trip, after the SET LOCAL statements, which take no snapshot
// and bound its wait. The SELECT that sets the limits derived from a
// deadline goes before it too, so that the server bounds the wait by them
// and ends it with 57014 or 55P03, keeping the connection (docs/backends.md
// §1.7, §1.18), unless the transaction is REPEATABLE READ or SERIALIZABLE
// (limitsAfterLock): a SELECT takes such a transaction's snapshot, and one
// before the LOCK would fix it before the wait for the lock, so that the
// attempt's writes to the rows the holder wrote would fail with 40001
// (§1.14). There it follows the LOCK, whose wait is then bounded by the
// SET LOCAL statements (the limits given, lowered to the derived ones
// where those are smaller), the limits in force and ctx's deadline, not by
// the limits the SELECT derives from it: a deadline that passes during the
// wait ends it on the client, and pgx closes the connection (closedConn).
// The SELECT only lowers what is in force (serverlimit.PostgresLeast), so
// it may follow a HotSpot's bound at the end of lock
// (hotlock.Scope.BeginLocked).
func (c *config) begin(ctx context.Context, db Beginner, o scopes.BeginOptions, res *resolver, lock string) (*txn, error) {
	set, limits := c.attemptSettings(ctx)
	l := hotlock.LimitsFor(set, limits, c.limitsAfterLock())
	return c.open(ctx, db, o, res, serverlimit.Join(l.Before, lock, l.After))
}

// beginForLock begins one attempt's transaction for the lock table's LOCK
// to be sent in a round trip of its own (a Beginner other than pgx's own
// handles, hotlock.Scope.BeginForLock) in a REPEATABLE READ or
// SERIALIZABLE transaction (limitsAfterLock): as begin without a lock, but
// the SELECT of the limits derived from a deadline is left out and
// returned, to follow the LOCK in its round trip.
func (c *config) beginForLock(ctx context.Context, db Beginner, o scopes.BeginOptions, res *resolver) (*txn, hotlock.Limits, error) {
	set, limits := c.attemptSettings(ctx)
	t, err := c.open(ctx, db, o, res, set)
	return t, hotlock.Limits{After: limits}, err
}

// limitsAfterLock reports whether the SELECT of the limits derived from a
// deadline follows a HotSpot's LOCK rather than preceding it: when the
// transaction is REPEATABLE READ or SERIALIZABLE as far as the options
// say (Isolation), whose snapshot a SELECT would take before the wait
// (docs/backends.md §1.14). With no Isolation the server's default is
// taken to be READ COMMITTED: on a server whose default is another, give
// Isolation for the LOCK to wait in place under a deadline.
func (c *config) limitsAfterLock() bool {
	switch isoLevel(c.txOptions.IsoLevel) {
	case pgx.RepeatableRead, pgx.Serializable:
		return true
	}
	return false
}

// isoLevel returns level, an isolation level given with Isolation, spelt
// as pgx spells its constants: lower case, one space between words.
// PostgreSQL reads the words of BEGIN ISOLATION LEVEL in any case and
// spacing, so Isolation("SERIALIZABLE") begins the transactions
// pgx.Serializable begins, and every decision taken on the level given
// (limitsAfterLock, the resolver's) must compare it so.
func isoLevel(level pgx.TxIsoLevel) pgx.TxIsoLevel {
	return pgx.TxIsoLevel(strings.Join(strings.Fields(strings.ToLower(string(level))), " "))
}

// open begins a transaction on db with setSQL, the statements that begin
// it ("" for none): in the BEGIN round trip, or, with CockroachRestart,
// left in the txn.
func (c *config) open(ctx context.Context, db Beginner, o scopes.BeginOptions, res *resolver, setSQL string) (*txn, error) {
	txOpts := c.txOptions
	if o.ReadOnly {
		txOpts.AccessMode = pgx.ReadOnly
	}
	if c.restart == nil && setSQL != "" {
		txOpts.BeginQuery = beginSQL(txOpts, setSQL)
		setSQL = ""
	}
	if err := inCallersTx(db); err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, txOpts)
	if err != nil {
		return nil, closedConn(db, err)
	}
	return &txn{Tx: tx, setSQL: setSQL, res: res, readOnly: txOpts.AccessMode == pgx.ReadOnly}, nil
}

// inCallersTx returns a NotRetryable error when db is one connection (a
// *pgx.Conn, or a *pgxpool.Conn the caller acquired) inside a transaction
// block, nil otherwise. pgx sends BEGIN whatever the connection's state
// (docs/backends.md §2.18), and the server ignores a BEGIN inside a block
// (§1.21): the transaction would be the caller's, whose earlier work the
// attempt's ROLLBACK would undo and its COMMIT commit, behind the back of
// the code that began it. Reading the state costs nothing: pgx keeps what
// the server last reported.
func inCallersTx(db Beginner) error {
	var conn *pgx.Conn
	switch c := db.(type) {
	case *pgx.Conn:
		conn = c
	case *pgxpool.Conn:
		conn = c.Conn()
	}
	if conn == nil || conn.IsClosed() {
		return nil
	}
	if s := conn.PgConn().TxStatus(); s != 'I' {
		return dbop.Classify(fmt.Errorf("pgxdb: BEGIN on a %T inside a transaction (status %q): PostgreSQL would begin nothing, "+
			"and this transaction's COMMIT or ROLLBACK would end the one the connection is in; "+
			"use InSavepoint on that transaction, or pass the pool", db, s), dbop.NotRetryable)
	}
	return nil
}

// closedConn returns err, the error of BEGIN on db, as NotRetryable when db
// is one connection (a *pgx.Conn, or a *pgxpool.Conn acquired by the
// caller) that is closed: no attempt can begin on it again, and retrying
// would only repeat the error. When ctx's deadline or cancel ended the
// BEGIN round trip (a HotSpot's LOCK waiting in it, begin), pgx closed the
// connection for that reason, and the error says so.
func closedConn(db Beginner, err error) error {
	var conn *pgx.Conn
	switch c := db.(type) {
	case *pgx.Conn:
		conn = c
	case *pgxpool.Conn:
		conn = c.Conn()
	}
	if conn == nil || !conn.IsClosed() {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return dbop.Classify(fmt.Errorf("pgxdb: the context's deadline or cancel ended the BEGIN round trip on a %T (the wait for a HotSpot's lock, if any) "+
			"and pgx closed the connection (no attempt can begin on it again: pass the pool, or acquire a new connection): %w", db, err), dbop.NotRetryable)
	}
	return dbop.Classify(fmt.Errorf("pgxdb: BEGIN on a %T that is closed (no attempt can begin on it: pass the pool, or acquire a new connection): %w", db, err), dbop.NotRetryable)
}

// txn is the transaction InTx hands to scopes.InTx: a pgx.Tx whose Commit
// says more than pgx does when COMMIT turned into ROLLBACK, and which, with
// ResolveCommit, reads the transaction's id before COMMIT and is a
// scopes.CommitResolver.
type txn struct {
	pgx.Tx
	setSQL   string    // the settings the restart scope runs; "" without CockroachRestart
	res      *resolver // nil without ResolveCommit
	readOnly bool      // begun READ ONLY: it cannot have written
	pg       resolve.PGTx
	idRead   bool // pg was read before COMMIT
	failed   bool // the read found the transaction failed (25P02): COMMIT went as without ResolveCommit
	fnEnded  bool // fn ended the transaction itself (fnTx)
	fnCommit bool // and its COMMIT may have committed
	fn       fnTx // what fn is handed (forFn), kept here: no allocation of its own
}

// forFn returns the transaction fn is handed: t's pgx.Tx, whose Commit and
// Rollback record on t that fn ended it.
func (t *txn) forFn() pgx.Tx {
	t.fn = fnTx{Tx: t.Tx, t: t}
	return &t.fn
}

// fnTx is the transaction InTx hands fn: the attempt's pgx.Tx, whose
// Commit and Rollback record that fn ended the transaction itself, which
// it must not do, so that InTx can tell what became of it (endedInFn).
// Everything else is the pgx.Tx's own.
type fnTx struct {
	pgx.Tx
	t *txn
}

// Commit commits, recording that fn did so on an open transaction: unless
// the server answered ROLLBACK, the work may have been committed.
func (f *fnTx) Commit(ctx context.Context) error {
	err := f.Tx.Commit(ctx)
	if !errors.Is(err, pgx.ErrTxClosed) { // it was open: fn ended it
		f.t.fnEnded = true
		if !errors.Is(err, pgx.ErrTxCommitRollback) {
			f.t.fnCommit = true
		}
	}
	return err
}

// Rollback rolls back, recording that fn did so on an open transaction.
func (f *fnTx) Rollback(ctx context.Context) error {
	err := f.Tx.Rollback(ctx)
	if !errors.Is(err, pgx.ErrTxClosed) {
		f.t.fnEnded = true
	}
	return err
}

// Rollback rolls back. pgx answers a Rollback of a transaction already
// committed or rolled back with pgx.ErrTxClosed (docs/backends.md §2.11),
// and InTx never rolls back after its own Commit: fn ended the
// transaction itself (endedInFn). When fn only rolled it back, it is
// rolled back, as InTx wanted: nil, and fn's error keeps its verdict.
func (t *txn) Rollback(ctx context.Context) error {
	if err := t.endedByStatement(ctx); err != nil {
		return err
	}
	err := t.Tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		if err := t.endedInFn(err); !errors.Is(err, errRolledBackInFn) {
			return err
		}
		return nil
	}
	return err
}

// errRolledBackInFn is matched by the error InTx returns when fn rolled
// back the transaction itself and then returned nil: nothing was committed.
var errRolledBackInFn = errors.New("pgxdb: fn ended the transaction itself (leave that to InTx) with a ROLLBACK, or a COMMIT the server answered with ROLLBACK, so nothing was committed")

// errEndedByStatement is the error of InTx's COMMIT or ROLLBACK when fn
// ended the transaction with a statement pgx's Tx does not see.
var errEndedByStatement = errors.New("pgxdb: fn ended the transaction itself (leave that to InTx) with a statement: " +
	"a COMMIT or ROLLBACK sent with tx.Exec or on tx.Conn(), or a transaction of its own begun on tx.Conn(); " +
	"the connection was outside any transaction when fn returned, so whether its work was committed is unknown")

// endedByStatement reports whether fn ended the transaction with a
// statement (tx.Exec(ctx, "COMMIT"), the same on tx.Conn(), or a
// pgx.BeginFunc on tx.Conn(), whose BEGIN the server ignores inside the
// block and whose COMMIT ends it, docs/backends.md §1.21), which pgx's Tx
// does not see: it would send COMMIT or ROLLBACK, which the server answers
// with a warning and success, so that InTx would report committed work
// undone by fn's ROLLBACK, and a retry after fn's error would apply fn's
// own COMMIT again. The connection then reports itself outside any
// transaction block, as the server said in its last answer (TxStatus
// 'I', §2.8; CockroachDB reports 'T' after CockroachRestart's RELEASE,
// §6.7): reading it sends nothing. What fn ran may have been
// committed: it records that fn ended the transaction as with a COMMIT,
// ends pgx's Tx (its ROLLBACK answers a warning, §1.21, and a pool's
// connection goes back), and returns the *scopes.AmbiguousCommitError
// InTx's COMMIT or ROLLBACK returns; nil when fn did not.
func (t *txn) endedByStatement(ctx context.Context) error {
	if t.fnEnded {
		return nil
	}
	conn := t.Tx.Conn()
	if conn == nil || conn.PgConn().TxStatus() != 'I' {
		return nil
	}
	t.fnEnded, t.fnCommit = true, true
	_ = t.Tx.Rollback(ctx)
	return dbop.Classify(&scopes.AmbiguousCommitError{Err: errEndedByStatement}, dbop.Ambiguous)
}

// endedInFn returns err, pgx.ErrTxClosed from InTx's Commit or Rollback
// (or the statement ResolveCommit runs before COMMIT), as what it means
// there: fn ended the transaction itself. When fn rolled it back, or its
// own COMMIT was answered ROLLBACK, nothing was committed: the error
// matches errRolledBackInFn, which commitOutcome calls NotRetryable (each
// attempt would do the same). Otherwise — fn's COMMIT, or an end InTx did
// not see (fnTx), such as fn's own type assertion to the driver's Tx — the
// work may have been committed: an *scopes.AmbiguousCommitError with the
// verdict dbop.Ambiguous, retried only by an Idempotent retry and replaced
// by no fallback without dbop.AcceptAmbiguous; scopes.InTx keeps that
// verdict when it comes from the rollback after fn failed.
func (t *txn) endedInFn(err error) error {
	if t.fnEnded && !t.fnCommit {
		return fmt.Errorf("%w: %w", errRolledBackInFn, err)
	}
	return dbop.Classify(&scopes.AmbiguousCommitError{
		Err: fmt.Errorf("pgxdb: fn committed the transaction itself (leave that to InTx), so whether its work was committed is unknown: %w", err),
	}, dbop.Ambiguous)
}

// Commit commits, telling a COMMIT that could not be sent from one whose
// answer was lost (see commitOutcome). pgx reports a COMMIT answered by
// ROLLBACK with the bare pgx.ErrTxCommitRollback; the cause is nearly
// always an error fn ignored, and the error says so. With ResolveCommit it
// first reads the transaction's id (see resolver).
//
// A connection still busy when fn has returned holds rows or a batch fn
// left open (tx.Query's pgx.Rows not closed, tx.SendBatch's
// pgx.BatchResults not closed): pgx refuses to send COMMIT on it ("conn
// busy", which is NotRetryable: each attempt would leave them open again)
// and closes the connection, so nothing is committed. The error names the
// mistake. IsBusy reads a flag of the connection: nothing is sent.
func (t *txn) Commit(ctx context.Context) error {
	if t.fnEnded {
		// pgx answers ErrTxClosed, sending nothing. The connection is not
		// this transaction's any more: a *pgxpool.Tx gave it back to the
		// pool, where another goroutine may be using it.
		return t.endedInFn(t.Tx.Commit(ctx))
	}
	if err := t.endedByStatement(ctx); err != nil {
		return err
	}
	conn := t.Tx.Conn()
	busy := conn != nil && conn.PgConn().IsBusy()
	if t.res != nil && !t.readOnly {
		if err := t.readID(ctx); err != nil {
			return leftOpen(busy, err)
		}
	}
	err := sendCommit(t.Tx, func() error { return t.Tx.Commit(ctx) })
	if errors.Is(err, pgx.ErrTxClosed) {
		return t.endedInFn(err)
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return fmt.Errorf("pgxdb: the transaction had failed before COMMIT (a statement's error was not returned by fn): %w", err)
	}
	return leftOpen(busy, err)
}

// leftOpen returns err, the error of a statement Commit sent, saying that
// fn left rows or a batch open when the connection was busy before it and
// err says that nothing was sent (pgconn.SafeToRetry: pgx's "conn busy").
func leftOpen(busy bool, err error) error {
	if !busy || err == nil || !pgconn.SafeToRetry(err) {
		return err
	}
	return fmt.Errorf("pgxdb: COMMIT was not sent: fn returned with rows or a batch left open on the transaction's connection "+
		"(close pgx.Rows and pgx.BatchResults before returning): %w", err)
}
