package sqldb_test

// A wait for a dbop.HotSpot's lock that the caller's context ends (a
// client gone, an HTTP handler cancelled, a sibling in All failed) says
// nothing of the server: the operation's scope must not remember it as
// "the server has no such lock" for its later transactions.

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// TestHotLockCancelledWaitKeepsTheLock: another process holds a
// HotSpot's lock; an attempt of an InTx waits for it, and its caller's
// context is cancelled meanwhile (context.Canceled, NotRetryable). The
// next run of the same InTx, asked for the lock again, must take it (the
// server has the lock table, nothing changed), and wait for another
// process that holds it. Taken for a missing lock, the non-retryable error
// would leave every later transaction of the operation uncoordinated on
// MariaDB, and on PostgreSQL taking the advisory lock, which does not
// exclude the LOCK TABLE of the processes that use the tables.
func TestHotLockCancelledWaitKeepsTheLock(t *testing.T) {
	for _, c := range []struct {
		name    string
		open    func(t *testing.T) *sql.DB
		dialect sqldb.Dialect
		hold    func(key int64) (string, []any)
		update  string
	}{{
		name: "mariadb",
		open: func(t *testing.T) *sql.DB {
			db := openMariaDB(t)
			if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
				t.Fatal(err)
			}
			return db
		},
		dialect: mysqldb.MariaDB,
		hold: func(key int64) (string, []any) {
			return "SELECT id FROM dbop_hotspot_locks WHERE id = ? FOR UPDATE", []any{key}
		},
		update: "UPDATE sqldb_hlc_hot SET v = v + 1 WHERE id = 1",
	}, {
		name:    "postgres-tables",
		open:    func(t *testing.T) *sql.DB { return postgresInSchema(t, "sqldb_hlc_hotlock", true) },
		dialect: sqldb.Postgres,
		hold: func(key int64) (string, []any) {
			return "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE", nil
		},
		update: "UPDATE sqldb_hlc_hot SET v = v + 1 WHERE id = 1",
	}} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			table(t, db, "sqldb_hlc_hot", "(id int PRIMARY KEY, v int NOT NULL)")
			mustExec(t, db, "INSERT INTO sqldb_hlc_hot VALUES (1, 0)")
			key := rand.Int64()
			if c.name == "mariadb" {
				mustExec(t, db, "INSERT IGNORE INTO dbop_hotspot_locks (id) VALUES (?)", key)
			}
			// One operation value, as a service builds it once.
			op := sqldb.InTx(db, c.dialect, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
				_, err := tx.ExecContext(ctx, c.update)
				return struct{}{}, err
			})
			hold := func() *sql.Tx {
				holder, err := db.BeginTx(t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				q, args := c.hold(key)
				if _, err := holder.ExecContext(t.Context(), q, args...); err != nil {
					t.Fatal(err)
				}
				return holder
			}

			// 1. Uncontended: the lock is taken.
			req := &hotlock.Request{Key: key}
			if _, err := op.Run(hotlock.With(t.Context(), req)); err != nil {
				t.Fatal(err)
			}
			if took, _, _ := req.Outcome(); !took {
				t.Fatal("the first run did not take the lock")
			}

			// 2. Another process holds it; the caller gives up while the
			// attempt waits for it.
			holder := hold()
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(300*time.Millisecond, cancel)
			_, err := op.Run(hotlock.With(ctx, &hotlock.Request{Key: key}))
			if err == nil {
				t.Fatal("the run cancelled while another process held the lock succeeded: it did not wait for the lock")
			}
			holder.Rollback()

			// 3. Nothing changed on the server: the next run, asked for
			// the lock, must take it.
			req = &hotlock.Request{Key: key}
			if _, err := op.Run(hotlock.With(t.Context(), req)); err != nil {
				t.Fatal(err)
			}
			if took, _, _ := req.Outcome(); !took {
				t.Errorf("after one cancelled wait the operation no longer takes the HotSpot's lock")
			}

			// 4. And it must wait for another process that holds it.
			holder = hold()
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := op.Run(hotlock.With(t.Context(), &hotlock.Request{Key: key}))
				done <- err
			}()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-done:
				t.Errorf("the run ended after %v (%v) while another process held the HotSpot's lock: the processes are no longer ordered", time.Since(start), err)
				holder.Rollback()
			default:
				holder.Rollback()
				<-done
			}
		})
	}
}

// TestHotSpotSiblingFailureKeepsTheLock is the same through the
// public API: a transfer under dbop.HotSpot runs in an All beside a check
// that fails while the transfer waits for the HotSpot's lock, which
// another process holds; All cancels its context (context.Canceled).
// Afterwards the transfer runs while the other process holds the lock
// again: it must wait for it.
func TestHotSpotSiblingFailureKeepsTheLock(t *testing.T) {
	db := openMariaDB(t)
	if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
		t.Fatal(err)
	}
	table(t, db, "sqldb_hlc_hot2", "(id int PRIMARY KEY, v int NOT NULL)")
	mustExec(t, db, "INSERT INTO sqldb_hlc_hot2 VALUES (1, 0)")
	hot := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(5)), dbop.HotSpot())
	calls := 0
	transfer := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		if calls++; calls == 1 {
			// Lost to another process (as a 1213 would be): the
			// HotSpot then coordinates the processes with its lock,
			// and bounds its attempts no more.
			return 0, dbop.Classify(errors.New("lost a conflict"), dbop.RetryTransaction)
		}
		_, err := tx.ExecContext(ctx, "UPDATE sqldb_hlc_hot2 SET v = v + 1 WHERE id = 1")
		return 1, err
	}).With(hot)
	if _, err := transfer.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := transfer.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	hold := func() *sql.Tx {
		holder, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, holder, "SELECT id FROM dbop_hotspot_locks FOR UPDATE") // every HotSpot's row: another process's attempt
		return holder
	}
	holder := hold()
	check := dbop.Op[int](func(ctx context.Context) (int, error) {
		time.Sleep(300 * time.Millisecond)
		return 0, errors.New("insufficient funds")
	})
	_, err := dbop.All(0, transfer, check).Run(t.Context())
	if err == nil {
		t.Fatal("All succeeded although its check failed")
	}
	holder.Rollback()

	holder = hold()
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := transfer.Run(t.Context()); done <- err }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Errorf("the transfer ran after %v (%v) while another process held the HotSpot's lock: after one cancelled wait, this operation no longer takes it", time.Since(start), err)
		holder.Rollback()
	default:
		holder.Rollback()
		<-done
	}
}
