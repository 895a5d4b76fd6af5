package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// hotLockCase is one backend of TestHotSpotLockWaitsForAnotherProcess: how
// another process holds a HotSpot's lock, and how to tell that the attempt
// waits for it.
type hotLockCase struct {
	name    string
	open    func(t *testing.T) *sql.DB
	dialect sqldb.Dialect
	// hold takes the lock of key: the statement and its argument.
	hold func(key int64) (string, any)
	// waiting counts the sessions waiting for the lock of key; nil where
	// the server does not tell without reading its process list
	// (MariaDB's waiter waits in the optimizer's const-row read,
	// "Statistics", before InnoDB lists it), and the test waits 300 ms
	// after the attempt began instead.
	waiting func(key int64) (string, any)
	update  string // writes v ($1 or ?)
	begins  map[sql.IsolationLevel]int
	inPlace map[sql.IsolationLevel]bool
}

// When a dbop.HotSpot asks for its lock (internal/hotlock), InTx takes it
// before fn runs: on PostgreSQL one of CreateHotSpotLocks's tables with
// LOCK TABLE, or without them a transaction-scoped advisory lock; on
// MariaDB a row of mysqldb.CreateHotSpotLocks's table locked FOR UPDATE.
// Held by another process's transaction, the attempt waits for it and then
// commits on top of the holder's write, once. LOCK TABLE and MariaDB's
// locking read take no snapshot, and the transaction goes on
// (docs/backends.md §1.14, §3.13); after the advisory lock a REPEATABLE
// READ or SERIALIZABLE transaction begins again, since its snapshot
// predates the holder's commit (§1.13). Without the tables, the first
// transaction of the operation finds them missing and begins again.
func TestHotSpotLockWaitsForAnotherProcess(t *testing.T) {
	everyLevel := func(v bool) map[sql.IsolationLevel]bool {
		return map[sql.IsolationLevel]bool{sql.LevelReadCommitted: v, sql.LevelRepeatableRead: v, sql.LevelSerializable: v}
	}
	for _, c := range []hotLockCase{{
		name:    "postgres-tables",
		open:    func(t *testing.T) *sql.DB { return postgresInSchema(t, "sqldb_hotlock_tables", true) },
		dialect: sqldb.Postgres,
		hold: func(key int64) (string, any) {
			return "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE", nil
		},
		waiting: func(key int64) (string, any) {
			return "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND relation = $1::regclass", hotlock.PostgresTable(key)
		},
		update:  "UPDATE sqldb_hotlock SET v = $1 WHERE id = 1",
		begins:  map[sql.IsolationLevel]int{sql.LevelReadCommitted: 1, sql.LevelRepeatableRead: 1, sql.LevelSerializable: 1},
		inPlace: everyLevel(true),
	}, {
		name:    "postgres-advisory",
		open:    func(t *testing.T) *sql.DB { return postgresInSchema(t, "sqldb_hotlock_advisory", false) },
		dialect: sqldb.Postgres,
		hold:    func(key int64) (string, any) { return "SELECT pg_advisory_xact_lock($1)", key },
		waiting: func(key int64) (string, any) {
			return "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = ($1::bigint & 4294967295)::oid", key
		},
		update:  "UPDATE sqldb_hotlock SET v = $1 WHERE id = 1",
		begins:  map[sql.IsolationLevel]int{sql.LevelReadCommitted: 2, sql.LevelRepeatableRead: 3, sql.LevelSerializable: 3},
		inPlace: map[sql.IsolationLevel]bool{sql.LevelReadCommitted: true},
	}, {
		name: "mariadb",
		open: func(t *testing.T) *sql.DB {
			db := openMariaDB(t)
			if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
				t.Fatal(err)
			}
			return db
		},
		dialect: mysqldb.MariaDB,
		hold:    func(key int64) (string, any) { return "SELECT id FROM dbop_hotspot_locks WHERE id = ? FOR UPDATE", key },
		update:  "UPDATE sqldb_hotlock SET v = ? WHERE id = 1",
		begins:  map[sql.IsolationLevel]int{sql.LevelReadCommitted: 1, sql.LevelRepeatableRead: 1, sql.LevelSerializable: 1},
		inPlace: everyLevel(true),
	}} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			table(t, db, "sqldb_hotlock", "(id int PRIMARY KEY, v int NOT NULL)")
			mustExec(t, db, "INSERT INTO sqldb_hotlock VALUES (1, 0)")
			for _, iso := range []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable} {
				t.Run(iso.String(), func(t *testing.T) { hotLockWait(t, db, c, iso) })
			}
		})
	}
}

// heldFor is how long hotLockWait's holder keeps the lock once the attempt
// waits for it (MariaDB: once the attempt began).
const heldFor = 20 * time.Millisecond

