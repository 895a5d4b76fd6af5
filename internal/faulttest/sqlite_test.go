package faulttest

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/dbop-go/dbop/internal/testdb"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite has no connection to kill, cancel or cut: the engine runs in the
// process. Its faults are those of concurrent writers and of interrupted
// statements, and the SQLite generated workload injects those:
//
//   - "write lock held": the injector holds the write lock (BEGIN
//     IMMEDIATE and a write) for 20–400 ms and commits, one at a time: a
//     worker's BEGIN IMMEDIATE or first write waits its busy_timeout and
//     fails with SQLITE_BUSY, and a deferred transaction that had read
//     before the commit fails its first write with SQLITE_BUSY_SNAPSHOT;
//   - "write committed": the injector commits a short write, which fails
//     the first write of every deferred transaction that read before it
//     with SQLITE_BUSY_SNAPSHOT;
//   - "statement interrupted": the injector cancels the context of one
//     statement a worker is running (found in liteInflight), which
//     modernc.org/sqlite turns into sqlite3_interrupt: SQLITE_INTERRUPT,
//     which rolls back the whole transaction when it stops a write (the
//     driver returns the context's error);
//   - "transfer cancelled": the injector cancels the context of one
//     transfer in flight, as a caller that gave up: whatever the transfer
//     was doing — a statement, BEGIN or COMMIT, a backoff, a wait for a
//     Bulkhead — stops, and what its caller is told must match the ledger.
//
// The workers themselves are concurrent writers too. Workers 2 and 5 run
// deferred transactions that read the ledger first (the "proxied" workers
// of the other backends), so that a write committed after that read meets
// them with SQLITE_BUSY_SNAPSHOT; the others take the write lock at BEGIN
// (_txlock=immediate, sqldb.SQLiteDSN's default).
//
// Besides the injector's own counts, liteGenTx counts the SQLite errors the
// workers' statements met ("… seen"), so that the minimums also fail a run
// whose faults stopped reaching the workers.

// liteFaultMinimums is how many times each kind of fault must fire, or be
// seen by the workers' statements, in a run of defaultDuration or longer
// (see faultgen.CheckFaults). A 6 s run gives the injector 60–77 rounds on two
// cores under -race (fewer than on the servers: the injector's one
// connection waits for its own hold of the write lock, and the interrupt
// looks for a statement for up to 30 ms); the minimums hold with 40, two
// decks, which deal the write lock 14 times (held one at a time), the
// committed write 6 (it waits for the injector's hold, so it fires when
// dealt), the transfer's cancellation 12 (a transfer is nearly always in
// flight) and the statement's interrupt 8 (it fires only when a statement
// is in flight, mostly one waiting for the write lock). BEGIN IMMEDIATE's
// SQLITE_BUSY is met by the library, not by a statement: the statements
// see BUSY in the deferred workers. In 6 runs of 6 s they fired: write
// lock held 11–15, write committed 8–11, transfer cancelled 18–23,
// statement interrupted 9–13, interrupted statement failed 4–10,
// SQLITE_BUSY seen 724–2984, SQLITE_BUSY_SNAPSHOT seen 30–251. Every
// minimum is at least 2, so that a kind that fired once or never fails the
// suite. The injector's own writes wait up to 100 ms for a worker's write
// lock (whileBusy): before, on a machine loaded by other work, a CI run
// saw the committed write fire 2 times and the held lock 3 in 49 rounds;
// with it, under two busy loops beside the race detector, 7 and 9–11 in
// 42–56 rounds. SQLITE_BUSY_SNAPSHOT is the deferred workers' own (2 and 5), and
// as frequent as the drawn pipelines let another write commit between a
// transaction's first read and its first write: a CI run whose deferred
// workers both drew a shared HotSpot, which ran them one at a time, saw
// none (seed 16906291841768494505; 3 in a replay). The injector now also
// deals, in 8 of its 100 slots, a write it commits right after such a
// transaction's read (overtakeSnapshot): 6 in that replay.
var liteFaultMinimums = map[string]int{
	"write lock held":              4,
	"write committed":              4,
	"statement interrupted":        2,
	"transfer cancelled":           4,
	"interrupted statement failed": 2,
	"SQLITE_BUSY seen":             2,
	"SQLITE_BUSY_SNAPSHOT seen":    2,
}

