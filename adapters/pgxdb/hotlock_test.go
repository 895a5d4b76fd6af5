package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// When a dbop.HotSpot asks for its lock (internal/hotlock), InTx takes it
// before fn runs, and waits for it while another process's transaction
// holds it; the attempt then commits, once, on top of the holder's write.
// With CreateHotSpotLocks's tables the lock is LOCK TABLE, which takes no
// snapshot and waits in place at every isolation level (docs/backends.md
// §1.14). Without them it is the transaction-scoped advisory lock (the
// first transaction finds the table missing and begins again), and a
// REPEATABLE READ or SERIALIZABLE transaction begins again after the wait,
// since its snapshot predates the holder's commit and its write would fail
// with 40001 (§1.13).
func TestHotSpotLockWaitsForAnotherProcess(t *testing.T) {
	for _, tables := range []bool{true, false} {
		name := map[bool]string{true: "tables", false: "advisory"}[tables]
		t.Run(name, func(t *testing.T) {
			pool := newPool(t, 4, inSchema(t, "pgxdb_hotlock_"+name, tables))
			hotLockWait(t, pool, tables)
		})
	}
}

func hotLockWait(t *testing.T, pool *pgxpool.Pool, tables bool) {
	createTable(t, pool, "pgxdb_hotlock", "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO pgxdb_hotlock VALUES (1, 0)")
	for _, iso := range []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.RepeatableRead, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) {
			key := rand.Int64()
			before := queryInt(t, pool, "SELECT v FROM pgxdb_hotlock WHERE id = 1")

			// The other process: holds the lock and has written the row.
			holder, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(context.Background())
			if tables {
				exec(t, holder, "LOCK TABLE "+hotlock.PostgresTable(key)+" IN EXCLUSIVE MODE")
			} else {
				exec(t, holder, "SELECT pg_advisory_xact_lock($1)", key)
			}
			exec(t, holder, "UPDATE pgxdb_hotlock SET v = v + 1 WHERE id = 1")

			req := &hotlock.Request{Key: key}
			ctx := hotlock.With(t.Context(), req)
			begins := 0
			done := make(chan error, 1)
			go func() {
				_, err := pgxdb.Do(countBegins{pool, &begins}, func(ctx context.Context, tx pgx.Tx) error {
					var v int
					if err := tx.QueryRow(ctx, "SELECT v FROM pgxdb_hotlock WHERE id = 1").Scan(&v); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "UPDATE pgxdb_hotlock SET v = $1 WHERE id = 1", v+1)
					return err
				}, pgxdb.Isolation(iso)).Run(ctx)
				done <- err
			}()
			waitForLockWaiter(t, pool, key, tables)
			// A lock taken in place reports its time, which must show
			// the wait.
			const held = 20 * time.Millisecond
			time.Sleep(held)
			if err := holder.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the attempt that waited for the lock: %v", err)
			}
			if got, want := queryInt(t, pool, "SELECT v FROM pgxdb_hotlock WHERE id = 1"), before+2; got != want {
				t.Errorf("v = %d, want %d: the holder's write and the attempt's, each once", got, want)
			}
			// The advisory lock is tried first, so the scope knows it
			// waited; a lock table's wait is the HotSpot's to judge, over
			// many statements, by the time the scope reports.
			took, waited, inPlace := req.Outcome()
			if wantInPlace := tables || iso == pgx.ReadCommitted; !took || waited == tables || inPlace != wantInPlace {
				t.Errorf("request outcome took=%v waited=%v inPlace=%v, want true, %v, %v", took, waited, inPlace, !tables, wantInPlace)
			}
			if d := req.LockTime(); tables && d < held {
				t.Errorf("the lock statement reported taking %v, want at least the %v it waited", d, held)
			}
			wantBegins := 1 // waits in place
			if !tables {
				wantBegins++ // the LOCK TABLE of the first found no table
				if iso != pgx.ReadCommitted {
					wantBegins++ // the snapshot of the second was stale
				}
			}
			if begins != wantBegins {
				t.Errorf("%d transactions begun, want %d", begins, wantBegins)
			}
		})
	}
}