func hotLockWait(t *testing.T, db *sql.DB, c hotLockCase, iso sql.IsolationLevel) {
	key := rand.Int64()
	if c.name == "mariadb" {
		mustExec(t, db, "INSERT IGNORE INTO dbop_hotspot_locks (id) VALUES (?)", key)
	}
	before := scalar[int](t, db, "SELECT v FROM sqldb_hotlock WHERE id = 1")
	holder, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if query, arg := c.hold(key); arg == nil {
		mustExec(t, holder, query)
	} else {
		mustExec(t, holder, query, arg)
	}
	mustExec(t, holder, "UPDATE sqldb_hotlock SET v = v + 1 WHERE id = 1")

	req := &hotlock.Request{Key: key}
	begins := 0
	begun := make(chan struct{}, 4)
	done := make(chan error, 1)
	go func() {
		_, err := sqldb.InTx(countingBeginner{db, &begins, begun}, c.dialect, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
			var v int
			if err := tx.QueryRowContext(ctx, "SELECT v FROM sqldb_hotlock WHERE id = 1").Scan(&v); err != nil {
				return struct{}{}, err
			}
			_, err := tx.ExecContext(ctx, c.update, v+1)
			return struct{}{}, err
		}, sqldb.Isolation(iso)).Run(hotlock.With(t.Context(), req))
		done <- err
	}()
	if c.waiting == nil {
		<-begun
		time.Sleep(300 * time.Millisecond)
	} else {
		eventually(t, "the attempt waits for the lock", func() bool {
			query, arg := c.waiting(key)
			return scalar[int](t, db, query, arg) > 0
		})
		// A lock taken in place reports its time, which must show the
		// wait.
		time.Sleep(heldFor)
	}
	releaseTheWaiter(t, db, holder, done, "sqldb_hotlock", before)
	// The advisory lock is tried first, so the scope knows it waited; a
	// lock taken with one statement that waits in place reports the
	// statement's time, for the HotSpot to judge over many.
	wantInPlace := c.inPlace[iso]
	timed := c.name != "postgres-advisory"
	if took, waited, inPlace := req.Outcome(); !took || waited == timed || inPlace != wantInPlace {
		t.Errorf("request outcome took=%v waited=%v inPlace=%v, want true, %v, %v", took, waited, inPlace, !timed, wantInPlace)
	}
	if d := req.LockTime(); timed && d < heldFor {
		t.Errorf("the lock statement reported taking %v, want at least the %v it waited", d, heldFor)
	}
	if want := c.begins[iso]; begins != want {
		t.Errorf("%d transactions begun, want %d", begins, want)
	}
}

// Without mysqldb.CreateHotSpotLocks's table, a MariaDB transaction asked
// for the lock goes on uncoordinated, and commits.
func TestHotSpotLockWithoutTableGoesOn(t *testing.T) {
	db := openMariaDB(t)
	c := conn(t, db)
	mustExec(t, c, "CREATE DATABASE IF NOT EXISTS dbop_hotlock_none")
	mustExec(t, c, "USE dbop_hotlock_none")
	mustExec(t, c, "DROP TABLE IF EXISTS dbop_hotspot_locks")
	mustExec(t, c, "CREATE TABLE IF NOT EXISTS sqldb_hotlock_none (id int PRIMARY KEY)")
	req := &hotlock.Request{Key: 1}
	_, err := sqldb.InTx(c, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
		_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_hotlock_none VALUES (1)")
		return struct{}{}, err
	}).Run(hotlock.With(t.Context(), req))
	if err != nil {
		t.Fatalf("without the lock table: %v", err)
	}
	if n := scalar[int](t, c, "SELECT count(*) FROM sqldb_hotlock_none"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
	if took, _, _ := req.Outcome(); took {
		t.Error("the lock was reported taken without its table")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.ExecContext(ctx, "DROP DATABASE dbop_hotlock_none")
}

// countingBeginner counts the transactions begun on a pool.
type countingBeginner struct {
	db    *sql.DB
	n     *int
	begun chan<- struct{} // told of each
}

func (b countingBeginner) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	*b.n++
	tx, err := b.db.BeginTx(ctx, opts)
	select {
	case b.begun <- struct{}{}:
	default:
	}
	return tx, err
}

// postgresInSchema returns a pool whose connections use schema, which it
// creates empty, with CreateHotSpotLocks's tables when tables is set:
// tests of other packages share the database, and a lock table in their
// schema would change what their HotSpots take.
func postgresInSchema(t *testing.T, schema string, tables bool) *sql.DB {
	t.Helper()
	admin := openPostgres(t)
	mustExec(t, admin, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	mustExec(t, admin, "CREATE SCHEMA "+schema)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	db := openPostgres(t, "search_path="+schema)
	if tables {
		if err := sqldb.CreateHotSpotLocks(t.Context(), db, sqldb.Postgres); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// CreateHotSpotLocks needs nothing on SQLite, refuses a nil db elsewhere,
// and panics on a Dialect that is not one, as InTx does.
func TestCreateHotSpotLocksArguments(t *testing.T) {
	if err := sqldb.CreateHotSpotLocks(t.Context(), nil, sqldb.SQLite); err != nil {
		t.Errorf("SQLite: %v, want nil", err)
	}
	if err := sqldb.CreateHotSpotLocks(t.Context(), nil, sqldb.Postgres); err == nil || err.Error() != "sqldb: CreateHotSpotLocks: db is nil" {
		t.Errorf("nil db: %v", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "sqldb: CreateHotSpotLocks:") {
			t.Errorf("zero Dialect: recovered %v, want a panic naming CreateHotSpotLocks", r)
		}
	}()
	sqldb.CreateHotSpotLocks(t.Context(), nil, sqldb.Dialect{})
}

// releaseTheWaiter checks that the attempt whose end done reports still
// waits, commits holder, and checks that the attempt then succeeded and
// that row 1 of table shows both writes, each once: before+2.
func releaseTheWaiter(t *testing.T, db *sql.DB, holder *sql.Tx, done <-chan error, table string, before int) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the attempt ended while the lock was held: %v", err)
	default:
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the attempt that waited for the lock: %v", err)
	}
	if got, want := scalar[int](t, db, "SELECT v FROM "+table+" WHERE id = 1"), before+2; got != want {
		t.Errorf("v = %d, want %d: the holder's write and the attempt's, each once", got, want)
	}
}
