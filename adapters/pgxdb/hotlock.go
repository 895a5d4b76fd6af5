package pgxdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// coordinated begins an attempt's transaction on db and, when a
// dbop.HotSpot asks for it (hotlock), takes the HotSpot's lock in it
// before fn runs, so that the attempts of every process running that
// HotSpot write the hot rows one at a time (docs/contention.md, "Across
// processes"). The lock is transaction-scoped: COMMIT or ROLLBACK releases
// it, so nothing outlives the attempt on a pooled connection.
//
// With CreateHotSpotLocks's tables the lock is LOCK TABLE on the table of
// the HotSpot's key, which takes no snapshot and so waits in place at
// every isolation level (docs/backends.md §1.14). On pgx's own handles it
// travels in the BEGIN round trip, after the settings, which bound its
// wait; in a REPEATABLE READ or SERIALIZABLE transaction, before the
// SELECT of the limits derived from a deadline, which would take the
// snapshot (begin; on any other Beginner the SELECT follows the LOCK in
// the LOCK's own round trip, beginForLock). A transaction
// waiting for the lock has its BEGIN done when it gets it, and the lock
// costs no round trip of its own; its time tells the HotSpot whether
// another process holds the lock. When the batch fails with the server's error, BEGIN
// ran and the connection is in a failed transaction: a pool destroys such
// a connection when it takes it back (pgxpool, Conn.Release), and a
// connection of the caller's is rolled back here. A retryable error (a lock
// timeout) is the attempt's; any other (no tables, 42P01; no right to lock
// them, 42501) makes this and later transactions of the operation take the
// lock with statements of their own, as on any other Beginner
// (hotlock.Begin): the tables, else the advisory lock, which waits in place
// under READ COMMITTED only (§1.13). A server without either makes the
// transaction go on uncoordinated, and locks remembers that for the
// operation.
func (c *config) coordinated(ctx context.Context, db Beginner, o scopes.BeginOptions, res *resolver, locks *hotlock.State) (*txn, error) {
	begin := func() (*txn, error) { return c.begin(ctx, db, o, res, "") }
	if o.ReadOnly || c.txOptions.AccessMode == pgx.ReadOnly {
		// A read-only transaction writes nothing the HotSpot orders
		// (ReadOnly is a pgx access mode here, not scopes.ReadOnly: a Then
		// counts its commit, for a NOTIFY's sake, combinators.go).
		return begin()
	}
	s := hotlock.Scope[*txn]{
		Begin:           begin,
		Tx:              func(t *txn) hotlock.Tx { return pgxTx{t.Tx} },
		Rollback:        func(ctx context.Context, t *txn) error { return t.Tx.Rollback(ctx) },
		RollbackTimeout: c.rollbackTimeout,
		State:           locks,
		Postgres:        true,
		LockTimeout:     func() time.Duration { return c.lockTimeout(ctx) },
		Name:            "pgxdb",
	}
	if c.limitsAfterLock() {
		s.BeginForLock = func() (*txn, hotlock.Limits, error) { return c.beginForLock(ctx, db, o, res) }
	}
	if owner, ok := batchesBegin(db); ok {
		s.BeginLocked = func(lock string) (*txn, error) { return c.begin(ctx, db, o, res, lock) }
		s.AfterBegin = func(err error) bool {
			var pgErr *pgconn.PgError
			return errors.As(err, &pgErr)
		}
		if owner != nil {
			s.Abort = func(ctx context.Context) error {
				_, err := owner.Exec(ctx, "ROLLBACK")
				return err
			}
		}
	}
	return hotlock.Begin(ctx, s)
}

// batchesBegin reports whether db is one of pgx's own handles, which send
// TxOptions.BeginQuery as it is, so that the lock can travel in it, and,
// for a single connection, the connection to roll back when the lock
// failed after BEGIN: a pool destroys such a connection itself.
func batchesBegin(db Beginner) (owner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, ok bool) {
	switch db := db.(type) {
	case *pgxpool.Pool:
		return nil, true
	case *pgx.Conn:
		return db, true
	case *pgxpool.Conn:
		return db, true
	}
	return nil, false
}

// pgxTx adapts a pgx.Tx to hotlock.Tx.
type pgxTx struct{ tx pgx.Tx }

func (t pgxTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error } {
	return t.tx.QueryRow(ctx, query, args...)
}

func (t pgxTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

// HotSpotLockTables returns the names of the tables [CreateHotSpotLocks]
// creates, for a migration that grants a role the right to lock them
// (GRANT UPDATE ON … TO …) or drops them.
func HotSpotLockTables() []string { return hotlock.PostgresTableNames() }

// CreateHotSpotLocks creates the tables whose locks dbop.HotSpot's
// transactions take, if they do not exist, in the first schema of db's
// search_path (db: a *pgxpool.Pool, *pgx.Conn or pgx.Tx). Run it once, as
// part of your migrations, where a HotSpot runs on PostgreSQL.
//
// The tables are dbop_hotspot_lock_0 to dbop_hotspot_lock_15, with no
// columns and no rows. A transaction that a HotSpot asks to coordinate
// takes LOCK TABLE on the one its key names, IN EXCLUSIVE MODE, as its
// first statement; COMMIT or ROLLBACK releases it. LOCK takes no
// snapshot, so the lock waits in place at every isolation level and the
// transaction then sees what the holder committed (docs/backends.md
// §1.14): one attempt can wait for the lock in the server while another
// holds it, under REPEATABLE READ and SERIALIZABLE too
// (docs/contention.md). An attempt whose operation names its rows
// (dbop.HotSpotKeys) locks the HotSpot's table IN ROW SHARE MODE instead,
// and for each key one of the other fifteen tables IN EXCLUSIVE MODE (at
// most four; with more, the HotSpot's table alone), all in the tables'
// order: attempts of different processes whose keys fall on different
// tables run side by side (docs/backends.md §1.16).
//
// Without the tables (or without the right to lock them: LOCK … IN
// EXCLUSIVE MODE needs the UPDATE, DELETE or TRUNCATE privilege on the
// table, so grant UPDATE on them to a role that did not create them), a
// HotSpot takes a transaction-scoped advisory lock instead, which waits in
// place only under READ COMMITTED (§1.13). Each operation finds that out
// with its first coordinated transaction and remembers it: create the
// tables before the processes start.
func CreateHotSpotLocks(ctx context.Context, db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}) error {
	if isNil(db) {
		return errors.New("pgxdb: CreateHotSpotLocks: db is nil")
	}
	for _, stmt := range hotlock.Create(true) {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("pgxdb: CreateHotSpotLocks: %w", err)
		}
	}
	return nil
}
