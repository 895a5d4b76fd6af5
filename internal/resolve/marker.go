package resolve

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/scopes"
)

// MarkerTable is the table of commit markers on MySQL and MariaDB, in the
// connection's current database. [CreateMarkersSQL] creates it.
const MarkerTable = "dbop_commit_markers"

// CreateMarkersSQL creates the marker table: a random token per
// transaction, the connection that wrote it (with a hash of the server's
// host and port in the high 32 bits), and when. InnoDB with a primary key,
// as Galera requires (docs/backends.md §7.8).
const CreateMarkersSQL = "CREATE TABLE IF NOT EXISTS " + MarkerTable + ` (
	token BINARY(16) NOT NULL PRIMARY KEY,
	conn BIGINT UNSIGNED NOT NULL,
	created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	KEY ` + MarkerTable + `_created (created)
) ENGINE=InnoDB`

// serverExpr is a hash of where a connection's unqualified MarkerTable
// is: the server's host and port, and the connection's current database.
// The transaction writes its marker there, and the resolver's connection
// reads it there, but the two are different connections: fn may have run
// USE, or the resolver's pooled connection may have been left in another
// database by an earlier USE. Where the hashes differ, a marker not found
// proves nothing.
const serverExpr = "CRC32(CONCAT(@@hostname, ':', @@port, '/', DATABASE()))"

// connExpr is the value of the conn column, and of LAST_INSERT_ID(), which
// the OK packet of the INSERT carries back: the connection's id, and in
// the high 32 bits serverExpr, so that one round trip writes the marker
// and tells the client which connection on which server to end after a
// lost answer, and in which database the marker is.
const connExpr = "LAST_INSERT_ID(CONNECTION_ID() | (" + serverExpr + " << 32))"

// ErrNoMarkerTable is returned at the first transaction that tries to
// write a commit marker into a database that has no marker table.
var ErrNoMarkerTable = errors.New("the commit marker table " + MarkerTable +
	" does not exist in the connection's database: create it once with mysqldb.CreateCommitMarkers(ctx, db)")

// Marker is one transaction's commit marker. The zero Marker has not been
// written: [NewMarker] makes one.
type Marker struct {
	token [16]byte
	id    uint64 // the conn column: CONNECTION_ID() | server hash << 32
	// written is true once the INSERT succeeded.
	written bool
	// sent is when the INSERT was sent: the marker is at most as old, on
	// the server's clock, as the time since (MarkerSafeAge).
	sent time.Time
}

// NewMarker returns a marker with a new random token.
func NewMarker() *Marker {
	m := new(Marker)
	_, _ = crand.Read(m.token[:]) // never fails (crypto/rand, Go 1.24+)
	return m
}

// Written reports whether the marker row was inserted in the transaction.
func (m *Marker) Written() bool { return m != nil && m.written }

// literal returns the token as a SQL hex literal: the statements carry no
// arguments, so go-sql-driver sends them in one round trip each, without
// preparing them.
func (m *Marker) literal() string { return "X'" + hex.EncodeToString(m.token[:]) + "'" }

// ExecFunc runs a statement and returns the last insert id of its OK
// packet.
type ExecFunc func(ctx context.Context, query string) (lastInsertID int64, err error)

// Write inserts the marker in the transaction exec runs statements in, one
// round trip. When the INSERT fails because the table is missing — the
// server's ER_NO_SUCH_TABLE, 1146, which go-sql-driver writes as "Error
// 1146" before the server's message, and that message names the table in
// every language — the error wraps [ErrNoMarkerTable]. Nothing else is
// sent: no look into information_schema.
func (m *Marker) Write(ctx context.Context, exec ExecFunc) error {
	m.sent = time.Now()
	id, err := exec(ctx, "INSERT INTO "+MarkerTable+" (token, conn) VALUES ("+m.literal()+", "+connExpr+")")
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "Error 1146") && strings.Contains(msg, MarkerTable) {
			return fmt.Errorf("%w (%w)", ErrNoMarkerTable, err)
		}
		return fmt.Errorf("writing the commit marker: %w", err)
	}
	m.id, m.written = uint64(id), true
	return nil
}

