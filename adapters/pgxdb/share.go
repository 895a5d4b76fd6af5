package pgxdb

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// shareMax is the most attempts one shared transaction carries: a bound on
// how long the first waits for the COMMIT, and on the subtransactions
// PostgreSQL keeps in its per-backend cache (64) without spilling.
const shareMax = 32

// ShareCommits makes the attempts of the operation that are ready at the
// same time, in the process, run in one transaction and commit together,
// each in a savepoint of its own: one COMMIT, and one flush of the
// write-ahead log, for several attempts. It is the answer to hot rows on
// PostgreSQL, which keeps a transaction's row locks until its commit
// record is flushed (docs/backends.md §1.20): transactions that write the
// same rows then commit one flush after another, however they are
// ordered, and sixteen workers get no more done than one. Sharing the
// flush gets more done than one worker does (docs/contention.md), with no
// number to choose:
//
//	transfer := pgxdb.Do(pool, fn, pgxdb.Isolation(pgx.Serializable), pgxdb.ShareCommits())
//	err := transfer.With(retried).Run(ctx)
//
// The attempts that share are those of every operation built with the
// same ShareCommits call (the same line of code, whatever closure each
// call builds around it), on the same Beginner, with the same options.
// They take turns, oldest first: while one runs fn, the others wait for
// the transaction; a newcomer joins the one in progress, and the last of
// them, or the 32nd, commits it. Under REPEATABLE READ or SERIALIZABLE
// (Isolation) an attempt joins only a transaction begun after it came,
// whose snapshot is not older than the work committed before it (its
// caller's last transaction): the attempts that wait while one
// transaction runs share the next. Each attempt's work stands or falls on
// its own until the COMMIT: one whose fn fails is rolled back to its
// savepoint, and the others' work stays. Across processes, each shared
// transaction locks one of the HotSpot's lock tables in its BEGIN round
// trip ([CreateHotSpotLocks]; the table is chosen by the ShareCommits
// call's line, as a HotSpot's is), so that processes take turns a shared
// transaction at a time instead of failing each other's; without the
// tables they go on uncoordinated.
//
// What an attempt sees of sharing:
//
//   - Its outcome is the shared COMMIT's: an answer lost in flight makes
//     every attempt in it [dbop.Ambiguous]. A COMMIT refused for a reason
//     that a retry cannot mend (a deferred constraint, say) cannot tell
//     whose work caused it: every attempt in it is retried
//     ([dbop.RetryTransaction]), and the next ones run alone, so that the
//     one at fault meets its error alone.
//   - A serialization failure or deadlock, or any failed statement, ends
//     the transaction's intake: it commits what the others did, and the
//     attempt that failed is retried in the next.
//   - fn sees the work of the attempts before it in the transaction, which
//     commits or not with its own, and the transaction's start time
//     (now(), transaction_timestamp()) and id are theirs too. The limits a
//     deadline on ctx derives are set for each attempt (after its
//     SAVEPOINT), and, under READ COMMITTED, for the wait of the BEGIN that
//     opens a transaction for its lock table; LockTimeout and
//     StatementTimeout for the transaction.
//   - fn must not change the transaction's settings (SET LOCAL,
//     set_config(…, true), SET CONSTRAINTS): they would hold for the
//     attempts after it. It must not end the transaction: tx.Commit and
//     tx.Rollback return an error and end nothing; a COMMIT or ROLLBACK
//     sent as a statement ends the others' too, and every attempt in the
//     transaction is then Ambiguous (after COMMIT AND CHAIN, when fn
//     returns an error or a statement failed after it).
//   - An operation that shares commits, run inside the function of another
//     that shares the same transactions (directly, or through an
//     operation of another group), would wait for itself: it fails with
//     an error that says so. One of another group, run inside an
//     attempt's function, runs alone, in a transaction of its own without
//     the lock table: waiting for its group's turn or table could wait for
//     an attempt that waits for this one.
//
// On a pool the next shared transaction begins on another connection while
// the last one commits; on one connection (a *pgx.Conn, a *pgxpool.Conn) it
// begins once the COMMIT is answered, so goroutines that share commits may
// share the connection.
//
// Give the operation a retry (the README's WithRetry): an attempt that a
// shared transaction's failure takes with it is retried like a
// serialization failure. It needs no [dbop.HotSpot]; one left in the
// pipeline finds no conflicts among shared attempts and lets them through,
// at a small cost (docs/contention.md).
//
// ShareCommits cannot be combined with [ReadOnly] (a read-only COMMIT
// flushes nothing), [CockroachRestart] or [ResolveCommit]; InTx and Do
// panic when it is.
func ShareCommits() TxOption {
	key := hotlock.CallSiteKey(1, "pgxdb.ShareCommits")
	return txOnly(func(c *config) { c.share, c.shareKey = true, key })
}

