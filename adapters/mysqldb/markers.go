package mysqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/go-sql-driver/mysql"
)

// CommitMarkerTable is the table in which sqldb.ResolveCommit and
// gormdb.ResolveCommit write a commit marker for each read-write
// transaction on MySQL and MariaDB: dbop_commit_markers, in the
// connection's current database. [CreateCommitMarkers] creates it.
const CommitMarkerTable = resolve.MarkerTable

// ErrNoCommitMarkers is matched, through errors.Is, by the error of a
// transaction with ResolveCommit run on a database that has no
// [CommitMarkerTable]: create it once with [CreateCommitMarkers]. The
// transaction was rolled back, and is not retried.
var ErrNoCommitMarkers = resolve.ErrNoMarkerTable

// CreateCommitMarkers creates the table of commit markers, if it does not
// exist, in the current database of db (a *sql.DB, *sql.Conn or *sql.Tx):
// run it once, as part of your migrations, before using
// sqldb.ResolveCommit or gormdb.ResolveCommit on MySQL or MariaDB. They
// never create it themselves; without it, every read-write transaction
// fails with [ErrNoCommitMarkers].
//
// The table (InnoDB, with a primary key, as Galera requires) is
//
//	CREATE TABLE dbop_commit_markers (
//		token   BINARY(16) NOT NULL PRIMARY KEY,      -- random, one per transaction
//		conn    BIGINT UNSIGNED NOT NULL,             -- CONNECTION_ID(), server hash << 32
//		created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
//		KEY dbop_commit_markers_created (created)
//	) ENGINE=InnoDB
//
// Each read-write transaction adds one row (about 40 bytes). One in 64,
// chosen at random, deletes up to 500 markers older than 15 minutes right
// after its COMMIT, as a statement of its own that waits at most a second
// for a row lock and whose failure fails nothing; that keeps the table at
// about 15 minutes' worth of markers (900 000 rows at 1 000 transactions a
// second). No goroutine is started. [DeleteCommitMarkers] trims it at
// will.
func CreateCommitMarkers(ctx context.Context, db interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}) error {
	if _, err := db.ExecContext(ctx, resolve.CreateMarkersSQL); err != nil {
		return fmt.Errorf("mysqldb: CreateCommitMarkers: %w", err)
	}
	return nil
}

// DeleteCommitMarkers deletes the commit markers older than olderThan from
// the current database of db, in batches of 10 000 rows, and returns how
// many it deleted. A marker is needed only until the resolution of its
// transaction, which runs once a COMMIT's answer is lost. That can take
// long (go-sql-driver's COMMIT watches no context; a partition lasts until
// a read timeout or TCP gives up), so a resolution takes a marker not found
// for a rollback only within 30 seconds of writing it, and reports the
// outcome unknown after that: any olderThan of a minute or more is safe.
// The transactions themselves delete markers older than 15 minutes. It
// panics if olderThan < time.Minute.
func DeleteCommitMarkers(ctx context.Context, db interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}, olderThan time.Duration) (int64, error) {
	if olderThan < time.Minute {
		panic(fmt.Sprintf("mysqldb: DeleteCommitMarkers(%v): keep markers at least a minute, so that a resolution in progress still finds its own", olderThan))
	}
	const batch = 10000
	var total int64
	// The age is reckoned in UTC (resolve.DeleteSQL), with MariaDB's SET
	// STATEMENT, which MySQL refuses as a syntax error (1064): then with
	// MySQL's SET_VAR hint.
	mariadb := true
	for {
		res, err := db.ExecContext(ctx, resolve.DeleteSQL(mariadb, olderThan, batch))
		if mariadb && isSyntaxError(err) {
			mariadb = false
			res, err = db.ExecContext(ctx, resolve.DeleteSQL(mariadb, olderThan, batch))
		}
		if err != nil {
			return total, fmt.Errorf("mysqldb: DeleteCommitMarkers: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("mysqldb: DeleteCommitMarkers: %w", err)
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// isSyntaxError reports whether err is the server's ER_PARSE_ERROR, 1064.
func isSyntaxError(err error) bool {
	me, ok := errors.AsType[*mysql.MySQLError](err)
	return ok && me.Number == 1064
}

// HotSpotLockTable is the table whose rows dbop.HotSpot's transactions
// lock, on MySQL and MariaDB, to run the attempts of every process one at
// a time, the next one already waiting in the server:
// dbop_hotspot_locks, in the connection's current database.
// [CreateHotSpotLocks] creates it.
const HotSpotLockTable = hotlock.MySQLTable

// CreateHotSpotLocks creates the table of dbop.HotSpot's locks, if it does
// not exist, in the current database of db (a *sql.DB, *sql.Conn or
// *sql.Tx): run it once, as part of your migrations, where a HotSpot runs
// on MySQL or MariaDB. Without it a HotSpot still works in each process,
// but nothing orders the processes, and no attempt waits for the lock in
// the server while another holds it (docs/contention.md).
//
// The table is
//
//	CREATE TABLE dbop_hotspot_locks (id BIGINT NOT NULL PRIMARY KEY) ENGINE=InnoDB
//
// with one row per HotSpot, added the first time its lock is taken. A
// transaction that takes the lock reads its row with SELECT … FOR UPDATE
// as its first statement, which waits while another transaction holds it;
// InnoDB releases it at COMMIT or ROLLBACK, so nothing outlives the
// transaction on a pooled connection. An attempt whose operation names
// its rows (dbop.HotSpotKeys) reads the HotSpot's row LOCK IN SHARE MODE
// instead, and then its keys' rows FOR UPDATE (at most four; with more it
// takes the HotSpot's row alone): 256 more rows per HotSpot, each key on
// one of them, all added by the first attempt with keys. So
// attempts of different processes whose keys fall on different rows run
// side by side (docs/backends.md §3.14). On a Galera cluster the row lock
// holds on one node only: it coordinates the processes that write through
// the same node.
func CreateHotSpotLocks(ctx context.Context, db interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}) error {
	if _, err := db.ExecContext(ctx, hotlock.MySQLCreate); err != nil {
		return fmt.Errorf("mysqldb: CreateHotSpotLocks: %w", err)
	}
	return nil
}
