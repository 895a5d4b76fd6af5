// Package hotlock is what a dbop.HotSpot and the adapters' transaction
// scopes tell each other about coordinating processes: when a HotSpot has
// seen its attempts lose conflicts to another process, it asks the scope
// that begins an attempt's transaction to take a lock that every process
// running the same HotSpot takes, held until the transaction ends, so that
// the processes' attempts on the hot rows run one at a time instead of
// failing each other.
//
// It is internal so that the protocol can change without changing the
// public API: users see it through dbop.HotSpot's documentation and
// docs/contention.md, never its types.
package hotlock

import (
	"context"
	"hash/fnv"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dbop-go/dbop/internal/attempt"
	"github.com/dbop-go/dbop/internal/serverlimit"
)

// Request asks the scope that begins a transaction to take the
// coordinating lock Key in it before anything else. A Request serves one
// attempt: the first transaction scope to [Request.Claim] it takes the
// lock; a transaction begun inside that one's function (on another
// connection) finds it claimed and takes none, since waiting for a lock
// its own caller holds would wait for ever.
type Request struct {
	// Key identifies the HotSpot across processes: the same HotSpot
	// built by the same code in every process has the same Key.
	Key int64
	// Keys, when not nil, are the rows the attempt writes
	// (dbop.HotSpotKeys), sorted and distinct: the scope then takes the
	// HotSpot's lock in a shared mode, and an exclusive lock on each
	// key's stripe (see PostgresLocks, MySQLKeyRow), so that attempts of
	// different processes whose keys fall on different stripes run side
	// by side, while an attempt without keys, which takes the HotSpot's
	// lock exclusively, still runs alone. Nil: the HotSpot's lock,
	// exclusively.
	Keys []int64
	// Bound, when not 0, limits the transaction's lock waits after the
	// lock: a PostgreSQL scope lowers lock_timeout to it (never raising
	// the value in force, PostgresBound) in the round trip of the lock's
	// statement, so that the wait for the lock itself stays unbounded and
	// costs nothing more. An attempt that holds the HotSpot's lock waits
	// after it only for writers the lock does not order (a pipeline
	// without the HotSpot, another service): a lock cycle with one would
	// last until the deadlock detector, a second on PostgreSQL
	// (docs/contention.md, "Writers the lock does not order"; the setting
	// after the lock: docs/backends.md §1.17). MySQL and
	// MariaDB scopes ignore it: their limits are session settings, round
	// trips of their own.
	Bound    time.Duration
	claimed  atomic.Bool
	postgres atomic.Bool
	keysHeld atomic.Bool
	took     atomic.Bool
	waited   atomic.Bool
	inPlace  atomic.Bool
	lockTime atomic.Int64
}

// Claim reports whether the caller is the first to claim r; only that
// caller takes the lock.
func (r *Request) Claim() bool { return r.claimed.CompareAndSwap(false, true) }

// Took records that the lock was taken: the HotSpot then knows that its
// attempts are coordinated across processes.
func (r *Request) Took() { r.took.Store(true) }

// Waited records that the lock was held by another transaction and the
// scope waited for it, as the server said (PostgreSQL's advisory lock,
// tried first): another process is still writing the rows. A lock taken in
// place records its time instead (TookFor).
func (r *Request) Waited() { r.waited.Store(true) }

// InPlace records that the scope took the lock with a statement that waits
// for it in place and leaves the transaction usable (MySQL's and MariaDB's
// row lock, PostgreSQL's lock tables, and its advisory lock under READ
// COMMITTED): a waiting
// attempt then gets the lock from the server the moment its holder ends,
// with its BEGIN already done, so the HotSpot lets one attempt wait in the
// server while another holds the lock.
func (r *Request) InPlace() { r.inPlace.Store(true) }

// TookFor records how long the statement that took the lock in place
// took, for the HotSpot to judge, over a window of such statements,
// whether they wait for another process's transactions: no server says
// whether a lock was waited for, and one slow statement may be a busy
// machine's.
func (r *Request) TookFor(d time.Duration) { r.lockTime.Store(int64(d)) }

