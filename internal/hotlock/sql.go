package hotlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/internal/sqlstate"
)

// Tx is what [Take] runs the lock's statements on: one transaction, through
// whatever driver API the scope has ([SQL] adapts database/sql's).
type Tx interface {
	QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error }
	Exec(ctx context.Context, query string, args ...any) error
}

// SQLTx is a transaction of database/sql: a *sql.Tx, or GORM's connection
// pool of one.
type SQLTx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SQL adapts a database/sql transaction to [Tx].
func SQL(tx SQLTx) Tx { return sqlTx{tx} }

type sqlTx struct{ tx SQLTx }

func (t sqlTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error } {
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t sqlTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

// Step is what the scope does after [Take].
type Step int

const (
	// Held: the lock is held; run the attempt in the transaction.
	Held Step = iota
	// Again: the lock was waited for in a transaction whose snapshot
	// predates the holder's commit (PostgreSQL, REPEATABLE READ or
	// SERIALIZABLE): roll it back, begin a new one and take the lock
	// again.
	Again
)

// maxAgain is how many times an attempt begins again after waiting for
// the advisory lock ([Again]) before it goes on without it. Rolling back
// gives the lock to the next in line, and the attempt begins again at the
// back of the queue: while other processes keep it queued, every wait
// ends so, and the attempt would never run.
const maxAgain = 2

// Kind is the lock [Take] takes.
type Kind int

const (
	// MySQLRow: the row of MySQLTable, added the first time (MySQL,
	// MariaDB).
	MySQLRow Kind = iota
	// PostgresLockTable: one of the PostgreSQL lock tables, with LOCK
	// TABLE (docs/backends.md §1.14).
	PostgresLockTable
	// PostgresAdvisory: PostgreSQL's transaction-scoped advisory lock,
	// where the lock tables are missing (§1.13).
	PostgresAdvisory
)

// Take takes r's lock of kind k in tx, as the first statements of the
// transaction, and records on r what it did. A lock that waits in place
// (all but the advisory lock outside READ COMMITTED) is taken with one
// statement, timed (Request.TookFor): no server says whether it waited, and
// the HotSpot judges that by the times of many statements, since one slow
// statement may be a busy machine's. An error is a statement's, and the caller
// rolls tx back; sql.ErrNoRows means the MySQL lock row could not be
// added.
//
// before, when not "", precedes the first statement of a lock table's
// lock in its round trip, and after follows the last in its (the limits
// Scope.BeginForLock left out, then PostgresBound after): with no
// arguments, pgx and lib/pq send them all with the simple query protocol.
// The advisory lock sends after in a round trip of its own once it holds
// the lock (before is "": its scopes are begun with Scope.Begin, limits
// included); the MySQL lock row sends neither (after is "" there).
func Take(ctx context.Context, tx Tx, k Kind, r *Request, before, after string) (Step, error) {
	switch k {
	case PostgresLockTable:
		stmts, keyed := PostgresLocks(r.Key, r.Keys)
		var longest time.Duration
		for i, stmt := range stmts {
			if i == 0 {
				stmt = serverlimit.Join(before, stmt)
			}
			if i == len(stmts)-1 {
				stmt = serverlimit.Join(stmt, after)
			}
			start := time.Now()
			if err := tx.Exec(ctx, stmt); err != nil {
				return Held, err
			}
			longest = max(longest, time.Since(start))
		}
		tookInPlace(r, longest, keyed)
		return Held, nil
	case PostgresAdvisory:
		// One lock for the HotSpot, keys or not: advisory locks that
		// are tried and then waited for take a snapshot between the two
		// under REPEATABLE READ and SERIALIZABLE (§1.13), so a set of
		// them in order would begin the transaction again per key.
		var got bool
		var isolation string
		if err := tx.QueryRow(ctx, PostgresTry, r.Key).Scan(&got, &isolation); err != nil {
			return Held, err
		}
		if got {
			r.Took()
			if isolation == "read committed" {
				r.InPlace()
			}
			return Held, boundAfter(ctx, tx, after)
		}
		r.Waited()
		if err := tx.Exec(ctx, PostgresWait, r.Key); err != nil {
			return Held, err
		}
		if isolation != "read committed" {
			return Again, nil
		}
		r.Took()
		r.InPlace()
		return Held, boundAfter(ctx, tx, after)
	}
	stmt, ids := "", []any(nil)
	if len(r.Keys) > 0 {
		stmt, ids = mySQLKeysLock(r.Key, r.Keys)
	}
	lock := MySQLLock
	if ids != nil {
		lock = MySQLShare
	}
	start := time.Now()
	if err := mySQLRows(ctx, tx, lock, []any{r.Key}, nil); err != nil {
		return Held, err
	}
	longest := time.Since(start)
	if ids != nil {
		start = time.Now()
		if err := mySQLRows(ctx, tx, stmt, ids, mySQLStripeRows(r.Key)); err != nil {
			return Held, err
		}
		longest = max(longest, time.Since(start))
	}
	tookInPlace(r, longest, ids != nil)
	return Held, nil
}

// boundAfter sends after, the bound on the lock waits of an attempt that
// holds PostgreSQL's advisory lock, in a round trip of its own: the lock's
// statements take a parameter, so it cannot travel with them. Sent before
// the lock, it would bound the wait for the lock too.
func boundAfter(ctx context.Context, tx Tx, after string) error {
	if after == "" {
		return nil
	}
	return tx.Exec(ctx, after)
}

// mySQLRows locks the rows of MySQLTable whose ids are args with the
// statement lock, which reads one id (MySQLLock, MySQLShare; stripes nil)
// or counts the rows it locked (mySQLKeysLock). The first time rows are
// missing it adds them, and with them stripes, the ids of every stripe of
// the HotSpot, so that this happens once per HotSpot and server: rows
// added are locked until the transaction ends, and a locking read of the
// others waits for them meanwhile (and may deadlock with another
// transaction adding rows, an error the retry handles). sql.ErrNoRows
// means rows could not be added.
func mySQLRows(ctx context.Context, tx Tx, lock string, args, stripes []any) error {
	for added := false; ; added = true {
		var got int64
		err := tx.QueryRow(ctx, lock, args...).Scan(&got)
		if stripes != nil && err == nil && got < int64(len(args)) {
			err = sql.ErrNoRows
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) || added {
			return err
		}
		add := args
		if stripes != nil {
			add = stripes
		}
		if err := tx.Exec(ctx, mySQLAdd(len(add)), add...); err != nil {
			return err
		}
	}
}

// tookInPlace records on r a lock taken in place, whose statement that took
// longest took d (a wait is judged per statement, not over the round trips
// of several), and whether the lock per key was taken. It does not record
// a wait (Waited): whether d was one is the HotSpot's judgement, over a
// window of such statements.
func tookInPlace(r *Request, d time.Duration, keyed bool) {
	r.Took()
	r.InPlace()
	r.TookFor(d)
	if keyed {
		r.HeldKeys()
	}
}

// State is what an operation's scope remembers of the server's answers to
// the lock's statements, for all its attempts.
type State struct {
	// off: the server has no lock (no advisory lock function, no MySQL
	// lock table); transactions go on uncoordinated.
	off atomic.Bool
	// noTables: PostgreSQL refused the lock tables (missing, or LOCK not
	// allowed); transactions take the advisory lock.
	noTables atomic.Bool
}

// Limits are the statements of an attempt's limits that
// Scope.BeginForLock left out of its transaction's beginning, for [Take]
// to send in the round trip of the lock tables' LOCK; each "" when there
// are none.
//
// A SELECT takes a REPEATABLE READ or SERIALIZABLE transaction's
// snapshot: before the LOCK it would fix the snapshot before the wait, and
// the attempt's writes to the rows the holder wrote would fail with 40001
// (docs/backends.md §1.14). So in such a transaction the SELECT that sets
// limits with set_config (§1.18) goes in After, and the LOCK's own wait is
// bounded by the limits set before it (SET LOCAL takes no snapshot) and
// those in force, and by the context, not by the limits that SELECT sets:
// a deadline that passes during the wait ends it on the client, and pgx
// closes the connection. Under READ COMMITTED, where each statement takes
// a snapshot of its own, the SELECT goes before the LOCK, and the server
// bounds the wait by the limits derived from the deadline: it ends it with
// a retryable 57014 or 55P03 before the context would (§1.7; a pgxpool
// then replaces the connection whose BEGIN round trip failed).
type Limits struct {
	// Before precedes the lock's first statement: statements that take
	// no snapshot the attempt keeps, such as SET LOCAL, or any under
	// READ COMMITTED.
	Before string
	// After follows the lock's last statement, before the bound
	// (PostgresBound), which lowers lock_timeout from what it sets.
	After string
}

// LimitsFor places an attempt's limits for the LOCK's round trip: set,
// statements that take no snapshot (SET LOCAL), before the lock's; least,
// the SELECT of set_config calls, before them too, or after them where
// snapshot says that the transaction keeps one snapshot (REPEATABLE READ,
// SERIALIZABLE), which the SELECT would take before the wait.
func LimitsFor(set, least string, snapshot bool) Limits {
	if snapshot {
		return Limits{Before: set, After: least}
	}
	return Limits{Before: serverlimit.Join(set, least)}
}

// SQLSnapshot reports whether a database/sql transaction of isolation
// level takes one snapshot for all its statements on PostgreSQL: REPEATABLE
// READ and SERIALIZABLE (LevelSnapshot is begun as REPEATABLE READ by pgx's
// stdlib; lib/pq and pgx refuse LevelLinearizable). It is false for
// LevelDefault, the server's default, which is READ COMMITTED unless the
// server is configured otherwise: a scope puts a SELECT of its limits in
// Limits.After only where the isolation given says it must.
func SQLSnapshot(level sql.IsolationLevel) bool {
	switch level {
	case sql.LevelRepeatableRead, sql.LevelSnapshot, sql.LevelSerializable, sql.LevelLinearizable:
		return true
	}
	return false
}

// Scope is what [Begin] needs of an adapter's transaction scope.
type Scope[T any] struct {
	// Begin begins one attempt's transaction.
	Begin func() (T, error)
	// BeginForLock, where not nil, begins one attempt's transaction for
	// the PostgreSQL lock tables' LOCK to be its first statements, sent
	// with Take: as Begin, but it leaves out statements of the attempt's
	// limits and returns them (Limits), for Take to send in the LOCK's
	// round trip, before or after the lock's statements. nil: Begin, for
	// a scope whose limits all go before the lock as they are.
	BeginForLock func() (T, Limits, error)
	// Tx is the transaction's statements, for [Take].
	Tx func(T) Tx
	// Rollback rolls back a transaction the attempt will not run in;
	// Begin bounds it by RollbackTimeout, on a context the attempt's end
	// does not cancel.
	Rollback        func(ctx context.Context, t T) error
	RollbackTimeout time.Duration
	// State remembers, for later transactions, what an error of the
	// lock's statements said of the server while the attempt's context
	// had not ended (missing): no lock tables on PostgreSQL (42P01), or no
	// right to lock them (42501), and the scope takes the advisory lock
	// instead; no advisory lock function (42883), no MySQL lock table
	// (1146), or a MySQL lock row that could not be added (sql.ErrNoRows),
	// and the scope goes on uncoordinated. The statements are the
	// HotSpot's own, so their errors are judged here, not by the scope's
	// classifier: one that retries everything would otherwise retry the
	// missing table's error in every attempt, and the operation would
	// never run.
	State    *State
	Postgres bool
	// LockTimeout, where not nil, returns the lock_timeout the attempt's
	// own settings set on PostgreSQL (0: none), so that a request's Bound
	// never raises it.
	LockTimeout func() time.Duration
	// Name prefixes the error of a wait that failed: "pgxdb", "sqldb", ….
	Name string

	// BeginLocked, where the driver can send statements in the BEGIN
	// round trip (pgx's own handles), begins a transaction whose BEGIN
	// is followed by lock, so that the PostgreSQL lock table's LOCK costs
	// no round trip of its own; nil elsewhere. The statements of the
	// limits go in that round trip where Limits says: a SELECT of them
	// follows lock in a REPEATABLE READ or SERIALIZABLE transaction, and
	// precedes it otherwise. One that follows the bound lock ends with
	// (PostgresBound) must, like the bound, only lower the limits in
	// force (serverlimit.PostgresLeast). When it fails with an
	// error AfterBegin recognizes (the server's answer), BEGIN ran and
	// the connection is left in a failed transaction: Abort, when not
	// nil, rolls it back (a pool discards such a connection itself).
	BeginLocked func(lock string) (T, error)
	AfterBegin  func(error) bool
	Abort       func(ctx context.Context) error
}

// bounded runs f on a context that ctx's end does not cancel, bounded by
// s.RollbackTimeout: a rollback after the attempt has failed.
func (s Scope[T]) bounded(ctx context.Context, f func(context.Context) error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.RollbackTimeout)
	_ = f(rctx)
	cancel()
}

