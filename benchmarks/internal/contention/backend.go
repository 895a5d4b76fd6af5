package contention

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	_ "github.com/go-sql-driver/mysql" // the database/sql driver of MariaDB and Galera
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Kind is the database the workers run against.
type Kind int

const (
	// Postgres: one PostgreSQL server through pgx and pgxdb.
	Postgres Kind = iota
	// MariaDB: one MariaDB server through database/sql, go-sql-driver and
	// sqldb with mysqldb.MariaDB.
	MariaDB
	// Galera: a MariaDB Galera cluster, one DSN per node; each process
	// spreads its workers over the nodes, each worker through a
	// mysqldb.NodeSet that prefers its own node, so transfers on different
	// nodes conflict at certification (docs/backends.md §7.1, §7.2); the
	// attempts a dbop.HotSpot admits begin on one node in every process.
	Galera
)

// Kinds lists the backends in the order the command runs them.
var Kinds = []Kind{Postgres, MariaDB, Galera}

func (k Kind) String() string {
	switch k {
	case Postgres:
		return "postgres"
	case MariaDB:
		return "mariadb"
	case Galera:
		return "galera"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ParseKind parses the name String returns.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown backend %q (want postgres, mariadb or galera)", s)
}

// Backend is a database to run against: its kind and DSNs (one, or one per
// Galera node).
type Backend struct {
	Kind Kind
	DSNs []string
}

func (b Backend) String() string {
	if b.Kind == Galera {
		return fmt.Sprintf("galera (%d nodes)", len(b.DSNs))
	}
	return b.Kind.String()
}

func (b Backend) statements() statements {
	s := newStatements(b.Kind == Postgres)
	if b.Kind != Postgres {
		s.limit = func(ms int64, stmt string) string {
			// MariaDB's max_statement_time bounds row-lock waits too, and
			// applies to one statement: nothing is left on the connection
			// (docs/backends.md §3.7).
			return fmt.Sprintf("SET STATEMENT max_statement_time=%g FOR %s", float64(ms)/1000, stmt)
		}
	}
	s.relative = b.Kind == Galera
	return s
}

// OpOptions are the options of DB.Op.
type OpOptions struct {
	LockTimeout time.Duration // the adapter's LockTimeout when positive
	// Standin says that the attempts carry the stand-in's limit (-limits
	// standin, serverLimits) for the transfer to set, not a deadline the
	// adapter derives limits from.
	Standin bool
	Share   bool // pgxdb.ShareCommits (PostgreSQL only)
}

// DB is what a worker runs transfers on.
type DB interface {
	// Attempt runs fn in one transaction: begin, fn, commit, or roll back
	// when fn fails. It is the building block of the strategies that are
	// not dbop's.
	Attempt(ctx context.Context, fn TxFunc) error
	// Op is dbop's one-transaction-per-run operation for the backend
	// (pgxdb.Do, or sqldb.Do with mysqldb.MariaDB), built with o.
	Op(fn TxFunc, o OpOptions) dbop.Op[struct{}]
	// Classifier is the backend's classifier, which the strategies that
	// are not dbop's use to tell conflicts from other errors.
	Classifier(err error) dbop.Verdict
}

// pools holds one process's connections: one pool, or one per Galera node.
type pools struct {
	pg     *pgxpool.Pool
	sqlDBs []*sql.DB
	dbs    []DB // one per worker
}

func (p *pools) Close() {
	if p.pg != nil {
		p.pg.Close()
	}
	for _, db := range p.sqlDBs {
		db.Close()
	}
}

// open opens exactly conns connections (per node on Galera), all
// established before the clock starts, and returns the DB of each of
// workers workers, which share them.
func (b Backend) open(ctx context.Context, v Variant, workers, conns int) (*pools, error) {
	p := &pools{}
	sqls := b.statements()
	if b.Kind == Postgres {
		pool, err := newPGPool(ctx, b.DSNs[0], conns)
		if err != nil {
			return nil, err
		}
		p.pg = pool
		iso := pgx.ReadCommitted
		if v.serializable() {
			iso = pgx.Serializable
		}
		db := pgDB{pool: pool, iso: iso, sql: sqls}
		for range workers {
			p.dbs = append(p.dbs, db)
		}
		return p, nil
	}
	nodes := min(len(b.DSNs), workers)
	iso := sql.LevelReadCommitted
	if v.serializable() {
		iso = sql.LevelSerializable
	}
	for i := range nodes {
		share := max(conns/nodes, 1)
		if i < conns%nodes {
			share++
		}
		if b.Kind == Galera {
			// Any node may serve every worker: a HotSpot's attempts all
			// begin on one node (mysqldb.NodeSet).
			share = conns
		}
		db, err := newSQLPool(ctx, b.DSNs[i], share)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.sqlDBs = append(p.sqlDBs, db)
		if b.Kind == Galera {
			if err := awaitNode(ctx, db); err != nil {
				p.Close()
				return nil, fmt.Errorf("node %d: %w", i+1, err)
			}
		}
	}
	for w := range workers {
		var db sqldb.Beginner = p.sqlDBs[w%nodes]
		if b.Kind == Galera {
			// Each worker prefers its own node, as a service spreads its
			// load over a cluster; a mysqldb.NodeSet begins the attempts a
			// dbop.HotSpot admits on the HotSpot's node instead.
			db = mysqldb.Nodes(append(slices.Clone(p.sqlDBs[w%nodes:]), p.sqlDBs[:w%nodes]...)...)
		}
		p.dbs = append(p.dbs, sqlDB{db: db, iso: iso, sql: sqls})
	}
	return p, nil
}

// newPGPool opens a pool of exactly workers connections.
func newPGPool(ctx context.Context, dsn string, workers int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	pc.MaxConns = int32(workers)
	pc.MinConns = int32(workers)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	conns := make([]*pgxpool.Conn, 0, workers)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range workers {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("warm the pool: %w", err)
		}
		conns = append(conns, c)
	}
	return pool, nil
}