// LockTime returns what TookFor recorded, 0 if nothing.
func (r *Request) LockTime() time.Duration { return time.Duration(r.lockTime.Load()) }

// HeldKeys records that the scope took the lock per key, not the
// HotSpot's lock alone (too many stripes, the advisory lock).
func (r *Request) HeldKeys() { r.keysHeld.Store(true) }

// KeysHeld reports whether the scope took the lock per key.
func (r *Request) KeysHeld() bool { return r.keysHeld.Load() }

// OnPostgres reports whether a PostgreSQL scope claimed r, where a bound on
// lock waits costs no round trip of its own on pgx's handles and one
// statement on database/sql's.
func (r *Request) OnPostgres() bool { return r.postgres.Load() }

// PostgresBound returns the statement that limits a PostgreSQL
// transaction's lock waits to bound after the lock (Request.Bound), or ""
// when bound is 0 or the attempt's own lock_timeout, current (0: none), is
// no longer. It is sent in the lock's round trip, after its statements.
//
// The bound only ever lowers the lock_timeout in force: the server sets
// the smaller of the two (serverlimit.PostgresLeast), so that a lower
// limit of the user's own — a role's or a database's default, a session's
// SET, which current cannot know — is kept, and a 0 in force ("no limit")
// takes the bound. A lock_timeout the attempt's options gave is in force
// by then, and the bound lowers it as the client would.
func PostgresBound(bound, current time.Duration) string {
	if bound <= 0 || (current > 0 && current <= bound) {
		return ""
	}
	ms := (bound + time.Millisecond - 1) / time.Millisecond
	return "SELECT " + serverlimit.PostgresLeast("lock_timeout", int64(ms))
}

// Outcome returns what the scope recorded.
func (r *Request) Outcome() (took, waited, inPlace bool) {
	return r.took.Load(), r.waited.Load(), r.inPlace.Load()
}

type key struct{}

// With returns a context that asks the transaction scope an attempt runs
// in to take the lock r names.
func With(ctx context.Context, r *Request) context.Context {
	return context.WithValue(ctx, key{}, r)
}

// From returns the request ctx carries, or nil.
func From(ctx context.Context) *Request {
	r, _ := ctx.Value(key{}).(*Request)
	return r
}

// PostgresTry and PostgresWait are the statements a PostgreSQL scope runs
// where the lock tables are missing (docs/backends.md §1.13): the first
// tries the advisory lock without waiting and reports the transaction's
// isolation level; the second waits for it.
const (
	PostgresTry  = "SELECT pg_try_advisory_xact_lock($1), current_setting('transaction_isolation')"
	PostgresWait = "SELECT pg_advisory_xact_lock($1)"
)

// The PostgreSQL coordinator where the lock tables exist: LOCK TABLE, as
// the transaction's first statement, takes no snapshot, so it waits for
// the holder in place at every isolation level, and the statements after
// it see what the holder committed (docs/backends.md §1.14). A key locks
// one of PostgresTables empty tables, the one PostgresTable names; COMMIT
// or ROLLBACK releases it. The tables are created by pgxdb's, sqldb's and
// gormdb's CreateHotSpotLocks ([PostgresCreate]); without them a scope
// takes the advisory lock.
const (
	// PostgresTables is how many lock tables there are: two HotSpots
	// whose keys share a table order each other's attempts, which is
	// correct but orders more than it must.
	PostgresTables = 16
	// PostgresLockMode is the mode of the lock: EXCLUSIVE conflicts with
	// itself and with every mode but ACCESS SHARE, so that reading the
	// (empty) table is never blocked.
	PostgresLockMode = "EXCLUSIVE"
)