// waitFailed is the error of a wait for the lock that failed, for the
// retry to judge.
func (s Scope[T]) waitFailed(err error) error {
	return fmt.Errorf("%s: waiting for the hot spot's lock: %w", s.Name, err)
}

// missing reports whether err, an error of a lock's statements that the
// scope's classifier does not retry, says that the server has no lock of
// kind k, which State then remembers for every later attempt of the
// operation — rather than that this wait failed. A wait that ended because
// the attempt's context did (the client went away, a sibling failed, a
// cancel request's 57014) says nothing of the server, nor does a wait an
// administrator ended (57014, MySQL's KILL QUERY 1317). Only the answers
// that mean "no such object", "not allowed" or "not supported" count: on
// PostgreSQL a SQLSTATE of class 42 (42P01 no such table, 42501 no right,
// 42883 no such function, 42601 a server whose syntax has no LOCK TABLE)
// or 0A (not supported); on MySQL and MariaDB, whose driver's errors carry
// no SQLSTATE method, errors 1146 (no such table), 1142 and 1143 (no
// right), or sql.ErrNoRows (the lock row could not be added).
func missing(ctx context.Context, err error, k Kind) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if k == MySQLRow {
		return errors.Is(err, sql.ErrNoRows) || mySQLMissing.MatchString(err.Error())
	}
	code := sqlstate.Of(err)
	return strings.HasPrefix(code, "42") || strings.HasPrefix(code, "0A")
}