// newSQLPool opens a database/sql pool of exactly n connections.
func newSQLPool(ctx context.Context, dsn string, n int) (*sql.DB, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("warm the pool: %w", err)
		}
		conns = append(conns, c)
	}
	return db, nil
}

// awaitNode waits until a Galera node has applied everything the cluster
// committed before, the reset of the tables included: a causal read
// (wsrep_sync_wait, docs/backends.md §7.4) on one connection, set back
// before the connection returns to the pool.
func awaitNode(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET SESSION wsrep_sync_wait = 1`); err != nil {
		return err
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM bench_accounts`).Scan(&n); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `SET SESSION wsrep_sync_wait = 0`)
	return err
}

// pgDB runs transfers through pgx.
type pgDB struct {
	pool *pgxpool.Pool
	iso  pgx.TxIsoLevel
	sql  statements
}

type pgTx struct{ tx pgx.Tx }

func (t pgTx) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}

func (t pgTx) Exec(ctx context.Context, q string, args ...any) error {
	_, err := t.tx.Exec(ctx, q, args...)
	return err
}

// limitBeginner begins transactions on a pool with the per-attempt limits
// the context carries (see serverLimits): what issue 13's InTx does with
// the time left on the context, SET LOCAL statement_timeout and
// lock_timeout in the same round trip as BEGIN, so that the server fails
// the statement and the connection stays (docs/backends.md §1.4, §1.7).
type limitBeginner struct{ pool *pgxpool.Pool }

func (b limitBeginner) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if ms, ok := limitOf(ctx); ok {
		q := "begin"
		if opts.IsoLevel != "" {
			q += " isolation level " + string(opts.IsoLevel)
		}
		opts.BeginQuery = fmt.Sprintf("%s; SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = %d", q, ms, ms)
	}
	return b.pool.BeginTx(ctx, opts)
}