// PostgresLocks returns the statements that take the lock of key, for an
// attempt with keys (Request.Keys), as the first statements of a
// transaction, and whether they lock the keys. Without keys, or with keys
// on more than MaxStripes stripes, it is PostgresLock(key) alone. With
// keys, key's table is locked IN ROW SHARE MODE, which conflicts with
// EXCLUSIVE but not with itself, and each key's stripe, one of the other
// PostgresTables-1 tables, IN EXCLUSIVE MODE: attempts whose keys fall on
// different stripes do not wait for each other, an attempt without keys
// waits for all of them and they for it. The tables are locked in the
// order of their numbers, whichever HotSpot's key or stripe each is for,
// and each once, in the strongest mode the attempt needs: every
// transaction that takes these locks takes them in the same order, so
// they form no cycle among themselves. Consecutive keys, negative ones
// too, fall on different stripes, up to PostgresTables-1 of them. The
// stripes are the tables of other HotSpots' keys too: a stripe that is
// another HotSpot's table orders that HotSpot's attempts while it is held
// (correct, and more than it must).
func PostgresLocks(key int64, keys []int64) ([]string, bool) {
	if len(keys) == 0 {
		return []string{PostgresLock(key)}, false
	}
	const share, exclusive = 1, 2
	var modes [PostgresTables]uint8
	spot := uint64(key) % PostgresTables
	stripes := 0
	for _, k := range keys {
		i := (spot + 1 + uint64(((k%(PostgresTables-1))+(PostgresTables-1))%(PostgresTables-1))) % PostgresTables
		if modes[i] == 0 {
			stripes++
		}
		modes[i] = exclusive
	}
	if stripes > MaxStripes {
		return []string{PostgresLock(key)}, false
	}
	modes[spot] = share
	stmts := make([]string, 0, stripes+1)
	for i, m := range modes {
		switch m {
		case share:
			stmts = append(stmts, postgresShareLocks[i])
		case exclusive:
			stmts = append(stmts, postgresLocks[i])
		}
	}
	return stmts, true
}

// MaxStripes is the most stripes an attempt locks one by one. An attempt
// whose keys fall on more takes its HotSpot's lock exclusively, as one
// without keys does: it would lock most of the stripes anyway (on
// PostgreSQL most of the lock tables, which are other HotSpots' too), and
// on MySQL and MariaDB the optimizer reads a long list of ids by a scan of
// the whole table, which would lock every row of it, the HotSpot's own
// included (docs/backends.md §3.14).
const MaxStripes = 4

// PostgresShareMode is the mode in which an attempt with keys locks its
// HotSpot's table: it conflicts with PostgresLockMode and not with itself.
const PostgresShareMode = "ROW SHARE"

var postgresShareLocks = func() (locks [PostgresTables]string) {
	for i := range locks {
		locks[i] = "LOCK TABLE " + postgresTables[i] + " IN " + PostgresShareMode + " MODE"
	}
	return locks
}()

// PostgresTableNames returns the names of the lock tables.
func PostgresTableNames() []string { return append([]string(nil), postgresTables[:]...) }

// PostgresTable returns the name of the lock table of key.
func PostgresTable(key int64) string { return postgresTables[uint64(key)%PostgresTables] }

// PostgresLock returns the statement that locks key's table.
func PostgresLock(key int64) string { return postgresLocks[uint64(key)%PostgresTables] }

var postgresTables, postgresLocks = func() (names, locks [PostgresTables]string) {
	for i := range names {
		names[i] = "dbop_hotspot_lock_" + strconv.Itoa(i)
		locks[i] = "LOCK TABLE " + names[i] + " IN " + PostgresLockMode + " MODE"
	}
	return names, locks
}()

// PostgresCreate returns the statements that create the lock tables, if
// they do not exist, in the first schema of the search_path: one CREATE
// TABLE and one COMMENT per table, each a statement of its own, so that
// every driver can run them with or without parameters.
func PostgresCreate() []string {
	stmts := make([]string, 0, 2*PostgresTables)
	for _, name := range postgresTables {
		stmts = append(stmts,
			"CREATE TABLE IF NOT EXISTS "+name+" ()",
			"COMMENT ON TABLE "+name+" IS 'dbop.HotSpot''s lock: never written, locked IN "+PostgresLockMode+" MODE for the length of a transaction'")
	}
	return stmts
}