// MarkerConn is what [Marker.Resolve] needs of another connection.
type MarkerConn struct {
	QueryRow QueryRowFunc
	Exec     ExecFunc
}

// markerLockWait bounds each locking read of [Marker.Resolve]: how long it
// waits, at most, for the transaction that wrote the marker to end, before
// it looks again (while the resolution's bound allows).
const markerLockWait = 1 // second: innodb_lock_wait_timeout takes whole seconds

// Resolve finds out, on c, a connection other than the transaction's,
// whether the transaction that wrote m committed. mariadb selects
// MariaDB's syntax, and makes the first read wait until a Galera node has
// applied everything the cluster committed (wsrep_sync_wait = 1,
// docs/backends.md §7.4); on a server without that variable the read runs
// without it. ctx bounds it.
//
// It reads nothing from information_schema, and relies on InnoDB's row
// locks alone (docs/backends.md §11.2):
//
//  1. A plain read of the marker, which also names c's server and
//     database (serverExpr). On another server than the transaction's (a
//     Galera node behind a load balancer), found means committed, for
//     good: a node holds another node's rows only once their transaction
//     was certified, which commits it; so does found in another database
//     (the token is random). Not found there leaves the outcome unknown
//     (ErrOtherTable).
//  2. On the transaction's own server, the plain read decides nothing: it
//     follows the session's isolation level, and under READ UNCOMMITTED
//     (a DSN's transaction_isolation, the server's default, a SET SESSION
//     left on a pooled connection) it sees the marker of a transaction
//     still open, whose COMMIT may never arrive.
//  3. A locking read (LOCK IN SHARE MODE, MySQL's FOR SHARE) that does not
//     wait. The marker's INSERT holds an implicit lock on its record until
//     its transaction ends, by COMMIT or by the end of its rollback, which
//     also removes the record; a locking read reads the latest committed
//     version. So a locking read that returns without waiting gives the
//     final answer: found means committed, not found means rolled back —
//     if it read the marker's table (each locking read names where it ran
//     too: ErrOtherTable), and if the marker cannot have been deleted as
//     old meanwhile (MarkerSafeAge; else Unresolved).
//  4. A locking read that would wait means the transaction is still open:
//     committing right now, or idle after a partition, waiting for a
//     COMMIT that may still arrive. Only then is the old connection ended
//     (KILL CONNECTION; "no such thread", 1094, means it ended already),
//     so that a COMMIT still on its way can never run, and the locking
//     read repeated, waiting at most markerLockWait each time, until it
//     returns or ctx ends (Unresolved).
func (m *Marker) Resolve(ctx context.Context, c MarkerConn, mariadb bool) (scopes.Resolution, error) {
	found, server, err := m.look(ctx, c, mariadb)
	if err != nil {
		return scopes.Unresolved, err
	}
	conn := m.id & 0xffffffff
	if server != m.id>>32 {
		if found {
			return scopes.Committed, nil
		}
		return scopes.Unresolved, fmt.Errorf("resolve: marker not found, and connection %d cannot be ended from here: %w", conn, ErrOtherTable)
	}
	found, err = m.lockingLook(ctx, c, mariadb, false)
	if err == nil {
		return m.committedOrAborted(found)
	}
	if errors.Is(err, ErrOtherTable) {
		return scopes.Unresolved, err
	}
	// The marker is locked (or the read failed; the reads below say which):
	// its transaction is still open. End its connection.
	_, killErr := c.Exec(ctx, "KILL CONNECTION "+strconv.FormatUint(conn, 10))
	wait := pollStart
	for {
		found, err = m.lockingLook(ctx, c, mariadb, true)
		if err == nil {
			return m.committedOrAborted(found)
		}
		if errors.Is(err, ErrOtherTable) {
			return scopes.Unresolved, err
		}
		if serr := sleep(ctx, wait); serr != nil {
			if killErr != nil {
				err = fmt.Errorf("%w (KILL CONNECTION %d: %w)", err, conn, killErr)
			}
			return scopes.Unresolved, fmt.Errorf("resolve: the transaction of connection %d was still open: %w", conn, err)
		}
		wait = min(2*wait, pollMax)
	}
}