// Attempt begins with the isolation level alone, or, for PGLock, with its
// lock statement after BEGIN in the same round trip.
func (d pgDB) Attempt(ctx context.Context, fn TxFunc) error {
	opts := pgx.TxOptions{IsoLevel: d.iso}
	if lock, ok := ctx.Value(pgLockKey{}).(string); ok {
		opts.BeginQuery = pgLockBegin(d.iso, lock)
	}
	ctx = context.WithoutCancel(ctx)
	return pgx.BeginTxFunc(ctx, d.pool, opts, func(tx pgx.Tx) error { return fn(ctx, pgTx{tx}) })
}

// Op begins its transactions on the pool itself, as an application does,
// so that pgxdb sends a dbop.HotSpot's lock in the BEGIN round trip (it can
// only on pgx's own handles); only with the stand-in's limits (standin)
// does it begin through limitBeginner, which sets them. Until 2026-12-05
// every attempt began through limitBeginner, which cost each attempt that
// took the HotSpot's lock a round trip of its own that an application does
// not pay.
func (d pgDB) Op(fn TxFunc, o OpOptions) dbop.Op[struct{}] {
	opts := []pgxdb.TxOption{pgxdb.Isolation(d.iso)}
	if o.LockTimeout > 0 {
		opts = append(opts, pgxdb.LockTimeout(o.LockTimeout))
	}
	if o.Share {
		opts = append(opts, pgxdb.ShareCommits())
	}
	var db pgxdb.Beginner = d.pool
	if o.Standin {
		db = limitBeginner{d.pool}
	}
	return pgxdb.Do(db, func(ctx context.Context, tx pgx.Tx) error { return fn(ctx, pgTx{tx}) }, opts...)
}

func (pgDB) Classifier(err error) dbop.Verdict { return pgxdb.Classifier(err) }

// sqlDB runs transfers through database/sql and go-sql-driver.
type sqlDB struct {
	db  sqldb.Beginner
	iso sql.IsolationLevel
	sql statements
}

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := t.tx.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

func (t sqlTx) Exec(ctx context.Context, q string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, q, args...)
	return err
}