// The MySQL and MariaDB coordinator: neither has a transaction-scoped
// advisory lock (GET_LOCK's locks belong to the session and outlive the
// transaction on a pooled connection), so the lock is a row of
// MySQLTable locked with SELECT … FOR UPDATE, which InnoDB releases at
// COMMIT or ROLLBACK. A locking read reads the latest committed rows and
// takes no snapshot, so the transaction's later reads see the holder's
// writes at every isolation level (docs/backends.md §3.13). The table is
// created by mysqldb.CreateHotSpotLocks; without it, transactions go on
// uncoordinated.
const (
	MySQLTable  = "dbop_hotspot_locks"
	MySQLCreate = "CREATE TABLE IF NOT EXISTS " + MySQLTable + " (id BIGINT NOT NULL PRIMARY KEY) ENGINE=InnoDB"
	MySQLLock   = "SELECT id FROM " + MySQLTable + " WHERE id = ? FOR UPDATE"
	// MySQLShare locks a HotSpot's row for an attempt with keys, which
	// then locks its keys' rows (MySQLKeyRow) with MySQLKeysLock.
	MySQLShare = "SELECT id FROM " + MySQLTable + " WHERE id = ? LOCK IN SHARE MODE"
	// MySQLStripes is how many rows of MySQLTable a HotSpot's keys fall on:
	// attempts whose keys fall on different rows run side by side across
	// processes. The first attempt with keys that finds one missing adds
	// them all.
	MySQLStripes = 256
)

// MySQLKeyRow returns the id of the row of MySQLTable that stands for key
// k of the HotSpot whose own row is spot: one of MySQLStripes rows per
// HotSpot, consecutive keys on different rows, spread over the ids by a
// mixing function so that they meet neither a HotSpot's own row nor
// another HotSpot's stripes but by a 64-bit coincidence.
func MySQLKeyRow(spot, k int64) int64 {
	x := uint64(spot) ^ (uint64(k)%MySQLStripes+1)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return int64(x)
}

// mySQLKeysLock returns the statement that locks the rows of keys of the
// HotSpot spot (MySQLKeyRow) and counts those that exist, and its
// arguments, the rows' ids, sorted and distinct; nil when they are more
// than MaxStripes. InnoDB reads a short list of primary-key values as
// ranges, in ascending order, and locks the rows as it reads them, so that
// every transaction locks them in the same order.
func mySQLKeysLock(spot int64, keys []int64) (string, []any) {
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, MySQLKeyRow(spot, k))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > MaxStripes {
		return "", nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	marks := "?" + strings.Repeat(", ?", len(ids)-1)
	return "SELECT COUNT(*) FROM " + MySQLTable + " WHERE id IN (" + marks + ") FOR UPDATE", args
}

// mySQLStripeRows returns the ids of all the stripes of the HotSpot spot,
// for the statement that adds them.
func mySQLStripeRows(spot int64) []any {
	ids := make([]any, MySQLStripes)
	for k := range ids {
		ids[k] = MySQLKeyRow(spot, int64(k))
	}
	return ids
}

// mySQLAdd returns the statement that adds the rows of n ids, those that
// exist left as they are.
func mySQLAdd(n int) string {
	return "INSERT IGNORE INTO " + MySQLTable + " (id) VALUES (?)" + strings.Repeat(", (?)", n-1)
}

type spotKey struct{}

// WithSpot returns a context that tells the scopes an attempt runs in
// that it belongs to the hot spot key, without asking for the lock: a
// scope that chooses among the nodes of a cluster (mysqldb.NodeSet) then
// begins it on the node every process chooses for key, so that the hot
// spot's writers meet on one node, whose row locks order them, instead of
// failing each other at certification (docs/backends.md §7.2).
func WithSpot(ctx context.Context, key int64) context.Context {
	return context.WithValue(ctx, spotKey{}, key)
}

// Spot returns the hot spot an attempt belongs to: the key of the
// Request ctx carries, else the one WithSpot put on it.
func Spot(ctx context.Context) (int64, bool) {
	if r := From(ctx); r != nil {
		return r.Key, true
	}
	k, ok := ctx.Value(spotKey{}).(int64)
	return k, ok
}

type serverKey struct{}