// shareGroupKey names the attempts that share transactions.
type shareGroupKey struct {
	db   Beginner
	key  int64
	opts pgx.TxOptions
	set  string
}

// shareGroups holds every group of the process: one per ShareCommits call,
// Beginner and options, never removed (a few words each).
var shareGroups sync.Map // shareGroupKey → *shareGroup

// shareGroup is the turn-taking of one group's attempts.
type shareGroup struct {
	mu    sync.Mutex
	held  bool          // an attempt has the turn
	queue []shareWaiter // attempts waiting for it, oldest first
	cur   *sharedTx     // the transaction in progress, nil between them
	solo  int           // transactions still to run with one attempt each
	// opened counts the transactions begun, each numbered by it (seq).
	opened uint64
	// single is true unless the Beginner is a *pgxpool.Pool: one
	// connection (a *pgx.Conn, a *pgxpool.Conn), or a Beginner of the
	// caller's, which may be one. The next attempt may begin only once the
	// transaction before has ended.
	single bool
	// tables is what the first coordinated BEGIN found of the lock
	// tables: 0 unknown, 1 present, 2 missing (42P01) or not allowed
	// (42501).
	tables atomic.Int32
}

func newShareGroup(db Beginner) *shareGroup {
	_, pooled := db.(*pgxpool.Pool)
	return &shareGroup{single: !pooled}
}

// shareWaiter is an attempt waiting for its group's turn.
type shareWaiter struct {
	turn  chan struct{} // closed to hand it the turn
	epoch uint64        // the group's transactions begun when it came (shareGroup.opened)
}

// sharedTx is one shared transaction.
type sharedTx struct {
	tx      pgx.Tx
	seq     uint64        // its number among the group's transactions (shareGroup.opened)
	n       int           // attempts that joined it
	waiting int           // attempts whose work waits for its COMMIT
	closing bool          // no attempt joins it any more
	broken  error         // it cannot go on: it is rolled back
	ended   bool          // fn ended it with a statement: every attempt is Ambiguous
	limits  string        // the statements that restore the limits in force at BEGIN; "" until read
	done    chan struct{} // closed once err is set
	err     error         // the outcome for the attempts that wait
}

// sharedHeld marks the context of a shared attempt's fn with its group,
// and those of the attempts whose fn runs it (a *heldGroup).
type sharedHeld struct{}

// heldGroup is a group whose turn an attempt's fn runs in, and the groups
// of the attempts around it.
type heldGroup struct {
	g     *shareGroup
	outer *heldGroup
}

// has reports whether h or an attempt around it holds g's turn.
func (h *heldGroup) has(g *shareGroup) bool {
	for ; h != nil; h = h.outer {
		if h.g == g {
			return true
		}
	}
	return false
}

// errSharedEnd is what a shared attempt's fn gets from tx.Commit and
// tx.Rollback.
var errSharedEnd = errors.New("pgxdb: fn may not end a transaction it shares with other attempts (ShareCommits): " +
	"return nil to commit, an error to roll back its work")

// errSharedEndedByStatement is the outcome of every attempt in a shared
// transaction that an attempt's fn ended with a statement.
var errSharedEndedByStatement = errors.New("pgxdb: an attempt's fn ended the shared transaction (ShareCommits) with a statement " +
	"(a COMMIT or ROLLBACK sent with tx.Exec or on tx.Conn()): whether the work of the attempts in it was committed is unknown")