// liteInflight holds the cancel functions of the statements the workers
// are running, for the injector's "statement interrupted", or of the
// transfers, for "transfer cancelled".
type liteInflight struct {
	mu      sync.Mutex
	next    int
	cancels map[int]context.CancelCauseFunc
}

// errInterrupted is the cause the injector cancels a statement with,
// errCallerGaveUp a transfer's context.
var (
	errInterrupted  = errors.New("faulttest: statement interrupted by the injector")
	errCallerGaveUp = errors.New("faulttest: the caller gave up (the injector cancelled the transfer)")
)

func (f *liteInflight) start(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	f.mu.Lock()
	id := f.next
	f.next++
	f.cancels[id] = cancel
	f.mu.Unlock()
	return ctx, func() {
		f.mu.Lock()
		delete(f.cancels, id)
		f.mu.Unlock()
		cancel(nil)
	}
}

// interrupt cancels one statement in flight, chosen with rng, and reports
// whether there was one.
func (f *liteInflight) interrupt(rng *rand.Rand, cause error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cancels) == 0 {
		return false
	}
	ids := make([]int, 0, len(f.cancels))
	for id := range f.cancels {
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order is random: the rng chooses
	f.cancels[ids[rng.IntN(len(ids))]](cause)
	return true
}

// liteGenTx is a SQLite transaction as a generated leg uses it: each
// statement can be interrupted by the injector, and the SQLite errors the
// statements meet are counted.
type liteGenTx struct {
	faultgen.SQLGenTx
	inflight *liteInflight
	st       *faultgen.Stats
}

func (t liteGenTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	ctx, done := t.inflight.start(ctx)
	defer done()
	n, err := t.SQLGenTx.Exec(ctx, q, args...)
	t.seen(ctx, err)
	return n, err
}

func (t liteGenTx) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	ctx, done := t.inflight.start(ctx)
	defer done()
	v, err := t.SQLGenTx.QueryInt(ctx, q, args...)
	t.seen(ctx, err)
	return v, err
}

// seen counts err, the error of a statement run with ctx.
func (t liteGenTx) seen(ctx context.Context, err error) {
	if err == nil {
		return
	}
	if context.Cause(ctx) == errInterrupted {
		t.st.Fault("interrupted statement failed", 1)
	}
	switch code := sqliteCode(err); {
	case code == sqlite3.SQLITE_BUSY_SNAPSHOT:
		t.st.Fault("SQLITE_BUSY_SNAPSHOT seen", 1)
	case code&0xff == sqlite3.SQLITE_BUSY:
		t.st.Fault("SQLITE_BUSY seen", 1)
	}
}

// sqliteCode returns the extended result code of a modernc.org/sqlite
// error in err, or 0.
func sqliteCode(err error) int {
	if e, ok := errors.AsType[*sqlite.Error](err); ok {
		return e.Code()
	}
	return 0
}

// liteInjector causes the SQLite faults from a pool of its own.
type liteInjector struct {
	db        *sql.DB
	inflight  *liteInflight // the workers' statements
	transfers *liteInflight // the workers' transfers
	holding   atomic.Bool
	// overtake counts the snapshots the injector has been dealt to
	// overtake: the next deferred transaction that reads first has a
	// write committed under its snapshot (overtakeSnapshot).
	overtake atomic.Int32
}

// overtakeSnapshot commits a write from the injector's connection, if one
// was dealt, in a deferred transaction that has just read, so taken its
// snapshot: its first write then fails with SQLITE_BUSY_SNAPSHOT, which
// the deferred workers otherwise meet only as often as the drawn
// pipelines let another write commit between their read and their write
// (none in a CI run whose two deferred workers both shared a HotSpot that
// ran them one at a time). The statement's own error is counted where the
// worker meets it ("SQLITE_BUSY_SNAPSHOT seen").
func (in *liteInjector) overtakeSnapshot(ctx context.Context) {
	for {
		n := in.overtake.Load()
		if n <= 0 {
			return
		}
		if in.overtake.CompareAndSwap(n, n-1) {
			break
		}
	}
	_ = whileBusy(ctx, func() error {
		_, err := in.db.ExecContext(ctx, "UPDATE noise SET n = n + 1 WHERE id = 1")
		return err
	})
}