// The keys of an attempt's Request, hot spot and server deadline belong
// to that attempt (package attempt).
func (key) AttemptScoped()       {}
func (spotKey) AttemptScoped()   {}
func (serverKey) AttemptScoped() {}

var _ = []attempt.Scoped{key{}, spotKey{}, serverKey{}}

// WithServerDeadline returns a context that asks the transaction scope an
// attempt runs in to have the server end the attempt's statements by at:
// the scopes that derive server-side limits from a deadline
// (resolve.ServerLimits) use at where it is earlier than the context's own
// deadline less their margin. A dbop.HotSpot bounds an attempt's lock
// waits this way, and sets the context's deadline well after at, so that
// the server's error (which keeps the connection) comes first and the
// context (which makes the driver close it) is only the backstop.
func WithServerDeadline(ctx context.Context, at time.Time) context.Context {
	return context.WithValue(ctx, serverKey{}, at)
}

// ServerDeadline returns the deadline WithServerDeadline put on ctx.
func ServerDeadline(ctx context.Context) (time.Time, bool) {
	at, ok := ctx.Value(serverKey{}).(time.Time)
	return at, ok
}

// Create returns the statements that create the lock tables of a
// PostgreSQL server (postgres true) or of MySQL and MariaDB, each to be
// run on its own.
func Create(postgres bool) []string {
	if postgres {
		return PostgresCreate()
	}
	return []string{MySQLCreate}
}

// MaxMargin is the most of the time left on a context that LimitFor keeps
// for the client: the server's limit fires this long before the context's
// deadline at most. MarginFraction is the share of the time left it keeps
// when that is less.
//
// The margin must cover what separates the server's timer from the
// client's: the statement's trip to the server (the server's timer starts
// when it reads the statement), the timer's own lateness, and the error's
// trip back. benchmarks/resolve_test.go measures it
// (BenchmarkServerTimeoutOvershoot, BenchmarkDeadlineMargin; saved in
// benchmarks/results/resolve-margin.txt, discussed in docs/ambiguity.md):
// on a local server the error arrives a median 0.4–0.6 ms after the limit,
// but on a machine loaded several times over its cores the 99th
// percentile reached tens of milliseconds, and with deadlines of 50 ms or
// less the context then often wins. 50 ms leaves room for a network and
// for such stalls on long deadlines; 10 % keeps short deadlines useful. A
// context that wins costs the connection and the attempt, never an
// ambiguous COMMIT: COMMIT runs without the caller's cancellation.
//
// The limit is derived once, when the attempt begins, and applies to each
// statement from its own start: a statement that starts late in the
// attempt gets more time than is left, and a slow one may still be ended
// by the context.
const (
	MaxMargin      = 50 * time.Millisecond
	MarginFraction = 10
	// MinLimit is the smallest limit worth setting: below it the context
	// ends the statement anyway.
	MinLimit = time.Millisecond
)

// LimitFor returns the server-side limit for left, the time left before a
// context's deadline: left less the smaller of a tenth of it and
// MaxMargin; ok is false below MinLimit. The adapters set it
// (resolve.ServerLimits), and dbop's deadlines use it to recognise the
// server's limit firing in an attempt's error.
func LimitFor(left time.Duration) (limit time.Duration, ok bool) {
	limit = left - min(left/MarginFraction, MaxMargin)
	if limit < MinLimit {
		return 0, false
	}
	return limit, true
}

// CallSiteKey names a lock by the place in the code that asked for it: the
// function (qualified by its package path) and the line skip frames above
// CallSiteKey's caller (0: that caller itself), hashed with what (the API
// that was called, "dbop.HotSpot", "pgxdb.ShareCommits"). Every process
// running the same build computes the same key, and so takes the same
// lock; two calls at different places take different ones.
func CallSiteKey(skip int, what string) int64 {
	pc, _, line, ok := runtime.Caller(skip + 1)
	name := "?"
	if f := runtime.FuncForPC(pc); ok && f != nil {
		name = f.Name()
	}
	h := fnv.New64a()
	h.Write([]byte(what + " " + name + ":" + strconv.Itoa(line)))
	return int64(h.Sum64())
}