// committedOrAborted is the answer of a locking read on the marker's own
// table: found, committed; not found, aborted — unless the marker may have
// been deleted meanwhile (MarkerSafeAge).
func (m *Marker) committedOrAborted(found bool) (scopes.Resolution, error) {
	if found {
		return scopes.Committed, nil
	}
	if age := time.Since(m.sent); age >= MarkerSafeAge {
		return scopes.Unresolved, fmt.Errorf("resolve: marker not found %v after it was written: it may have been deleted as old (mysqldb.DeleteCommitMarkers keeps a minute's), so this proves no rollback", age.Round(time.Millisecond))
	}
	return scopes.Aborted, nil
}

// MarkerSafeAge is how long after its INSERT was sent a marker not found
// still proves a rollback: half the least age at which any marker is
// deleted (a minute, mysqldb.DeleteCommitMarkers' floor; the transactions
// delete markers after MarkerRetention), the other half a margin for the
// server's clock, by which the markers' ages are reckoned. A COMMIT's
// answer can take longer than that to be lost (go-sql-driver's COMMIT
// watches no context; a partition lasts until a read timeout or TCP gives
// up), and by then a marker committed and deleted is not found.
const MarkerSafeAge = 30 * time.Second

// ErrOtherTable is the reason a marker resolution fails when the
// connection it reads on is not on the server, or not in the database,
// whose marker table the transaction wrote into: a load balancer over
// Galera nodes, a proxy that routes statements one by one, a USE run in
// the transaction, or a pooled connection an earlier USE left in another
// database. There a marker not found proves nothing. It wraps
// ErrOtherServer.
var ErrOtherTable = fmt.Errorf("the connection is on another server, or in another database, than the marker table the transaction wrote to: %w", ErrOtherServer)

// look reports whether the marker is in the table, by a plain read in the
// session's isolation level, and the server hash of c's server.
func (m *Marker) look(ctx context.Context, c MarkerConn, mariadb bool) (found bool, server uint64, err error) {
	query := "SELECT " + serverExpr + ", COUNT(*) FROM " + MarkerTable + " WHERE token = " + m.literal()
	var n int64
	if mariadb {
		if err = c.QueryRow(ctx, "SET STATEMENT wsrep_sync_wait = 1 FOR "+query, nil, &server, &n); err == nil {
			return n > 0, server, nil
		}
		// No wsrep_sync_wait on this server: not a Galera node. A broken
		// connection fails the plain read below too.
	}
	if err = c.QueryRow(ctx, query, nil, &server, &n); err != nil {
		return false, 0, fmt.Errorf("resolve: looking for the commit marker: %w", err)
	}
	return n > 0, server, nil
}

// LockingLookSQL is the locking read of a marker, which also names where
// it read (serverExpr): with wait false it fails at once when the marker's
// record is locked (NOWAIT: MariaDB 10.3+, MySQL 8.0+); with wait true it
// waits at most markerLockWait seconds.
func LockingLookSQL(mariadb, wait bool, token string) string {
	from := " " + serverExpr + ", COUNT(*) FROM " + MarkerTable + " WHERE token = " + token
	switch {
	case mariadb && wait:
		return "SET STATEMENT innodb_lock_wait_timeout = " + strconv.Itoa(markerLockWait) + " FOR SELECT" + from + " LOCK IN SHARE MODE"
	case mariadb:
		return "SELECT" + from + " LOCK IN SHARE MODE NOWAIT"
	case wait:
		return "SELECT /*+ SET_VAR(innodb_lock_wait_timeout = " + strconv.Itoa(markerLockWait) + ") */" + from + " FOR SHARE"
	default:
		return "SELECT" + from + " FOR SHARE NOWAIT"
	}
}