// Uncontended, the lock is taken in the attempt's transaction and released
// with it; without a request, or in a transaction begun inside fn (the
// request is claimed), none is taken. Both locks wait in place here: LOCK
// TABLE at every level, the advisory lock under the server's default
// isolation, READ COMMITTED.
func TestHotSpotLockHeldForTheTransactionOnly(t *testing.T) {
	for _, tables := range []bool{true, false} {
		name := map[bool]string{true: "tables", false: "advisory"}[tables]
		t.Run(name, func(t *testing.T) {
			pool := newPool(t, 4, inSchema(t, "pgxdb_hotlock_held_"+name, tables))
			key := rand.Int64()
			query, arg := `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
				AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, any(key)
			if tables {
				query, arg = `SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND relation = $1::regclass AND mode = 'ExclusiveLock'`, hotlock.PostgresTable(key)
			}
			held := func(ctx context.Context, tx pgx.Tx) int {
				var n int
				if err := tx.QueryRow(ctx, query+" AND granted AND pid = pg_backend_pid()", arg).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			req := &hotlock.Request{Key: key}
			var outer, inner int
			_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				outer = held(ctx, tx)
				_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
					inner = held(ctx, tx)
					return nil
				}).Run(ctx)
				return err
			}).Run(hotlock.With(t.Context(), req))
			if err != nil {
				t.Fatal(err)
			}
			if outer != 1 || inner != 0 {
				t.Errorf("lock held %d times in the attempt's transaction and %d in one begun inside it; want 1 and 0", outer, inner)
			}
			// Waited is exact for the advisory lock (it is tried first); a
			// lock table's is never recorded (the HotSpot judges its time).
			if took, waited, inPlace := req.Outcome(); !took || waited || !inPlace {
				t.Errorf("request outcome took=%v waited=%v inPlace=%v, want true, false, true", took, waited, inPlace)
			}
			if n := queryInt(t, pool, query, arg); n != 0 {
				t.Errorf("%d locks left after the transaction", n)
			}
			_, err = pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				outer = held(ctx, tx)
				return nil
			}).Run(t.Context())
			if err != nil || outer != 0 {
				t.Errorf("without a request: lock held %d times, err %v; want none", outer, err)
			}
		})
	}
}

// countBegins counts the transactions begun on a pool.
type countBegins struct {
	pool interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}
	n *int
}

func (c countBegins) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	*c.n++
	return c.pool.BeginTx(ctx, opts)
}

// waitForLockWaiter waits until a backend waits for the lock of key: its
// lock table (tables) or its advisory lock.
func waitForLockWaiter(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, key int64, tables bool) {
	t.Helper()
	query, arg := `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid`, any(key)
	if tables {
		query, arg = `SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND relation = $1::regclass`, hotlock.PostgresTable(key)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(t.Context(), query, arg).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nobody waited for the lock within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inSchema returns a pool modifier that makes the pool's connections use
// schema, which it creates empty, with CreateHotSpotLocks's tables when
// tables is set: tests of other packages share the database, and a lock
// table in their schema would change what their HotSpots take.
func inSchema(t *testing.T, schema string, tables bool) func(*pgxpool.Config) {
	t.Helper()
	admin := newPool(t, 1)
	ident := pgx.Identifier{schema}.Sanitize()
	exec(t, admin, "DROP SCHEMA IF EXISTS "+ident+" CASCADE")
	exec(t, admin, "CREATE SCHEMA "+ident)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	if tables {
		conn, err := admin.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		exec(t, conn, "SET search_path TO "+ident)
		if err := pgxdb.CreateHotSpotLocks(t.Context(), conn); err != nil {
			t.Fatal(err)
		}
		exec(t, conn, "RESET search_path")
	}
	return func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["search_path"] = schema }
}

// A role without the right to lock the tables (42501: LOCK … IN EXCLUSIVE
// MODE needs UPDATE, DELETE or TRUNCATE, docs/backends.md §1.14) gets the
// advisory lock instead: the first transaction of the operation is refused
// and begins again, and later ones take the advisory lock at once.
func TestHotSpotLockTablesRefused(t *testing.T) {
	const schema, role = "pgxdb_hotlock_refused", "pgxdb_hotlock_noright"
	inSchema(t, schema, true) // the tables, created by the test's role
	admin := newPool(t, 1)
	exec(t, admin, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '"+role+"') THEN CREATE ROLE "+role+" LOGIN; END IF; END $$")
	exec(t, admin, "GRANT USAGE ON SCHEMA "+schema+" TO "+role)
	exec(t, admin, "CREATE TABLE "+schema+".pgxdb_hotlock_refused (id int PRIMARY KEY)")
	exec(t, admin, "GRANT SELECT, INSERT ON "+schema+".pgxdb_hotlock_refused TO "+role)
	for _, name := range pgxdb.HotSpotLockTables() {
		exec(t, admin, "GRANT SELECT ON "+schema+"."+name+" TO "+role)
	}
	pool := newPool(t, 2, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.User = role
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
	})
	begins := 0
	insert := pgxdb.Do(countBegins{pool, &begins}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO pgxdb_hotlock_refused VALUES ((SELECT count(*) FROM pgxdb_hotlock_refused) + 1)")
		return err
	})
	for i, want := range []int{2, 3} {
		req := &hotlock.Request{Key: rand.Int64()}
		if _, err := insert.Run(hotlock.With(t.Context(), req)); err != nil {
			t.Fatalf("operation %d: %v", i+1, err)
		}
		if took, _, inPlace := req.Outcome(); !took || !inPlace {
			t.Errorf("operation %d: took=%v inPlace=%v, want the advisory lock, in place under READ COMMITTED", i+1, took, inPlace)
		}
		if begins != want {
			t.Errorf("after operation %d: %d transactions begun, want %d", i+1, begins, want)
		}
	}
	if n := queryInt(t, admin, "SELECT count(*) FROM "+schema+".pgxdb_hotlock_refused"); n != 2 {
		t.Errorf("%d rows, want 2: each operation's, once", n)
	}
	var direct *pgconn.PgError
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "LOCK TABLE "+pgxdb.HotSpotLockTables()[0]+" IN EXCLUSIVE MODE")
		return err
	}).Run(t.Context())
	if !errors.As(err, &direct) || direct.Code != "42501" {
		t.Errorf("LOCK TABLE as the role without UPDATE: %v, want 42501", err)
	}
}

// On pgx's own handles the lock table's LOCK travels in the BEGIN round
// trip, and the attempt runs no statement of the lock's own. Where the
// tables are missing, that batch fails with 42P01 after BEGIN: a pool
// destroys the connection, a *pgx.Conn of the caller's is rolled back and
// serves on, and the operation takes the advisory lock with statements of
// their own from then on (a REPEATABLE READ transaction that waited for
// it begins again, §1.13). The statements are checked one by one.
func TestHotSpotLockInBegin(t *testing.T) {
	for _, c := range []struct {
		name   string
		tables bool
		conn   bool // a *pgx.Conn, not the pool
		iso    pgx.TxIsoLevel
		want   func(lock string) []string // the attempt's statements, the holder committing during the first wait
	}{
		{"tables/pool/serializable", true, false, pgx.Serializable, func(lock string) []string {
			return []string{"begin isolation level serializable; " + lock, "SELECT v FROM pgxdb_hotlock WHERE id = 1", "UPDATE pgxdb_hotlock SET v = $1 WHERE id = 1", "commit"}
		}},
		{"tables/conn/read committed", true, true, pgx.ReadCommitted, func(lock string) []string {
			return []string{"begin isolation level read committed; " + lock, "SELECT v FROM pgxdb_hotlock WHERE id = 1", "UPDATE pgxdb_hotlock SET v = $1 WHERE id = 1", "commit"}
		}},
		{"advisory/pool/repeatable read", false, false, pgx.RepeatableRead, func(lock string) []string {
			return []string{"begin isolation level repeatable read; " + lock + " -> 42P01",
				"begin isolation level repeatable read", hotlock.PostgresTry, hotlock.PostgresWait, "rollback",
				"begin isolation level repeatable read", hotlock.PostgresTry,
				"SELECT v FROM pgxdb_hotlock WHERE id = 1", "UPDATE pgxdb_hotlock SET v = $1 WHERE id = 1", "commit"}
		}},
		{"advisory/conn/read committed", false, true, pgx.ReadCommitted, func(lock string) []string {
			return []string{"begin isolation level read committed; " + lock + " -> 42P01", "ROLLBACK",
				"begin isolation level read committed", hotlock.PostgresTry, hotlock.PostgresWait,
				"SELECT v FROM pgxdb_hotlock WHERE id = 1", "UPDATE pgxdb_hotlock SET v = $1 WHERE id = 1", "commit"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			schema := map[bool]string{true: "pgxdb_hotlock_begin_tables", false: "pgxdb_hotlock_begin_advisory"}[c.tables]
			inPool := inSchema(t, schema, c.tables)
			admin := newPool(t, 2, inPool)
			createTable(t, admin, "pgxdb_hotlock", "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO pgxdb_hotlock VALUES (1, 0)")
			log := &sqlLog{}
			var db pgxdb.Beginner = newPool(t, 2, inPool, traced(log))
			if c.conn {
				cfg, err := pgx.ParseConfig(admin.Config().ConnConfig.ConnString())
				if err != nil {
					t.Fatal(err)
				}
				cfg.RuntimeParams["search_path"] = schema
				cfg.Tracer = log
				conn, err := pgx.ConnectConfig(t.Context(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close(context.Background()) })
				db = conn
			}
			key := rand.Int64()
			lock := "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE"
			op := pgxdb.Do(db, func(ctx context.Context, tx pgx.Tx) error {
				var v int
				if err := tx.QueryRow(ctx, "SELECT v FROM pgxdb_hotlock WHERE id = 1").Scan(&v); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "UPDATE pgxdb_hotlock SET v = $1 WHERE id = 1", v+1)
				return err
			}, pgxdb.Isolation(c.iso))

			holder, err := admin.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(context.Background())
			if c.tables {
				exec(t, holder, lock)
			} else {
				exec(t, holder, "SELECT pg_advisory_xact_lock($1)", key)
			}
			exec(t, holder, "UPDATE pgxdb_hotlock SET v = v + 1 WHERE id = 1")
			req := &hotlock.Request{Key: key}
			done := make(chan error, 1)
			go func() {
				_, err := op.Run(hotlock.With(t.Context(), req))
				done <- err
			}()
			waitForLockWaiter(t, admin, key, c.tables)
			const held = 20 * time.Millisecond
			time.Sleep(held)
			if err := holder.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the attempt that waited for the lock: %v", err)
			}
			if v := queryInt(t, admin, "SELECT v FROM pgxdb_hotlock WHERE id = 1"); v != 2 {
				t.Errorf("v = %d, want 2: the holder's write and the attempt's, each once", v)
			}
			// The advisory lock, tried first, says it waited; a lock
			// table's statement reports its time.
			if took, waited, inPlace := req.Outcome(); !took || waited == c.tables || inPlace != (c.tables || c.iso == pgx.ReadCommitted) {
				t.Errorf("request outcome took=%v waited=%v inPlace=%v", took, waited, inPlace)
			}
			if d := req.LockTime(); c.tables && d < held {
				t.Errorf("the lock statement reported taking %v, want at least the %v it waited", d, held)
			}
			checkLog(t, c.want(lock), log.Log())

			// The operation remembers: uncontended, its next attempt takes
			// the same lock the same way, without the refused batch.
			log.Reset()
			if _, err := op.Run(hotlock.With(t.Context(), &hotlock.Request{Key: key})); err != nil {
				t.Fatal(err)
			}
			first := "begin isolation level " + string(c.iso) + "; " + lock
			if !c.tables {
				first = "begin isolation level " + string(c.iso)
			}
			if got := log.Log(); len(got) == 0 || got[0] != first {
				t.Errorf("the next operation began with %q, want %q", got, first)
			}
		})
	}
}

// A nil pool, typed or not, is an error naming the argument, not a panic.
func TestCreateHotSpotLocksNil(t *testing.T) {
	var pool *pgxpool.Pool
	for _, db := range []interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}{nil, pool} {
		if err := pgxdb.CreateHotSpotLocks(t.Context(), db); err == nil || err.Error() != "pgxdb: CreateHotSpotLocks: db is nil" {
			t.Errorf("%T: %v", db, err)
		}
	}
}

// dbop.HotSpot composed as a user writes it: after WithRetry, around InTx,
// with a retried savepoint step inside the transaction, on transfers that
// write two hot accounts in the transfer's order (so lock cycles), under
// READ COMMITTED and SERIALIZABLE, with the lock tables. Every transfer
// commits exactly once (balances sum to 0, one ledger row each, every
// balance equals its ledger net), and the lock travelled in BEGIN.
func TestHotSpotComposedWithTables(t *testing.T) {
	for _, iso := range []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) { composedTransfers(t, iso, 2, false, 1) })
	}
}

// The same with 4 accounts and each transfer's accounts as its
// dbop.HotSpotKeys: transfers of disjoint accounts may run side by side,
// and every invariant still holds.
func TestHotSpotKeysComposed(t *testing.T) {
	for _, iso := range []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) { composedTransfers(t, iso, 4, true, 1) })
	}
}

// Two HotSpots built at one place stand for two processes: each sees the
// other's attempts as another process's, and their attempts take the
// HotSpot's lock with a lock per key (the lock tables IN ROW SHARE MODE and
// IN EXCLUSIVE MODE). Every transfer lands once.
func TestHotSpotKeysComposedAcrossProcesses(t *testing.T) {
	for _, iso := range []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) {
			log := composedTransfers(t, iso, 4, true, 2)
			shared := 0
			for _, stmt := range log.Log() {
				if strings.Contains(stmt, "IN "+hotlock.PostgresShareMode+" MODE") {
					shared++
				}
			}
			if shared == 0 {
				t.Error("no transaction took the HotSpot's lock with a lock per key")
			}
		})
	}
}

// composedTransfers runs 8 workers × 25 transfers among accounts hot
// accounts through WithRetry, HotSpot and InTx at iso, with the accounts as
// HotSpotKeys when keyed, and checks the invariants. The workers share
// processes HotSpots built at one place, as processes would, and the
// statements are logged.
func composedTransfers(t *testing.T, iso pgx.TxIsoLevel, accounts int, keyed bool, processes int) *sqlLog {
	const workers, each = 8, 25
	inPool := inSchema(t, "pgxdb_hotlock_composed", true)
	admin := newPool(t, 2, inPool)
	rows := make([]string, accounts)
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, 0)", i+1)
	}
	createTable(t, admin, "pgxdb_hot_accounts", "id int PRIMARY KEY, balance bigint NOT NULL", "INSERT INTO pgxdb_hot_accounts VALUES "+strings.Join(rows, ", "))
	createTable(t, admin, "pgxdb_hot_ledger", "id int PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL")
	log := &sqlLog{}
	pool := newPool(t, workers, inPool, traced(log))
	hots := make([]dbop.Decorator, processes)
	for i := range hots {
		hots[i] = dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 50*time.Millisecond)), dbop.MaxAttempts(50)), dbop.HotSpot())
	}
	testdb.Transfers(t, workers, each, accounts, func(w int, tr testdb.Transfer) error {
		ctx := t.Context()
		if keyed {
			ctx = dbop.HotSpotKeys(ctx, int64(tr.From), int64(tr.To))
		}
		_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "UPDATE pgxdb_hot_accounts SET balance = balance - 1 WHERE id = $1", tr.From); err != nil {
				return err
			}
			// A step of its own, retried in a savepoint.
			_, err := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
				_, err := tx.Exec(ctx, "INSERT INTO pgxdb_hot_ledger VALUES ($1, $2, $3)", tr.ID, tr.From, tr.To)
				return struct{}{}, err
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), pgxdb.InSavepoint(tx)).Run(ctx)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "UPDATE pgxdb_hot_accounts SET balance = balance + 1 WHERE id = $1", tr.To)
			return err
		}, pgxdb.Isolation(iso)).With(hots[w%processes]).Run(ctx)
		return err
	})
	testdb.CheckLedger(t, workers*each, "pgxdb_hot_accounts", "pgxdb_hot_ledger", func(query string) (n int64, err error) {
		return n, admin.QueryRow(t.Context(), query).Scan(&n)
	})
	locked := 0
	for _, stmt := range log.Log() {
		if strings.HasPrefix(stmt, "begin") && strings.Contains(stmt, "LOCK TABLE dbop_hotspot_lock_") {
			locked++
		}
	}
	if !keyed && locked == 0 {
		t.Error("no transaction took the HotSpot's lock in its BEGIN")
	}
	t.Logf("%d of the transactions took the lock in BEGIN", locked)
	return log
}

// A writer of the hot rows that the HotSpot's lock does not order (here a
// worker whose pipeline has no HotSpot) forms lock cycles with the attempt
// that holds the lock. Holding it, an attempt waits only for such writers,
// so its lock waits after the lock are bounded (SET LOCAL lock_timeout in
// the BEGIN round trip, after the LOCK): a cycle ends at the bound, not a
// second later at the deadlock detector, while the wait for the lock
// itself stays unbounded. Before, the hot transfers waited 1–5 s. With
// each transfer's accounts as its keys too.
func TestHotSpotBoundsWaitsForWritersItsLockDoesNotOrder(t *testing.T) {
	for _, c := range []struct {
		name   string
		keyed  bool
		iso    pgx.TxIsoLevel
		tables bool // false: the advisory lock, the lock tables missing
	}{
		{"read_committed", false, pgx.ReadCommitted, true},
		{"serializable", false, pgx.Serializable, true},
		{"keys/read_committed", true, pgx.ReadCommitted, true},
		{"keys/serializable", true, pgx.Serializable, true},
		{"advisory/read_committed", false, pgx.ReadCommitted, false},
		{"advisory/serializable", false, pgx.Serializable, false},
	} {
		iso := c.iso
		t.Run(c.name, func(t *testing.T) {
			inPool := inSchema(t, "pgxdb_hotlock_outsider", c.tables)
			admin := newPool(t, 2, inPool)
			createTable(t, admin, "pgxdb_hot_accounts", "id int PRIMARY KEY, balance bigint NOT NULL", "INSERT INTO pgxdb_hot_accounts VALUES (1, 0), (2, 0), (3, 0), (4, 0)")
			createTable(t, admin, "pgxdb_hot_ledger", "id int PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL")
			log := &sqlLog{}
			pool := newPool(t, 10, inPool, traced(log))
			hotStatements, n := testdb.Outsider(t, 3*time.Second, 9, func(pipeline dbop.Decorator, tr testdb.Transfer, timed func(func() error) error) error {
				op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
					return timed(func() error {
						if _, err := tx.Exec(ctx, "UPDATE pgxdb_hot_accounts SET balance = balance - 1 WHERE id = $1", tr.From); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_hot_ledger VALUES ($1, $2, $3)", tr.ID, tr.From, tr.To); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, "UPDATE pgxdb_hot_accounts SET balance = balance + 1 WHERE id = $1", tr.To)
						return err
					})
				}, pgxdb.Isolation(iso))
				ctx := t.Context()
				if c.keyed {
					ctx = dbop.HotSpotKeys(ctx, int64(tr.From), int64(tr.To))
				}
				_, err := op.With(pipeline).Run(ctx)
				return err
			})
			testdb.CheckNoDetectorWaits(t, hotStatements)
			testdb.CheckLedger(t, n, "pgxdb_hot_accounts", "pgxdb_hot_ledger", func(query string) (n int64, err error) {
				return n, admin.QueryRow(t.Context(), query).Scan(&n)
			})
			// The bound follows the lock, in the BEGIN round trip. (An
			// attempt the HotSpot bounds as a whole sends none: the
			// limits its deadline derives, which follow the lock too,
			// bound its lock waits.)
			bounded := testdb.BoundsAfterLock(log.Log())
			if !c.tables {
				bounded = testdb.BoundsAfterAdvisoryLock(log.Log())
			}
			if bounded == 0 {
				t.Error("no transaction that took the lock bounded its lock waits after it")
			}
		})
	}
}

// Under REPEATABLE READ or SERIALIZABLE the advisory lock (the lock tables
// missing) is tried, waited for, and, since the try took the snapshot
// before the holder committed, the transaction rolls back and begins
// again (docs/backends.md §1.13). Rolling back gives the lock away: with
// other processes always queued for it, each wait ended in giving it to
// the next in line, and the attempt began again at the back of the queue,
// for good — a starved operation with no deadline. After waiting twice,
// the attempt goes on without the lock; the retry handles what it then
// meets.
func TestHotSpotAdvisoryLockDoesNotStarveABegunAgainAttempt(t *testing.T) {
	inPool := inSchema(t, "pgxdb_hotlock_starve", false)
	admin := newPool(t, 3, inPool)
	createTable(t, admin, "pgxdb_hotlock_starve_t", "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO pgxdb_hotlock_starve_t VALUES (1, 0)")
	pool := newPool(t, 2, inPool)
	key := rand.Int64()

	// Two rivals, as two other processes' attempts: one holds the
	// advisory lock for 5 ms at a time while the other waits for it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var turns atomic.Int64
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tx, err := admin.Begin(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				_, err = tx.Exec(context.Background(), "SELECT pg_advisory_xact_lock($1), pg_sleep(0.005)", key)
				if cerr := tx.Commit(context.Background()); err == nil {
					err = cerr
				}
				if err != nil {
					t.Error(err)
					return
				}
				turns.Add(1)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for turns.Load() < 10 {
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req := &hotlock.Request{Key: key}
	start := time.Now()
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE pgxdb_hotlock_starve_t SET v = v + 1 WHERE id = 1")
		return err
	}, pgxdb.Isolation(pgx.RepeatableRead)).Run(hotlock.With(ctx, req))
	took, waited, _ := req.Outcome()
	t.Logf("Run = %v after %v; took the lock %v, waited %v; the rivals took %d turns", err, time.Since(start).Round(time.Millisecond), took, waited, turns.Load())
	if err != nil {
		t.Fatalf("the attempt never ran: %v", err)
	}
	if !waited {
		t.Error("the attempt did not wait for the lock: the rivals never held it against it")
	}
	if v := queryInt(t, admin, "SELECT v FROM pgxdb_hotlock_starve_t WHERE id = 1"); v != 1 {
		t.Errorf("v = %d, want 1", v)
	}
}