// mySQLMissing matches go-sql-driver/mysql's text of the errors that say
// the lock table is missing or not allowed: "Error 1146 (42S02): …".
var mySQLMissing = regexp.MustCompile(`\bError (1146|1142|1143)\b`)

// Begin begins an attempt's transaction with s and, when ctx carries a
// request no scope has claimed, takes the lock in it: with BeginLocked
// where the scope has it and the PostgreSQL lock tables were not refused,
// else with [Take], beginning again while Take says so. A transaction for
// the lock tables is begun with BeginForLock, where the scope has it, and
// the limits it left out go in the LOCK's round trip (Limits). A wait that failed (a lock or statement
// timeout, a lost connection) is returned for the retry to judge.
func Begin[T any](ctx context.Context, s Scope[T]) (T, error) {
	req := From(ctx)
	if req == nil || s.State.off.Load() || !req.Claim() {
		return s.Begin()
	}
	after := ""
	if s.Postgres {
		req.postgres.Store(true)
		if req.Bound > 0 {
			var current time.Duration
			if s.LockTimeout != nil {
				current = s.LockTimeout()
			}
			after = PostgresBound(req.Bound, current)
		}
	}
	if s.Postgres && s.BeginLocked != nil && !s.State.noTables.Load() {
		start := time.Now()
		stmts, keyed := PostgresLocks(req.Key, req.Keys)
		if after != "" {
			stmts = append(stmts, after)
		}
		t, err := s.BeginLocked(strings.Join(stmts, "; "))
		if err == nil {
			tookInPlace(req, time.Since(start), keyed)
			return t, nil
		}
		if !s.AfterBegin(err) {
			return t, err
		}
		if s.Abort != nil {
			s.bounded(ctx, s.Abort)
		}
		if !missing(ctx, err, PostgresLockTable) {
			var zero T
			return zero, s.waitFailed(err)
		}
		s.State.noTables.Store(true)
	}
	k := s.kind()
	t, first, then, err := s.beginFor(k, after)
	// A transaction begun for the lock tables takes the lock all the
	// same: the limits BeginForLock left out go with it.
	if err != nil || (s.State.off.Load() && k != PostgresLockTable) {
		return t, err
	}
	for again := 0; ; {
		step, err := Take(ctx, s.Tx(t), k, req, first, then)
		if err == nil && step == Held {
			return t, nil
		}
		s.bounded(ctx, func(ctx context.Context) error { return s.Rollback(ctx, t) })
		switch {
		case err == nil: // Again
			if again++; again > maxAgain {
				// The attempt goes on uncoordinated, as where the server has
				// no lock: the lock orders attempts for speed, not for
				// correctness, and the retry handles a conflict it meets.
				return s.Begin()
			}
		case !missing(ctx, err, k):
			var zero T
			return zero, s.waitFailed(err)
		case k != PostgresLockTable:
			s.State.off.Store(true)
			return s.Begin()
		default:
			s.State.noTables.Store(true)
		}
		k = s.kind()
		if t, first, then, err = s.beginFor(k, after); err != nil {
			return t, err
		}
	}
}

// kind returns the lock the scope takes with Take, as far as State knows.
func (s Scope[T]) kind() Kind {
	switch {
	case !s.Postgres:
		return MySQLRow
	case s.State.noTables.Load():
		return PostgresAdvisory
	}
	return PostgresLockTable
}

// beginFor begins a transaction for Take to take a lock of kind k in, and
// returns the statements Take sends before the lock's and after them: for
// the lock tables, the limits BeginForLock left out, and after
// (PostgresBound) last, which lowers lock_timeout from whatever they set
// it to; after alone otherwise.
func (s Scope[T]) beginFor(k Kind, after string) (t T, before, then string, err error) {
	if k != PostgresLockTable || s.BeginForLock == nil {
		t, err := s.Begin()
		return t, "", after, err
	}
	t, limits, err := s.BeginForLock()
	return t, limits.Before, serverlimit.Join(limits.After, after), err
}
