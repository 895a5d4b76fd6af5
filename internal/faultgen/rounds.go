package faultgen

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Proxied reports whether worker w of a generated round goes through the
// round's fault proxy: workers 2 and 5 do, the others connect directly.
func Proxied(w int) bool { return w == 2 || w == 5 }

// TxOptions maps a drawn TxOpts onto one adapter's transaction options,
// each field building one. A field the adapter has no option for is nil:
// a TxOpts asking for it then panics, so the Backend must not offer it
// (Backend.Limits).
type TxOptions[O any] struct {
	LockTimeout, StatementTimeout func(time.Duration) O
	ClassifyBy                    func(dbop.Classifier) O
	ResolveCommit, ReadOnly       func() O
	Isolation                     func(sql.IsolationLevel) O
}

// Of returns o's options, with be's per-attempt limits.
func (a TxOptions[O]) Of(o TxOpts, be *Backend) []O {
	var opts []O
	switch o.Limit {
	case "lock":
		opts = append(opts, a.LockTimeout(be.Lock))
	case "statement":
		opts = append(opts, a.StatementTimeout(be.Statement))
	}
	if o.Classify >= 0 {
		opts = append(opts, a.ClassifyBy(genClassifiers[o.Classify].fn))
	}
	if o.Resolve {
		opts = append(opts, a.ResolveCommit())
	}
	if o.ReadOnly {
		opts = append(opts, a.ReadOnly())
	}
	switch o.Iso {
	case "repeatable read":
		opts = append(opts, a.Isolation(sql.LevelRepeatableRead))
	case "serializable":
		opts = append(opts, a.Isolation(sql.LevelSerializable))
	}
	return opts
}

// sqlOptions are sqldb's transaction options.
var sqlOptions = TxOptions[sqldb.TxOption]{
	LockTimeout:      sqldb.LockTimeout,
	StatementTimeout: sqldb.StatementTimeout,
	ClassifyBy:       func(c dbop.Classifier) sqldb.TxOption { return sqldb.ClassifyBy(c) },
	ResolveCommit:    sqldb.ResolveCommit,
	ReadOnly:         sqldb.ReadOnly,
	Isolation:        sqldb.Isolation,
}

// SQLTxOpts are o as sqldb's options.
func SQLTxOpts(o TxOpts, be *Backend) []sqldb.TxOption { return sqlOptions.Of(o, be) }

// pgxOptions are pgxdb's transaction options.
var pgxOptions = TxOptions[pgxdb.TxOption]{
	LockTimeout:      func(d time.Duration) pgxdb.TxOption { return pgxdb.LockTimeout(d) },
	StatementTimeout: func(d time.Duration) pgxdb.TxOption { return pgxdb.StatementTimeout(d) },
	ClassifyBy:       func(c dbop.Classifier) pgxdb.TxOption { return pgxdb.ClassifyBy(c) },
	ResolveCommit:    pgxdb.ResolveCommit,
	ReadOnly:         pgxdb.ReadOnly,
	Isolation: func(l sql.IsolationLevel) pgxdb.TxOption {
		if l == sql.LevelSerializable {
			return pgxdb.Isolation(pgx.Serializable)
		}
		return pgxdb.Isolation(pgx.RepeatableRead)
	},
}

// PGRound is what a generated round on PostgreSQL prepares before the
// workers' pools are opened: the round's tables, with the clearing account,
// and the fault proxy. Every worker's connection must carry the
// application_name App, by which the injector finds the workers' backends.
type PGRound struct {
	DSN    string
	App    string
	Tables PGTables
	Proxy  *faultproxy.Proxy
	admin  *pgxpool.Pool
}

// NewPGRound prepares a PostgreSQL round, or skips t when no server is
// configured (see testdb).
func NewPGRound(t *testing.T, cfg RunConfig) *PGRound {
	t.Helper()
	dsn := testdb.Postgres(t)
	r := &PGRound{
		DSN:    dsn,
		App:    "dbop_fault_" + cfg.RunID,
		Tables: NewPGTables(cfg.RunID),
		admin:  PGPool(t, dsn, "dbop_fault_admin_"+cfg.RunID, 3, nil),
	}
	r.Tables.Create(t, r.admin)
	if _, err := r.admin.Exec(t.Context(), "INSERT INTO "+r.Tables.Accounts+" VALUES ($1, 0)", Clearing); err != nil {
		t.Fatal(err)
	}
	r.Proxy = faultproxy.Start(t, PGTarget(t, dsn))
	return r
}