// sharedRollbackError is the outcome of an attempt whose work a shared
// transaction did not commit for a reason that need not be its own: nothing
// of it was committed, and it is retried (commitOutcome).
type sharedRollbackError struct{ err error }

func (e *sharedRollbackError) Error() string {
	return "pgxdb: the shared transaction (ShareCommits) was rolled back, this attempt's work with it: " + e.err.Error()
}
func (e *sharedRollbackError) Unwrap() error { return e.err }

// shareCheck panics when c shares commits with an option it cannot serve.
func (c *config) shareCheck(caller string) {
	switch {
	case !c.share:
	case c.txOptions.AccessMode == pgx.ReadOnly:
		panic("pgxdb: " + caller + ": ShareCommits with ReadOnly: a read-only transaction's COMMIT flushes nothing to share")
	case c.restart != nil:
		panic("pgxdb: " + caller + ": ShareCommits with CockroachRestart: the restart savepoint cannot be shared")
	case c.resolve:
		panic("pgxdb: " + caller + ": ShareCommits with ResolveCommit is not supported")
	}
}

// sharedInTx is inTx for an operation built with ShareCommits.
func sharedInTx[T any](db Beginner, fn func(context.Context, pgx.Tx) (T, error), c *config, scopeOpts []scopes.TxOption) dbop.Op[T] {
	gk := shareGroupKey{db: db, key: c.shareKey, opts: c.txOptions, set: c.setSQL}
	var g *shareGroup
	if mapKeyable(db) {
		v, ok := shareGroups.Load(gk)
		if !ok {
			v, _ = shareGroups.LoadOrStore(gk, newShareGroup(db))
		}
		g = v.(*shareGroup)
	} else {
		g = newShareGroup(db) // a Beginner no map can hold: the operation's own
	}
	begin := func(ctx context.Context, o scopes.BeginOptions) (*member, error) {
		if o.ReadOnly {
			return nil, dbop.Classify(errors.New("pgxdb: a ShareCommits operation run as read-only (a Then's read-only step, say): "+
				"a read-only transaction's COMMIT flushes nothing to share"), dbop.NotRetryable)
		}
		held, _ := ctx.Value(sharedHeld{}).(*heldGroup)
		if held.has(g) {
			return nil, dbop.Classify(errors.New("pgxdb: an operation that shares commits (ShareCommits) ran inside the function of an attempt "+
				"that shares the same transactions: it would wait for that attempt's turn to end, for ever; run it on its own context, or without ShareCommits"), dbop.NotRetryable)
		}
		if held != nil {
			// Inside an attempt of another group, which holds that
			// group's turn and its lock table: waiting for this group's
			// turn, or for its lock table, could wait for an attempt that
			// waits for this one (this group's attempt running the
			// other's operation, or the two tables one). It runs alone,
			// uncoordinated, as a HotSpot lets through the attempts inside
			// one of its own.
			alone := newShareGroup(db)
			alone.tables.Store(2)
			return alone.join(ctx, c, db)
		}
		return g.join(ctx, c, db)
	}
	run := func(ctx context.Context, m *member) (T, error) {
		held, _ := ctx.Value(sharedHeld{}).(*heldGroup)
		v, err := fn(context.WithValue(ctx, sharedHeld{}, &heldGroup{g: g, outer: held}), &m.fnTx)
		m.fnErr = err
		return v, err
	}
	return scopes.InTx(begin, run, scopeOpts...)
}

// mapKeyable reports whether db can be a map key, without building a map:
// the operation is built per request, as a closure over its arguments.
func mapKeyable(db Beginner) bool { return reflect.ValueOf(db).Comparable() }

// member is one attempt's part of a shared transaction.
type member struct {
	ctx   context.Context // the attempt's: its caller's deadline and cancel
	g     *shareGroup
	c     *config
	s     *sharedTx
	fnTx  sharedFnTx
	fnErr error
	ended bool // fn called tx.Commit or tx.Rollback
	turn  bool // it has the turn (until Commit or Rollback)
}