func (in *liteInjector) inject(ctx context.Context, slot int, rng *rand.Rand, spawn func(func() error)) (string, error) {
	switch {
	case slot < 35:
		return in.holdWriteLock(ctx, rng, spawn)
	case slot < 50:
		const kind = "write committed"
		err := whileBusy(ctx, func() error {
			_, err := in.db.ExecContext(ctx, "UPDATE noise SET n = n + 1 WHERE id = 1")
			return err
		})
		switch {
		case err == nil:
			return kind, nil
		case sqliteCode(err)&0xff == sqlite3.SQLITE_BUSY, ctx.Err() != nil:
			return "", nil // the write lock stayed held, or the run ended
		}
		return kind, err
	case slot < 58:
		// Dealt, not yet fired: a deferred transaction fires it
		// (overtakeSnapshot). At most a few wait at once.
		if in.overtake.Load() < 3 {
			in.overtake.Add(1)
		}
		return "", nil
	case slot < 80:
		if in.transfers.interrupt(rng, errCallerGaveUp) {
			return "transfer cancelled", nil
		}
		return "", nil
	default:
		// Statements are short unless they wait for the write lock:
		// look for one in flight for up to 30 ms.
		for range 30 {
			if in.inflight.interrupt(rng, errInterrupted) {
				return "statement interrupted", nil
			}
			select {
			case <-ctx.Done():
				return "", nil
			case <-time.After(time.Millisecond):
			}
		}
		return "", nil
	}
}

