package resolve

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
)

// markerDB creates a database of the test's own holding the marker table,
// dropped when t ends, and returns a pool on it.
func markerDB(t *testing.T) *sql.DB {
	t.Helper()
	return markerDBAt(t, testdb.MySQL(t), "resolve_marker")
}

// markerDBAt is markerDB on the server of dsn, in a database named after
// prefix.
func markerDBAt(t *testing.T, dsn, prefix string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := fmt.Sprintf("%s_%d", prefix, os.Getpid())
	for _, stmt := range []string{"DROP DATABASE IF EXISTS `" + name + "`", "CREATE DATABASE `" + name + "`"} {
		if _, err := admin.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`") })
	cfg.DBName = name
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(t.Context(), CreateMarkersSQL); err != nil {
		t.Fatal(err)
	}
	return db
}

// openAt opens a pool on database dbName at the server of dsn.
func openAt(t *testing.T, dsn, dbName string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = dbName
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// recorder is a MarkerConn over one connection that records the
// statements Resolve sends.
type recorder struct {
	mu     sync.Mutex
	sent   []string
	conn   *sql.Conn
	noKill bool // KILL fails without reaching the server
}

func (r *recorder) markerConn() MarkerConn {
	return MarkerConn{
		QueryRow: func(ctx context.Context, query string, args []any, dest ...any) error {
			r.record(query)
			return r.conn.QueryRowContext(ctx, query, args...).Scan(dest...)
		},
		Exec: func(ctx context.Context, query string) (int64, error) {
			r.record(query)
			if r.noKill {
				return 0, errors.New("KILL refused by the test")
			}
			_, err := r.conn.ExecContext(ctx, query)
			return 0, err
		},
	}
}

func (r *recorder) record(q string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, q)
}

func (r *recorder) killed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.sent {
		if strings.HasPrefix(q, "KILL") {
			return true
		}
	}
	return false
}

func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.sent {
		if strings.Contains(strings.ToLower(q), "information_schema") {
			t.Errorf("Resolve sent %q: it must read nothing from information_schema", q)
		}
	}
}

// writeMarker begins a transaction on a connection of its own, writes a
// marker in it, and returns both.
func writeMarker(t *testing.T, db *sql.DB) (*Marker, *sql.Tx) {
	t.Helper()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tx, err := conn.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMarker()
	exec := func(ctx context.Context, query string) (int64, error) {
		res, err := tx.ExecContext(ctx, query)
		if err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	if err := m.Write(t.Context(), exec); err != nil {
		t.Fatal(err)
	}
	return m, tx
}

// TestResolveMarkerMariaDB drives Marker.Resolve through each of its
// paths on a live MariaDB: a committed marker is found by the locking read;
// a rolled-back one is not found by the locking read, with no KILL; a
// transaction left open (a partition: its COMMIT may still come) has its
// connection killed, after which the locking read finds nothing, and
// that connection can commit nothing any more; a marker of another
// server is unresolved, with no KILL; and when the open transaction
// cannot be ended, the locking reads time out until the bound:
// unresolved. No path reads information_schema.
func TestResolveMarkerMariaDB(t *testing.T) {
	db := markerDB(t)
	resolver := func(t *testing.T, noKill bool) *recorder {
		conn, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return &recorder{conn: conn, noKill: noKill}
	}

	t.Run("committed", func(t *testing.T) {
		m, tx := writeMarker(t, db)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		r := resolver(t, false)
		if got, err := m.Resolve(t.Context(), r.markerConn(), true); got != scopes.Committed {
			t.Errorf("Resolve = %v, %v; want committed", got, err)
		}
		if r.killed() {
			t.Error("Resolve killed a connection for a committed marker")
		}
		r.check(t)
	})

	t.Run("rolled back", func(t *testing.T) {
		m, tx := writeMarker(t, db)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		r := resolver(t, false)
		if got, err := m.Resolve(t.Context(), r.markerConn(), true); got != scopes.Aborted {
			t.Errorf("Resolve = %v, %v; want aborted", got, err)
		}
		if r.killed() {
			t.Error("Resolve killed a connection although the marker's transaction had ended")
		}
		r.check(t)
	})

	t.Run("open", func(t *testing.T) {
		m, tx := writeMarker(t, db)
		r := resolver(t, false)
		start := time.Now()
		if got, err := m.Resolve(t.Context(), r.markerConn(), true); got != scopes.Aborted {
			t.Errorf("Resolve = %v, %v; want aborted", got, err)
		}
		t.Logf("resolved in %v", time.Since(start))
		if !r.killed() {
			t.Error("Resolve did not end the connection of the open transaction")
		}
		if err := tx.Commit(); err == nil {
			t.Error("the killed transaction committed after Resolve said aborted")
		}
		var n int
		if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+MarkerTable+" WHERE token = "+m.literal()).Scan(&n); err != nil || n != 0 {
			t.Errorf("marker rows %d (%v), want 0", n, err)
		}
		r.check(t)
	})

	t.Run("other server", func(t *testing.T) {
		m, tx := writeMarker(t, db)
		defer tx.Rollback()
		m.id ^= 1 << 40 // another server's hash
		r := resolver(t, false)
		got, err := m.Resolve(t.Context(), r.markerConn(), true)
		if got != scopes.Unresolved || !errors.Is(err, ErrOtherServer) {
			t.Errorf("Resolve = %v, %v; want unresolved, ErrOtherServer", got, err)
		}
		if r.killed() {
			t.Error("Resolve sent KILL to another server's connection id")
		}
		r.check(t)
	})

	// A marker written in another database of the same server (fn ran
	// USE, or the resolver's pooled connection was left in another
	// database): the resolver's table is not the marker's, so not found
	// there proves nothing. Before, it was taken for a rollback, and the
	// retry applied a committed transaction twice.
	t.Run("other database", func(t *testing.T) {
		other := markerDBAt(t, testdb.MySQL(t), "resolve_marker_other")
		for _, committed := range []bool{true, false} {
			m, tx := writeMarker(t, other)
			if committed {
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			} else if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			r := resolver(t, false)
			got, err := m.Resolve(t.Context(), r.markerConn(), true)
			if got != scopes.Unresolved || !errors.Is(err, ErrOtherTable) || !errors.Is(err, ErrOtherServer) {
				t.Errorf("committed %v: Resolve = %v, %v; want unresolved, ErrOtherTable", committed, got, err)
			}
			if r.killed() {
				t.Error("Resolve sent KILL for a marker it could not read")
			}
		}
	})

	// A marker not found by a locking read proves a rollback only while
	// it cannot have been deleted as old: a COMMIT whose answer was lost
	// after MarkerSafeAge may have committed a marker that
	// mysqldb.DeleteCommitMarkers (a minute) or the transactions' own
	// cleanup deleted since.
	t.Run("old enough to be deleted", func(t *testing.T) {
		m, tx := writeMarker(t, db)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), "DELETE FROM "+MarkerTable+" WHERE token = "+m.literal()); err != nil {
			t.Fatal(err)
		}
		m.sent = time.Now().Add(-MarkerSafeAge) // the COMMIT's answer took that long to be lost
		r := resolver(t, false)
		got, err := m.Resolve(t.Context(), r.markerConn(), true)
		if got != scopes.Unresolved || err == nil {
			t.Errorf("Resolve = %v, %v; want unresolved with a reason: the marker may have been deleted", got, err)
		}
		m.sent = time.Now().Add(-MarkerSafeAge + 5*time.Second)
		if got, err := m.Resolve(t.Context(), r.markerConn(), true); got != scopes.Aborted {
			t.Errorf("within MarkerSafeAge: Resolve = %v, %v; want aborted", got, err)
		}
		r.check(t)
	})

	t.Run("cannot end it", func(t *testing.T) {
		m, tx := writeMarker(t, db)
		defer tx.Rollback()
		r := resolver(t, true)
		ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
		defer cancel()
		start := time.Now()
		got, err := m.Resolve(ctx, r.markerConn(), true)
		if got != scopes.Unresolved || err == nil {
			t.Errorf("Resolve = %v, %v; want unresolved with a reason", got, err)
		}
		if elapsed := time.Since(start); elapsed < 2*time.Second {
			t.Errorf("Resolve gave up after %v, before its bound", elapsed)
		}
		r.mu.Lock()
		locking := 0
		for _, q := range r.sent {
			if strings.Contains(q, "LOCK IN SHARE MODE") {
				locking++
			}
		}
		r.mu.Unlock()
		if locking < 3 {
			t.Errorf("%d locking reads, want the first and at least two that waited and timed out", locking)
		}
		t.Logf("unresolved after %v, %d locking reads: %v", time.Since(start), locking, err)
		r.check(t)
	})
}

// The locking reads' syntax per server: NOWAIT, then a bounded wait set
// for the one statement (MariaDB's SET STATEMENT, MySQL's SET_VAR hint).
// Only MariaDB's is run live (TestResolveMarkerMariaDB).
func TestResolveLockingLookSQL(t *testing.T) {
	for _, c := range []struct {
		mariadb, wait bool
		want          string
	}{
		{true, false, "SELECT " + serverExpr + ", COUNT(*) FROM dbop_commit_markers WHERE token = X'00' LOCK IN SHARE MODE NOWAIT"},
		{true, true, "SET STATEMENT innodb_lock_wait_timeout = 1 FOR SELECT " + serverExpr + ", COUNT(*) FROM dbop_commit_markers WHERE token = X'00' LOCK IN SHARE MODE"},
		{false, false, "SELECT " + serverExpr + ", COUNT(*) FROM dbop_commit_markers WHERE token = X'00' FOR SHARE NOWAIT"},
		{false, true, "SELECT /*+ SET_VAR(innodb_lock_wait_timeout = 1) */ " + serverExpr + ", COUNT(*) FROM dbop_commit_markers WHERE token = X'00' FOR SHARE"},
	} {
		if got := LockingLookSQL(c.mariadb, c.wait, "X'00'"); got != c.want {
			t.Errorf("LockingLookSQL(%v, %v) = %q, want %q", c.mariadb, c.wait, got, c.want)
		}
	}
}

// On a Galera cluster: a marker committed on node 1 is found from node 2,
// whose first read waits (wsrep_sync_wait) until it has applied what the
// cluster committed; a marker of a transaction still open on node 1 is
// not found from node 2, which holds no lock for it and cannot end it:
// unresolved, no KILL; from node 1 itself the open transaction is ended
// and the marker not found: aborted.
func TestResolveMarkerGalera(t *testing.T) {
	dsns := testdb.Galera(t)
	if len(dsns) < 2 {
		t.Fatalf("%d Galera nodes, want at least 2", len(dsns))
	}
	db1 := markerDBAt(t, dsns[0], "resolve_marker_galera")
	var dbName string
	if err := db1.QueryRowContext(t.Context(), "SELECT DATABASE()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	db2 := openAt(t, dsns[1], dbName)
	resolverOn := func(t *testing.T, db *sql.DB) *recorder {
		conn, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return &recorder{conn: conn}
	}

	t.Run("committed, resolved on another node", func(t *testing.T) {
		m, tx := writeMarker(t, db1)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		r := resolverOn(t, db2)
		if got, err := m.Resolve(t.Context(), r.markerConn(), true); got != scopes.Committed {
			t.Errorf("Resolve = %v, %v; want committed", got, err)
		}
		if r.killed() {
			t.Error("Resolve sent KILL")
		}
		r.check(t)
	})

	t.Run("open, resolved on another node", func(t *testing.T) {
		m, tx := writeMarker(t, db1)
		defer tx.Rollback()
		r := resolverOn(t, db2)
		got, err := m.Resolve(t.Context(), r.markerConn(), true)
		if got != scopes.Unresolved || !errors.Is(err, ErrOtherServer) {
			t.Errorf("Resolve = %v, %v; want unresolved, ErrOtherServer", got, err)
		}
		if r.killed() {
			t.Error("Resolve sent KILL to another node's connection id")
		}
		r.check(t)
	})

	t.Run("open, resolved on its node", func(t *testing.T) {
		m, tx := writeMarker(t, db1)
		r := resolverOn(t, db1)
		if got, err := m.Resolve(t.Context(), r.markerConn(), true); got != scopes.Aborted {
			t.Errorf("Resolve = %v, %v; want aborted", got, err)
		}
		if !r.killed() {
			t.Error("Resolve did not end the open transaction's connection")
		}
		if err := tx.Commit(); err == nil {
			t.Error("the killed transaction committed after Resolve said aborted")
		}
		r.check(t)
	})
}

// Write recognizes a missing marker table by the server's 1146 naming the
// table, as go-sql-driver formats it, and sends nothing more.
func TestResolveMarkerWriteMissingTable(t *testing.T) {
	for _, c := range []struct {
		err     error
		noTable bool
	}{
		{errors.New("Error 1146 (42S02): Table 'shop.dbop_commit_markers' doesn't exist"), true},
		{errors.New("Error 1146 (42S02): La tabella 'shop.dbop_commit_markers' non esiste"), true},
		{errors.New("Error 1146 (42S02): Table 'shop.orders' doesn't exist"), false},
		{errors.New("Error 1205 (HY000): Lock wait timeout exceeded; try restarting transaction"), false},
		{errors.New("invalid connection"), false},
	} {
		sent := 0
		exec := func(context.Context, string) (int64, error) { sent++; return 0, c.err }
		err := NewMarker().Write(t.Context(), exec)
		if errors.Is(err, ErrNoMarkerTable) != c.noTable || !errors.Is(err, c.err) || sent != 1 {
			t.Errorf("Write with %q = %v after %d statements; want ErrNoMarkerTable %v, the driver's error, 1 statement", c.err, err, sent, c.noTable)
		}
	}
}

// Behind a proxy that routes statements one by one (ProxySQL's read/write
// split sends "^SELECT.*FOR UPDATE" to the writer and every other SELECT
// to a reader; SET STATEMENT and KILL go to the writer), the first look
// ("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT …") reaches the
// transaction's node, and the locking read another node, which holds no
// lock for a transaction still open on the first and finds nothing at
// once. Each locking read names where it ran, so that one is not taken for
// a rollback: unresolved, no KILL, while the open transaction's COMMIT
// can still arrive and commit. Live on the Galera cluster.
func TestResolveMarkerLockingReadRoutedElsewhere(t *testing.T) {
	dsns := testdb.Galera(t)
	if len(dsns) < 2 {
		t.Fatalf("%d Galera nodes, want at least 2", len(dsns))
	}
	writer := markerDBAt(t, dsns[0], "resolve_marker_route")
	var dbName string
	if err := writer.QueryRowContext(t.Context(), "SELECT DATABASE()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	reader := openAt(t, dsns[1], dbName)
	// The reader must have applied the marker table's DDL, else its
	// locking read fails, which Resolve takes for a lock and ends the
	// old connection (safe, but not the case under test).
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := reader.ExecContext(t.Context(), "SELECT 1 FROM "+MarkerTable+" LIMIT 0")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader never saw the marker table: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	toReader := regexp.MustCompile(`(?is)^SELECT`)
	forUpdate := regexp.MustCompile(`(?is)^SELECT.*FOR UPDATE`)
	var sentKill, routed bool
	conn := MarkerConn{
		QueryRow: func(ctx context.Context, query string, args []any, dest ...any) error {
			db := writer
			if toReader.MatchString(query) && !forUpdate.MatchString(query) {
				db, routed = reader, true
			}
			return db.QueryRowContext(ctx, query, args...).Scan(dest...)
		},
		Exec: func(ctx context.Context, query string) (int64, error) {
			sentKill = true
			_, err := writer.ExecContext(ctx, query)
			return 0, err
		},
	}

	// A partition right before COMMIT: the transaction is still open on
	// the writer, and its COMMIT may still arrive.
	m, tx := writeMarker(t, writer)
	got, err := m.Resolve(t.Context(), conn, true)
	commitErr := tx.Commit() // the COMMIT arrives after all
	t.Logf("Resolve = %v, %v; KILL sent: %v; the COMMIT afterwards: %v", got, err, sentKill, commitErr)
	if !routed {
		t.Fatal("no statement went to the reader: the test routed nothing")
	}
	if got != scopes.Unresolved || !errors.Is(err, ErrOtherTable) {
		t.Errorf("Resolve = %v, %v; want unresolved, ErrOtherTable", got, err)
	}
	if got == scopes.Aborted && commitErr == nil {
		t.Error("Resolve said aborted without ending the transaction, and the transaction then committed")
	}
	if sentKill {
		t.Error("Resolve sent KILL after a read that ran elsewhere")
	}
}