func (d sqlDB) Attempt(ctx context.Context, fn TxFunc) error {
	ctx = context.WithoutCancel(ctx)
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{Isolation: d.iso})
	if err != nil {
		return err
	}
	if err := fn(ctx, sqlTx{tx}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Op ignores standin: the transfer itself sets the stand-in's limits on
// MariaDB (statements.limit).
func (d sqlDB) Op(fn TxFunc, o OpOptions) dbop.Op[struct{}] {
	lockTimeout := o.LockTimeout
	opts := []sqldb.TxOption{sqldb.Isolation(d.iso)}
	if lockTimeout > 0 {
		opts = append(opts, sqldb.LockTimeout(lockTimeout))
	}
	return sqldb.Do(d.db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error { return fn(ctx, sqlTx{tx}) }, opts...)
}

func (sqlDB) Classifier(err error) dbop.Verdict { return mysqldb.Classifier(err) }

// admin is the connection that serialises runs, resets the tables and
// checks the invariants.
type admin interface {
	reset(ctx context.Context, accounts int, lockTables bool) error
	check(ctx context.Context, wantRows, wantSum int64) Invariants
	close()
}

// lockKey serialises runs of the benchmark against one database: two runs at
// once would share the tables and break each other's invariants.
const lockKey = 0x6462_6f70_6265_6e63 // "dbopbenc"

// connectAdmin connects to the first DSN and takes the run lock.
func (b Backend) connectAdmin(ctx context.Context) (admin, error) {
	if b.Kind == Postgres {
		conn, err := pgx.Connect(ctx, b.DSNs[0])
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("advisory lock: %w", err)
		}
		return pgAdmin{conn}, nil
	}
	db, err := sql.Open("mysql", b.DSNs[0])
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	var got int
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK('dbop_bench_contention', 3600)`).Scan(&got); err != nil || got != 1 {
		conn.Close()
		db.Close()
		return nil, fmt.Errorf("GET_LOCK: %v (got %d)", err, got)
	}
	return &sqlAdmin{db: db, conn: conn, galera: b.Kind == Galera}, nil
}

const pgSchema = `
CREATE TABLE IF NOT EXISTS bench_accounts (
	id      integer PRIMARY KEY,
	balance bigint  NOT NULL
);
CREATE TABLE IF NOT EXISTS bench_ledger (
	transfer_id bigint  PRIMARY KEY,
	from_id     integer NOT NULL,
	to_id       integer NOT NULL,
	amount      bigint  NOT NULL
);`

type pgAdmin struct{ conn *pgx.Conn }

func (a pgAdmin) close() {
	ctx := context.Background()
	a.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(lockKey))
	a.conn.Close(ctx)
}

// reset creates the tables if needed and empties them: accounts
// accounts (the hot ones and the cold ones), numbered from 1, all at balance 0, and an empty ledger. With
// lockTables it creates dbop.HotSpot's lock tables, as an application's
// migration would (pgxdb.CreateHotSpotLocks); without, it drops them.
func (a pgAdmin) reset(ctx context.Context, accounts int, lockTables bool) error {
	if _, err := a.conn.Exec(ctx, pgSchema); err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	if lockTables {
		if err := pgxdb.CreateHotSpotLocks(ctx, a.conn); err != nil {
			return err
		}
	} else {
		for _, name := range pgxdb.HotSpotLockTables() {
			if _, err := a.conn.Exec(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
				return fmt.Errorf("drop lock tables: %w", err)
			}
		}
	}
	if _, err := a.conn.Exec(ctx, `TRUNCATE bench_accounts, bench_ledger`); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if _, err := a.conn.Exec(ctx,
		`INSERT INTO bench_accounts (id, balance) SELECT g, 0 FROM generate_series(1, $1::int) AS g`,
		accounts); err != nil {
		return fmt.Errorf("insert accounts: %w", err)
	}
	if _, err := a.conn.Exec(ctx, `VACUUM ANALYZE bench_accounts`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

func (a pgAdmin) check(ctx context.Context, wantRows, wantSum int64) Invariants {
	return checkWith(wantRows, wantSum, func(dst ...any) error {
		return a.conn.QueryRow(ctx, checkSQL).Scan(dst...)
	})
}

type sqlAdmin struct {
	db     *sql.DB
	conn   *sql.Conn
	galera bool
}

func (a *sqlAdmin) close() {
	ctx := context.Background()
	a.conn.ExecContext(ctx, `DO RELEASE_LOCK('dbop_bench_contention')`)
	a.conn.Close()
	a.db.Close()
}

func (a *sqlAdmin) reset(ctx context.Context, accounts int, lockTables bool) error {
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS bench_accounts (id int PRIMARY KEY, balance bigint NOT NULL) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS bench_ledger (transfer_id bigint PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL, amount bigint NOT NULL) ENGINE=InnoDB`,
		`TRUNCATE TABLE bench_accounts`,
		`TRUNCATE TABLE bench_ledger`,
	} {
		if _, err := a.conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	// dbop.HotSpot coordinates processes through this table's rows
	// (mysqldb.CreateHotSpotLocks), as an application's migration would
	// create it; without lockTables, it is dropped.
	if lockTables {
		if err := mysqldb.CreateHotSpotLocks(ctx, a.conn); err != nil {
			return err
		}
	} else if _, err := a.conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+mysqldb.HotSpotLockTable); err != nil {
		return fmt.Errorf("drop lock table: %w", err)
	}
	rows := make([]string, accounts)
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, 0)", i+1)
	}
	if _, err := a.conn.ExecContext(ctx, `INSERT INTO bench_accounts (id, balance) VALUES `+strings.Join(rows, ", ")); err != nil {
		return fmt.Errorf("insert accounts: %w", err)
	}
	if a.galera {
		// Wait until every node has applied the reset: the first
		// transfers must not read a stale table (docs/backends.md §7.4).
		if _, err := a.conn.ExecContext(ctx, `SET SESSION wsrep_sync_wait = 1`); err != nil {
			return err
		}
	}
	return nil
}

func (a *sqlAdmin) check(ctx context.Context, wantRows, wantSum int64) Invariants {
	return checkWith(wantRows, wantSum, func(dst ...any) error {
		return a.conn.QueryRowContext(ctx, checkSQL).Scan(dst...)
	})
}