// whileBusy runs f until it does not fail with SQLITE_BUSY, for up to
// 100 ms: the injector's own writes wait for a worker's write lock, so that
// a fault dealt fires on a loaded machine too, where the workers hold the
// lock longer.
func whileBusy(ctx context.Context, f func() error) error {
	for range 20 {
		err := f()
		if err == nil || sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
	return f()
}

// holdWriteLock takes the write lock for 20–400 ms, writes, and commits.
// One is held at a time; the injector goes on meanwhile.
func (in *liteInjector) holdWriteLock(ctx context.Context, rng *rand.Rand, spawn func(func() error)) (string, error) {
	const kind = "write lock held"
	hold := time.Duration(20+rng.IntN(381)) * time.Millisecond
	if !in.holding.CompareAndSwap(false, true) {
		return "", nil
	}
	var tx *sql.Tx
	err := whileBusy(ctx, func() (err error) {
		tx, err = in.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: _txlock=immediate
		return err
	})
	if err != nil {
		in.holding.Store(false)
		if sqliteCode(err)&0xff == sqlite3.SQLITE_BUSY || ctx.Err() != nil {
			return "", nil
		}
		return kind, err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE noise SET n = n + 1 WHERE id = 1"); err != nil {
		tx.Rollback()
		in.holding.Store(false)
		return kind, err
	}
	spawn(func() error {
		defer in.holding.Store(false)
		time.Sleep(hold)
		return tx.Commit()
	})
	return kind, nil
}

// setupLiteGenerated prepares a SQLite round: a database file of its own
// in WAL mode, one pool per worker, deferred transactions that read first
// for workers 2 and 5, and the injector.
func setupLiteGenerated(t *testing.T, cfg faultgen.RunConfig, st *faultgen.Stats) (*faultgen.Backend, faultgen.InjectFunc, map[string]int, func() (map[string]faultgen.LedgerRow, []int64)) {
	path := testdb.SQLiteFile(t)
	open := func(maxConns int, opts ...sqldb.SQLiteOption) *sql.DB {
		db, err := sql.Open("sqlite", sqldb.SQLiteDSN(path, opts...))
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(maxConns)
		t.Cleanup(func() { db.Close() })
		return db
	}
	admin := open(1)
	for _, stmt := range []string{
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE ledger (k TEXT PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL, amount INTEGER NOT NULL)",
		"CREATE TABLE noise (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
		"INSERT INTO noise VALUES (1, 0)",
	} {
		if _, err := admin.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	for id := range faultgen.NumAccounts + 1 {
		if _, err := admin.ExecContext(t.Context(), "INSERT INTO accounts VALUES (?, 0)", id); err != nil {
			t.Fatal(err)
		}
	}
	inflight := &liteInflight{cancels: map[int]context.CancelCauseFunc{}}
	transfers := &liteInflight{cancels: map[int]context.CancelCauseFunc{}}
	dbs := make([]*sql.DB, faultgen.NumWorkers)
	for w := range dbs {
		// busy_timeout 200 ms: past most of the injector's holds of the
		// write lock, and LockTimeout (be.lock) short of all of them.
		opts := []sqldb.SQLiteOption{sqldb.SQLiteBusyTimeout(200 * time.Millisecond)}
		if w == 2 || w == 5 {
			opts = append(opts, sqldb.SQLiteTxLock("deferred"))
		}
		dbs[w] = open(3, opts...)
	}
	be := &faultgen.Backend{
		Name:       "SQLite via sqldb (modernc.org/sqlite)",
		Insert:     "INSERT INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)",
		InsertIdem: "INSERT INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?) ON CONFLICT (k) DO NOTHING",
		Update:     "UPDATE accounts SET balance = balance + ? WHERE id = ?",
		Read:       "SELECT balance FROM accounts WHERE id = ?",
		Dup: func(err error) bool {
			return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		},
		Lock: 10 * time.Millisecond,
		// SQLite has no statement timeout (sqldb.StatementTimeout panics
		// with the SQLite dialect); dbop.WithTimeout interrupts instead.
		Limits:          []string{"", "lock"},
		AttemptTimeouts: []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, time.Second},
		Routes:          [2]string{"deferred (reads first)", "immediate"},
		Caller:          transfers.start,
	}
	// The injector waits 100 ms for the write lock and otherwise lets the
	// round go: a worker holds it, which is contention enough.
	inj := &liteInjector{db: open(1, sqldb.SQLiteBusyTimeout(100*time.Millisecond)), inflight: inflight, transfers: transfers}
	be.InTx = func(w int, fn func(ctx context.Context, tx faultgen.GenTx) (faultgen.Result, error), o faultgen.TxOpts) dbop.Op[faultgen.Result] {
		readFirst := (w == 2 || w == 5) && !o.ReadOnly
		return sqldb.InTx(dbs[w], sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (faultgen.Result, error) {
			gtx := liteGenTx{faultgen.SQLGenTx{Tx: tx, Dialect: sqldb.SQLite}, inflight, st}
			if readFirst {
				// The transaction's snapshot starts here: a write
				// committed before its first write fails that write with
				// SQLITE_BUSY_SNAPSHOT.
				if _, err := gtx.QueryInt(ctx, "SELECT count(*) FROM ledger"); err != nil {
					return faultgen.Result{}, err
				}
				inj.overtakeSnapshot(ctx)
			}
			return fn(ctx, gtx)
		}, faultgen.SQLTxOpts(o, be)...)
	}
	return be, inj.inject, liteFaultMinimums, func() (map[string]faultgen.LedgerRow, []int64) {
		for _, db := range dbs {
			db.Close()
		}
		return readLiteState(t, path)
	}
}

// readLiteState reads the ledger and the balances in one transaction of a
// pool of its own, once every worker's pool is closed.
func readLiteState(t *testing.T, path string) (map[string]faultgen.LedgerRow, []int64) {
	t.Helper()
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	ledger, balances := faultgen.ScanState(t, tx, "SELECT k, src, dst, amount FROM ledger", "SELECT id, balance FROM accounts")
	if len(balances) > faultgen.NumAccounts+1 {
		t.Fatalf("account %d: no such account", len(balances)-1)
	}
	return ledger, balances
}

// TestFaultGeneratedSQLite is TestFaultGeneratedPostgresPgx on SQLite
// (modernc.org/sqlite) through sqldb, with the faults SQLite has: the
// write lock held and writes committed by another connection (SQLITE_BUSY,
// SQLITE_BUSY_SNAPSHOT), and statements interrupted through their context
// (SQLITE_INTERRUPT). It needs no server and always runs.
func TestFaultGeneratedSQLite(t *testing.T) { faultgen.RunGenerated(t, setupLiteGenerated) }