// lockingLook reports whether the marker is in the table, by a locking
// read ([LockingLookSQL]). Each read checks where it ran, not only the
// first: behind a proxy that routes statements one by one (a read/write
// split sends plain SELECTs to a replica), a locking read can reach a node
// that holds no lock for a transaction still open on the marker's, and
// find nothing at once (ErrOtherTable).
func (m *Marker) lockingLook(ctx context.Context, c MarkerConn, mariadb, wait bool) (bool, error) {
	var server uint64
	var n int64
	if err := c.QueryRow(ctx, LockingLookSQL(mariadb, wait, m.literal()), nil, &server, &n); err != nil {
		return false, fmt.Errorf("resolve: locking read of the commit marker: %w", err)
	}
	if server != m.id>>32 {
		return false, fmt.Errorf("resolve: the locking read of the commit marker of connection %d ran elsewhere: %w", m.id&0xffffffff, ErrOtherTable)
	}
	return n > 0, nil
}

// Marker retention and cleanup: a marker is needed only until the
// resolution of its transaction, which runs once the COMMIT's answer is
// lost, and takes a marker not found for a rollback only within
// MarkerSafeAge of writing it. Markers older than
// MarkerRetention are deleted, at most cleanupBatch at a time, by one
// transaction in cleanupEvery that wrote a marker, right after its COMMIT
// succeeded ([CleanupSQL]), and by mysqldb.DeleteCommitMarkers.
const (
	MarkerRetention = 15 * time.Minute
	cleanupEvery    = 64
	cleanupBatch    = 500
)

// CleanupDue reports whether this transaction should run [CleanupSQL]
// after its COMMIT: one in cleanupEvery, drawn at random so that no
// counter is shared between transactions.
func CleanupDue() bool { return rand.IntN(cleanupEvery) == 0 }

// CleanupSQL deletes up to cleanupBatch markers older than
// MarkerRetention, waiting at most a second for a row lock (another
// cleanup deleting the same rows): MariaDB's SET STATEMENT, MySQL's
// SET_VAR hint. Both reckon the age in UTC (markerAgeZone).
func CleanupSQL(mariadb bool) string {
	del := " FROM " + MarkerTable + " WHERE created < NOW(6) - INTERVAL " +
		strconv.Itoa(int(MarkerRetention/time.Second)) + " SECOND LIMIT " + strconv.Itoa(cleanupBatch)
	if mariadb {
		return "SET STATEMENT innodb_lock_wait_timeout = 1, " + markerAgeZone + " FOR DELETE" + del
	}
	return "DELETE /*+ SET_VAR(innodb_lock_wait_timeout = 1) SET_VAR(" + markerAgeZone + ") */" + del
}

// DeleteSQL deletes up to limit markers older than olderThan, for
// mysqldb.DeleteCommitMarkers, reckoning the age in UTC (markerAgeZone):
// MariaDB's SET STATEMENT where mariadb is true, else MySQL's SET_VAR hint.
func DeleteSQL(mariadb bool, olderThan time.Duration, limit int) string {
	del := " FROM " + MarkerTable + " WHERE created < NOW(6) - INTERVAL " +
		strconv.FormatInt(olderThan.Microseconds(), 10) + " MICROSECOND LIMIT " + strconv.Itoa(limit)
	if mariadb {
		return "SET STATEMENT " + markerAgeZone + " FOR DELETE" + del
	}
	return "DELETE /*+ SET_VAR(" + markerAgeZone + ") */" + del
}

// markerAgeZone is the session time zone the deletions of markers run
// in. created is a TIMESTAMP, stored in UTC, while NOW(6) and the
// arithmetic on it are the session's wall clock: in a zone with daylight
// saving (time_zone SYSTEM on a host that keeps local time, a named zone),
// NOW(6) - INTERVAL jumps an hour when the clocks go forward, and every
// marker written before the change looks an hour older. Deleted seconds
// after it was written, a marker is not found by the resolution of its
// transaction, which takes that for a rollback within MarkerSafeAge
// (docs/backends.md §11.2): a COMMIT that was applied ran again. In UTC,
// NOW(6) - INTERVAL is real time.
const markerAgeZone = "time_zone = '+00:00'"