// sharedFnTx is the transaction a shared attempt's fn is handed: the shared
// pgx.Tx, whose Commit and Rollback end nothing.
type sharedFnTx struct {
	pgx.Tx
	m *member
}

// Commit refuses: the transaction is shared.
func (f *sharedFnTx) Commit(context.Context) error { f.m.fnEnded(); return errSharedEnd }

// Rollback refuses: the transaction is shared.
func (f *sharedFnTx) Rollback(context.Context) error { f.m.fnEnded(); return errSharedEnd }

func (m *member) fnEnded() { m.ended = true }

// join waits for the turn, oldest first, and joins the transaction in
// progress or begins one, then sets the attempt's SAVEPOINT and limits.
func (g *shareGroup) join(ctx context.Context, c *config, db Beginner) (*member, error) {
	epoch, err := g.acquire(ctx, c)
	if err != nil {
		return nil, err
	}
	m := &member{g: g, c: c, turn: true, ctx: ctx}
	m.fnTx = sharedFnTx{m: m}
	s := g.cur
	if s != nil && c.limitsAfterLock() && s.seq <= epoch {
		// REPEATABLE READ or SERIALIZABLE: the transaction in progress
		// began before this attempt did, and its snapshot may be older
		// than work committed before the attempt began (its caller's own
		// last transaction): the attempt would not see it. It is
		// committed, and the attempt begins the next.
		g.mu.Lock()
		g.cur = nil
		g.mu.Unlock()
		g.finish(ctx, c, s)
		s = nil
	}
	if s == nil {
		if s, err = g.open(ctx, c, db); err != nil {
			m.turn = false
			g.release(ctx, c)
			return nil, err
		}
		g.mu.Lock()
		g.opened++
		s.seq = g.opened
		g.cur = s
		g.mu.Unlock()
	}
	m.s = s
	s.n++
	m.fnTx.Tx = s.tx
	set, limits := c.attemptSettings(ctx)
	limited := set != c.setSQL || limits != "" || s.limits != ""
	// The first attempt's savepoint was set in the BEGIN round trip (open):
	// a lone attempt so costs no round trip more than InTx without
	// ShareCommits, and its ROLLBACK TO SAVEPOINT still tells a transaction
	// fn ended with COMMIT AND CHAIN (rollbackTo).
	if s.n == 1 && !limited {
		return m, nil
	}
	var q []string
	if s.n > 1 {
		q = append(q, shareSavepoint)
	}
	if limited {
		if s.limits == "" {
			if err := s.readLimits(ctx); err != nil {
				return nil, m.failOrLeave(ctx, err)
			}
		}
		q = append(q, s.limits, set, limits)
	}
	stmt := serverlimitJoin(q...)[2:]
	if _, err := s.tx.Exec(ctx, stmt); err != nil {
		return nil, m.failOrLeave(ctx, fmt.Errorf("pgxdb: %s: %w", stmt, err))
	}
	return m, nil
}

// shareSavepoint is the savepoint of each attempt in a shared transaction.
const shareSavepoint = "SAVEPOINT dbop_share"

// failOrLeave ends the turn of an attempt whose statement before its fn
// failed: when the statement was not sent (the attempt's context ended as
// it was handed the turn), the transaction is as it was, and the work of
// the attempts in it stays; otherwise it is broken (fail).
func (m *member) failOrLeave(ctx context.Context, err error) error {
	conn := m.s.tx.Conn()
	if conn != nil && !conn.IsClosed() && !conn.PgConn().IsBusy() && conn.PgConn().TxStatus() == 'T' && pgconn.SafeToRetry(err) {
		m.turn = false
		m.g.release(ctx, m.c)
		return err
	}
	return m.fail(ctx, err)
}