// ConnConfig returns worker w's connection settings: App's
// application_name, and for a Proxied worker the proxy's address in clear
// text, so that the proxy sees the statements.
func (r *PGRound) ConnConfig(t *testing.T, w int) *pgx.ConnConfig {
	t.Helper()
	cc, err := pgx.ParseConfig(r.DSN)
	if err != nil {
		t.Fatalf("parse %s: %v", testdb.PostgresEnv, err)
	}
	cc.RuntimeParams["application_name"] = r.App
	if Proxied(w) {
		port, _ := strconv.ParseUint(r.Proxy.Port(), 10, 16)
		cc.Host, cc.Port, cc.Fallbacks, cc.TLSConfig = r.Proxy.Host(), uint16(port), nil, nil
	}
	return cc
}

// Backend returns the round's Backend without its InTx: its SQL, written
// with PostgreSQL's $n placeholders, or with ? ones (GORM's) when question
// is set, and its limits.
func (r *PGRound) Backend(name string, question bool) *Backend {
	ph := func(q string) string {
		if question {
			return q
		}
		var b strings.Builder
		n := 0
		for _, c := range q {
			if c == '?' {
				n++
				b.WriteString("$" + strconv.Itoa(n))
				continue
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	return &Backend{
		Name:            name,
		Insert:          ph("INSERT INTO " + r.Tables.Ledger + " (k, src, dst, amount) VALUES (?, ?, ?, ?)"),
		InsertIdem:      ph("INSERT INTO " + r.Tables.Ledger + " (k, src, dst, amount) VALUES (?, ?, ?, ?) ON CONFLICT (k) DO NOTHING"),
		Update:          ph("UPDATE " + r.Tables.Accounts + " SET balance = balance + ? WHERE id = ?"),
		Read:            ph("SELECT balance FROM " + r.Tables.Accounts + " WHERE id = ?"),
		Dup:             func(err error) bool { e, ok := errors.AsType[*pgconn.PgError](err); return ok && e.Code == "23505" },
		Lock:            50 * time.Millisecond,
		Statement:       50 * time.Millisecond,
		AttemptTimeouts: []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second},
	}
}

// Done returns what a Setup returns for the round once be's InTx is set:
// be, the injector of TestFaultPostgresTransfers, the generated rounds'
// minimums, and the round's finish, which calls closers (closing the
// workers' pools), waits for the workers' backends to exit and reads the
// final state with a connection of its own.
func (r *PGRound) Done(t *testing.T, st *Stats, be *Backend, closers []func()) (*Backend, InjectFunc, map[string]int, func() (map[string]LedgerRow, []int64)) {
	const fired = "proxy cut after commit (fired)"
	return be, NewPGInjector(r.admin, r.Proxy, r.App, r.Tables.Accounts), GeneratedMinimums(PGFaultMinimums, fired), func() (map[string]LedgerRow, []int64) {
		st.Fault(fired, r.Proxy.Cuts())
		for _, c := range closers {
			c()
		}
		WaitForBackendsGone(t, r.admin, r.App)
		return r.Tables.ReadState(t, r.DSN)
	}
}

// SharedCommitMinimum is the least SharedCommit a PostgreSQL round through
// pgxdb must count in a run of defaultDuration or longer: every round has
// two core sharing workers (drawSharing). In 40 rounds of 6 s under -race
// (seeds 31000–31019 and 52000–52019) it counted 73–1054 transfers, and
// 89–535 in the second twenty; the minimum catches a suite whose
// transactions stopped sharing (a pool or a ShareCommits call per worker
// counts 0) without flaking on a slow round.
const SharedCommitMinimum = 20

// SetupPostgresPgx prepares a PostgreSQL round through pgxdb, with one
// pool per worker (a transfer's All runs two transactions at once), and
// one for the transactions that share commits (TxOpts.Share), direct or
// through the proxy as the round drew (TxOpts.ShareProxied; both are
// opened, and only the one used connects): attempts share a transaction
// only on the same Beginner, so every sharing worker's whole transactions
// run on it, and their other transactions (a ReadOnly read) on their own
// pools. Every sharing transaction takes the same ShareCommits option,
// from one call: the attempts of operations built at different calls
// never share.
func SetupPostgresPgx(t *testing.T, cfg RunConfig, st *Stats) (*Backend, InjectFunc, map[string]int, func() (map[string]LedgerRow, []int64)) {
	r := NewPGRound(t, cfg)
	be := r.Backend("PostgreSQL via pgxdb", false)
	be.Cockroach, be.SavepointLock, be.Share = true, true, true
	be.CountMinimums = map[string]int{SharedCommit: SharedCommitMinimum}
	pools := make([]*pgxpool.Pool, NumWorkers)
	var closers []func()
	for w := range pools {
		var mod func(*pgxpool.Config)
		if Proxied(w) {
			mod = ThroughProxy(r.Proxy)
		}
		pools[w] = PGPool(t, r.DSN, r.App, 3, mod)
		closers = append(closers, pools[w].Close)
	}
	// A group of sharing attempts holds one connection for the
	// transaction in progress and one for each it is committing; a worker
	// whose options differ from the round's has a group of its own. Two
	// connections per worker, as many as a transfer's All holds at once.
	sharePools := [2]*pgxpool.Pool{
		PGPool(t, r.DSN, r.App, 2*NumWorkers, nil),
		PGPool(t, r.DSN, r.App, 2*NumWorkers, ThroughProxy(r.Proxy)),
	}
	for _, p := range sharePools {
		closers = append(closers, p.Close)
	}
	share := pgxdb.ShareCommits()
	be.InTx = func(w int, fn func(ctx context.Context, tx GenTx) (Result, error), o TxOpts) dbop.Op[Result] {
		txo := pgxOptions.Of(o, be)
		if o.Cockroach > 0 {
			txo = append(txo, pgxdb.CockroachRestart(dbop.MaxAttempts(o.Cockroach), dbop.OnRetry(st.OnRetry)))
		}
		pool := pools[w]
		if o.Share {
			txo = append(txo, share)
			pool = sharePools[0]
			if o.ShareProxied {
				pool = sharePools[1]
			}
		}
		return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (Result, error) { return fn(ctx, pgxGenTx{tx}) }, txo...)
	}
	be, inject, minimums, finish := r.Done(t, st, be, closers)
	return be, inject, minimums, func() (map[string]LedgerRow, []int64) {
		ledger, balances := finish()
		transfers, txs, most := r.Tables.SharedTransfers(t, r.DSN)
		st.Count(SharedCommit, transfers)
		t.Logf("shared commits: %d transfers committed in %d shared transactions, at most %d in one", transfers, txs, most)
		return ledger, balances
	}
}

// SetupPostgresSQL prepares a PostgreSQL round through sqldb on pgx's
// database/sql driver, with one pool per worker (sqldb's ResolveCommit
// asks on another of the pool's connections while it holds the first).
func SetupPostgresSQL(t *testing.T, cfg RunConfig, st *Stats) (*Backend, InjectFunc, map[string]int, func() (map[string]LedgerRow, []int64)) {
	r := NewPGRound(t, cfg)
	be := r.Backend("PostgreSQL via sqldb (pgx stdlib)", false)
	dbs := make([]*sql.DB, NumWorkers)
	var closers []func()
	for w := range dbs {
		db := stdlib.OpenDB(*r.ConnConfig(t, w))
		db.SetMaxOpenConns(3)
		t.Cleanup(func() { db.Close() })
		dbs[w] = db
		closers = append(closers, func() { db.Close() })
	}
	be.InTx = func(w int, fn func(ctx context.Context, tx GenTx) (Result, error), o TxOpts) dbop.Op[Result] {
		return sqldb.InTx(dbs[w], sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (Result, error) {
			return fn(ctx, SQLGenTx{tx, sqldb.Postgres})
		}, SQLTxOpts(o, be)...)
	}
	return r.Done(t, st, be, closers)
}

// MyRound is what a generated round on MariaDB prepares before the
// workers' pools are opened, as TestFaultMariaDBTransfers does: a database
// of its own with the accounts, the clearing account, the ledger and the
// commit markers, and the fault proxy.
type MyRound struct {
	Base  *mysql.Config // the server's, from the environment (testdb)
	DB    string        // the round's database
	Proxy *faultproxy.Proxy
	admin *sql.DB
	q     string // DB quoted
}

// NewMyRound prepares a MariaDB round, or skips t when no server is
// configured (see testdb).
func NewMyRound(t *testing.T, cfg RunConfig) *MyRound {
	t.Helper()
	base := MyServer(t)
	r := &MyRound{Base: base, DB: "dbop_fault_" + cfg.RunID, admin: OpenMy(t, base, 3)}
	r.q = MyRunDatabase(t, r.admin, r.DB)
	for id := range NumAccounts + 1 {
		if _, err := r.admin.ExecContext(t.Context(), "INSERT INTO "+r.q+".accounts VALUES (?, 0)", id); err != nil {
			t.Fatal(err)
		}
	}
	r.Proxy = faultproxy.Start(t, base.Addr)
	return r
}

// Config returns worker w's connection settings: the round's database,
// through the proxy for a Proxied worker.
func (r *MyRound) Config(w int) *mysql.Config {
	c := r.Base.Clone()
	c.DBName = r.DB
	if Proxied(w) {
		c.Addr = r.Proxy.Addr()
	}
	return c
}

// Backend returns the round's Backend without its InTx: its SQL and
// limits.
func (r *MyRound) Backend(name string) *Backend {
	return &Backend{
		Name:       name,
		Insert:     "INSERT INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)",
		InsertIdem: "INSERT IGNORE INTO ledger (k, src, dst, amount) VALUES (?, ?, ?, ?)",
		Update:     "UPDATE accounts SET balance = balance + ? WHERE id = ?",
		Read:       "SELECT balance FROM accounts WHERE id = ?",
		Dup:        func(err error) bool { e, ok := errors.AsType[*mysql.MySQLError](err); return ok && e.Number == 1062 },
		// innodb_lock_wait_timeout takes whole seconds; max_statement_time
		// fails a lock wait well before that.
		Lock:            time.Second,
		Statement:       250 * time.Millisecond,
		AttemptTimeouts: []time.Duration{300 * time.Millisecond, time.Second, 2 * time.Second},
	}
}

// Done is PGRound.Done for MariaDB, with the injector of
// TestFaultMariaDBTransfers; finish reads the final state with locking
// reads (see ReadMyState).
func (r *MyRound) Done(t *testing.T, st *Stats, be *Backend, closers []func()) (*Backend, InjectFunc, map[string]int, func() (map[string]LedgerRow, []int64)) {
	const fired = "proxy cut after COMMIT (fired)"
	return be, NewMyInjector(r.admin, r.Proxy, r.DB), GeneratedMinimums(MyFaultMinimums, fired), func() (map[string]LedgerRow, []int64) {
		st.Fault(fired, r.Proxy.Cuts())
		for _, c := range closers {
			c()
		}
		return ReadMyState(t, r.Base, r.q)
	}
}

// SetupMariaDB prepares a MariaDB round through sqldb, with HotSpot's
// lock table and one pool per worker.
func SetupMariaDB(t *testing.T, cfg RunConfig, st *Stats) (*Backend, InjectFunc, map[string]int, func() (map[string]LedgerRow, []int64)) {
	r := NewMyRound(t, cfg)
	dbs := make([]*sql.DB, NumWorkers)
	var closers []func()
	for w := range dbs {
		db := OpenMy(t, r.Config(w), 3)
		dbs[w] = db
		closers = append(closers, func() { db.Close() })
	}
	if err := mysqldb.CreateHotSpotLocks(t.Context(), dbs[0]); err != nil {
		t.Fatal(err)
	}
	be := r.Backend("MariaDB via sqldb")
	be.InTx = func(w int, fn func(ctx context.Context, tx GenTx) (Result, error), o TxOpts) dbop.Op[Result] {
		return sqldb.InTx(dbs[w], mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (Result, error) {
			return fn(ctx, SQLGenTx{tx, mysqldb.MariaDB})
		}, SQLTxOpts(o, be)...)
	}
	return r.Done(t, st, be, closers)
}