// serverlimitJoin joins statements, each "" for none, each after "; ".
func serverlimitJoin(stmts ...string) string {
	var parts []string
	for _, p := range stmts {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// readLimits reads the limits in force, which the attempts' own replace, so
// that each attempt after one with a deadline starts from them.
func (s *sharedTx) readLimits(ctx context.Context) error {
	var stmt, lock string
	if err := s.tx.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')").Scan(&stmt, &lock); err != nil {
		return fmt.Errorf("pgxdb: reading the limits in force: %w", err)
	}
	s.limits = "SET LOCAL statement_timeout = " + quote(stmt) + "; SET LOCAL lock_timeout = " + quote(lock)
	return nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// fail ends the attempt's turn after err broke the transaction, and returns
// err.
func (m *member) fail(ctx context.Context, err error) error {
	m.s.broken = err
	m.turn = false
	m.g.release(ctx, m.c)
	return err
}

// acquire waits for the group's turn, oldest first. It returns the count
// of the group's transactions begun when the attempt came: those it may
// join under REPEATABLE READ or SERIALIZABLE are the later ones (join).
func (g *shareGroup) acquire(ctx context.Context, c *config) (uint64, error) {
	g.mu.Lock()
	epoch := g.opened
	if !g.held {
		g.held = true
		g.mu.Unlock()
		return epoch, nil
	}
	w := make(chan struct{})
	g.queue = append(g.queue, shareWaiter{w, epoch})
	g.mu.Unlock()
	select {
	case <-w:
		return epoch, nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	for i, q := range g.queue {
		if q.turn == w {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			g.mu.Unlock()
			return 0, ctx.Err()
		}
	}
	g.mu.Unlock()
	<-w // handed the turn as the context ended: hand it on
	g.release(ctx, c)
	return 0, ctx.Err()
}

// release ends the turn of the attempt that holds it: it hands the turn to
// the oldest waiting attempt, and commits (or rolls back) the transaction
// in progress when no attempt will join it.
func (g *shareGroup) release(ctx context.Context, c *config) {
	g.mu.Lock()
	s := g.cur
	var end *sharedTx
	if s != nil && (s.broken != nil || s.ended || s.closing || g.solo > 0 || len(g.queue) == 0 || s.n >= shareMax ||
		// REPEATABLE READ or SERIALIZABLE: the oldest waiting attempt
		// (and so every one) came after the transaction began, and may
		// not join it (join): end it now, while the next one begins.
		c.limitsAfterLock() && g.queue[0].epoch >= s.seq) {
		end, g.cur = s, nil
		if g.solo > 0 {
			g.solo--
		}
	}
	if end != nil && g.single {
		// One connection: the next attempt would begin on it while the
		// COMMIT is on it. The turn is handed on once it is answered.
		g.mu.Unlock()
		g.finish(ctx, c, end)
		end = nil
		g.mu.Lock()
	}
	if len(g.queue) > 0 {
		w := g.queue[0]
		g.queue = g.queue[1:]
		g.mu.Unlock()
		close(w.turn)
	} else {
		g.held = false
		g.mu.Unlock()
	}
	if end != nil {
		// A pool: the next transaction begins on another connection
		// while this one commits (its lock table waits for the COMMIT).
		g.finish(ctx, c, end)
	}
}

// finish ends s: COMMIT when attempts wait for it, ROLLBACK otherwise, and
// sets their outcome.
func (g *shareGroup) finish(ctx context.Context, c *config, s *sharedTx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.rollbackTimeout)
	defer cancel()
	switch {
	case s.ended:
		_ = s.tx.Rollback(ctx) // pgx's state; the server answers a warning
		s.err = dbop.Classify(&scopes.AmbiguousCommitError{Err: errSharedEndedByStatement}, dbop.Ambiguous)
	case s.broken != nil || s.waiting == 0:
		_ = s.tx.Rollback(ctx)
		if s.broken != nil {
			s.err = &sharedRollbackError{s.broken}
		}
	default:
		err := sendCommit(s.tx, func() error { return s.tx.Commit(ctx) })
		if err != nil && s.waiting > 1 {
			if v := c.commitVerdict(err); v != dbop.Ambiguous && v != dbop.RetryTransaction && c.classifier(err) != dbop.RetryTransaction {
				// Whose work the server refused is unknown: every
				// attempt is retried, the next ones alone.
				g.mu.Lock()
				g.solo += s.waiting
				g.mu.Unlock()
				err = &sharedRollbackError{err}
			}
		}
		s.err = err
	}
	close(s.done)
}

// open begins a shared transaction: BEGIN with the options' settings and,
// while the lock tables are not known to be missing, the lock of the
// group's table, in one round trip on pgx's own handles.
func (g *shareGroup) open(ctx context.Context, c *config, db Beginner) (*sharedTx, error) {
	if err := inCallersTx(db); err != nil {
		return nil, err
	}
	lock := ""
	if g.tables.Load() != 2 {
		lock = hotlock.PostgresLock(c.shareKey)
		if !c.limitsAfterLock() {
			// The limits the opener's deadline derives bound the wait
			// for the lock on the server, which ends it with 55P03 or
			// 57014 and keeps the connection (a deadline reached on the
			// client closes it), as a HotSpot's BEGIN does (Config.begin);
			// the limits in force before them are restored after it, for
			// the attempts to start from (join). Under REPEATABLE READ and
			// SERIALIZABLE the SELECT would take the snapshot before the
			// wait (docs/backends.md §1.14).
			if set, limits := c.attemptSettings(ctx); set != c.setSQL || limits != "" {
				lock = serverlimit.Join(shareSaveLimits, set, limits, lock, shareRestoreLimits)
			}
		}
	}
	owner, own := batchesBegin(db)
	opts := c.txOptions
	begin := func(lock string) (pgx.Tx, error) {
		o := opts
		if own {
			// The first attempt's savepoint (join) in the round trip.
			o.BeginQuery = beginSQL(opts, serverlimitJoin(c.setSQL, lock, shareSavepoint)[2:])
		}
		tx, err := db.BeginTx(ctx, o)
		if err != nil {
			if owner != nil && o.BeginQuery != "" {
				// BEGIN ran and a statement after it failed (the lock
				// table missing, a lock timeout): the caller's connection
				// is in a failed transaction, which a pool would destroy.
				_, _ = owner.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			}
			return nil, closedConn(db, err)
		}
		if !own {
			for _, q := range []string{c.setSQL, serverlimitJoin(lock, shareSavepoint)[2:]} {
				if q == "" {
					continue
				}
				if _, err := tx.Exec(ctx, q); err != nil {
					_ = tx.Rollback(context.WithoutCancel(ctx))
					return nil, err
				}
			}
		}
		return tx, nil
	}
	tx, err := begin(lock)
	if err != nil && lock != "" && lockMissing(err) {
		g.tables.Store(2)
		tx, err = begin("")
	} else if err == nil && lock != "" {
		g.tables.Store(1)
	}
	if err != nil {
		return nil, err
	}
	return &sharedTx{tx: tx, done: make(chan struct{})}, nil
}

// shareSaveLimits and shareRestoreLimits keep the limits in force across
// the ones an opener's deadline derives for the wait for the lock table.
const (
	shareSaveLimits = "SELECT set_config('dbop.share_statement_timeout', current_setting('statement_timeout'), true), " +
		"set_config('dbop.share_lock_timeout', current_setting('lock_timeout'), true)"
	shareRestoreLimits = "SELECT set_config('statement_timeout', current_setting('dbop.share_statement_timeout'), true), " +
		"set_config('lock_timeout', current_setting('dbop.share_lock_timeout'), true)"
)

// lockMissing reports whether err says the lock table is missing (42P01)
// or not ours to lock (42501).
func lockMissing(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (pe.Code == "42P01" || pe.Code == "42501")
}

// Commit ends the attempt's turn with its work in the transaction, and
// waits for the transaction's outcome.
func (m *member) Commit(ctx context.Context) error {
	if !m.turn {
		return m.s.err
	}
	s := m.s
	conn := s.tx.Conn()
	switch {
	case conn != nil && conn.PgConn().TxStatus() == 'I':
		s.ended = true
		s.waiting++
	case m.ended: // fn called tx.Commit or tx.Rollback and returned nil
		if err := m.undo(ctx); err != nil {
			return err
		}
		return &beforeCommitError{dbop.Classify(errSharedEnd, dbop.NotRetryable)}
	case conn != nil && conn.PgConn().TxStatus() == 'E':
		if err := m.undo(ctx); err != nil {
			return err
		}
		return fmt.Errorf("pgxdb: the transaction had failed before COMMIT (a statement's error was not returned by fn): %w", pgx.ErrTxCommitRollback)
	case conn != nil && conn.PgConn().IsBusy():
		return &beforeCommitError{dbop.Classify(m.fail(ctx, errors.New("pgxdb: COMMIT was not sent: fn returned with rows or a batch left open on the shared transaction's connection "+
			"(close pgx.Rows and pgx.BatchResults before returning)")), dbop.NotRetryable)}
	default:
		s.waiting++
	}
	m.turn = false
	m.g.release(ctx, m.c)
	// The attempts after it may take their time: the wait is the
	// caller's, bounded by its deadline, not by the commit's own bound.
	select {
	case <-s.done:
		return s.err
	case <-m.ctx.Done():
		select {
		case <-s.done:
			// Both were ready (this attempt ran the COMMIT itself, say,
			// past its deadline): the outcome is known.
			return s.err
		default:
		}
		return dbop.Classify(&scopes.AmbiguousCommitError{Err: fmt.Errorf(
			"pgxdb: the caller gave up before the shared transaction (ShareCommits) this attempt's work waits in was committed: %w", m.ctx.Err())}, dbop.Ambiguous)
	}
}

// undo rolls the attempt's work back to its savepoint and ends its turn;
// the transaction takes no more attempts.
func (m *member) undo(ctx context.Context) error {
	if err := m.rollbackTo(ctx); err != nil {
		return err
	}
	m.s.closing = true
	m.turn = false
	m.g.release(ctx, m.c)
	return nil
}

// Rollback rolls the attempt's work back to its savepoint and ends its
// turn. A transaction fn ended with a statement is Ambiguous, as InTx's.
func (m *member) Rollback(ctx context.Context) error {
	if !m.turn {
		return nil
	}
	s := m.s
	conn := s.tx.Conn()
	switch {
	case conn != nil && conn.PgConn().TxStatus() == 'I':
		s.ended = true
		m.turn = false
		m.g.release(ctx, m.c)
		return dbop.Classify(&scopes.AmbiguousCommitError{Err: errSharedEndedByStatement}, dbop.Ambiguous)
	case conn != nil && conn.PgConn().IsBusy():
		return m.fail(ctx, errors.New("pgxdb: fn returned with rows or a batch left open on the shared transaction's connection"))
	}
	failed := conn != nil && conn.PgConn().TxStatus() == 'E'
	if err := m.rollbackTo(ctx); err != nil {
		return err
	}
	if failed || (m.fnErr != nil && m.c.classifier(m.fnErr) == dbop.RetryTransaction) {
		// A statement failed, or a conflict: the snapshot or the locks
		// may be stale. The transaction commits what it holds.
		s.closing = true
	}
	m.turn = false
	m.g.release(ctx, m.c)
	return nil
}

// rollbackTo rolls the attempt's work back to its savepoint; on an error
// the attempt's turn has ended. A savepoint that is gone (3B001) says fn
// ended the transaction with a statement that left the connection in a
// new one (COMMIT AND CHAIN, COMMIT then BEGIN), which the status cannot
// show: as for one fn ended, every attempt in it is Ambiguous, the work of
// those before it having been committed.
func (m *member) rollbackTo(ctx context.Context) error {
	_, err := m.s.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT dbop_share")
	if err == nil {
		return nil
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "3B001" {
		m.s.ended = true
		m.turn = false
		m.g.release(ctx, m.c)
		return dbop.Classify(&scopes.AmbiguousCommitError{Err: errSharedEndedByStatement}, dbop.Ambiguous)
	}
	return m.fail(ctx, fmt.Errorf("pgxdb: ROLLBACK TO SAVEPOINT dbop_share: %w", err))
}
