package dboptest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// PgError returns the error the PostgreSQL server sends for SQLSTATE code
// with the given message, as pgx reports it: a *pgconn.PgError with severity
// ERROR. Its SQLState method returns code.
func PgError(code, message string) *pgconn.PgError {
	return &pgconn.PgError{
		Severity:            "ERROR",
		SeverityUnlocalized: "ERROR",
		Code:                code,
		Message:             message,
	}
}

// MySQLError returns the error go-sql-driver/mysql builds from a server ERR
// packet with the given error number and message. The SQLSTATE is the one the
// server sends with that number where it is known (1213 → 40001, 1062, 1451
// and 1452 → 23000, 1040 → 08004, 1317 and 1969 → 70100), HY000 otherwise.
func MySQLError(number uint16, message string) *mysql.MySQLError {
	e := &mysql.MySQLError{Number: number, Message: message}
	copy(e.SQLState[:], mysqlSQLState(number))
	return e
}

// mysqlSQLState returns the SQLSTATE the server pairs with an error number
// (MySQL 8.4 server error reference; 1969 from the MariaDB error codes list).
func mysqlSQLState(number uint16) string {
	switch number {
	case 1213: // ER_LOCK_DEADLOCK
		return "40001"
	case 1062, 1451, 1452: // ER_DUP_ENTRY, ER_ROW_IS_REFERENCED_2, ER_NO_REFERENCED_ROW_2
		return "23000"
	case 1040: // ER_CON_COUNT_ERROR
		return "08004"
	case 1317, 1969: // ER_QUERY_INTERRUPTED, MariaDB ER_STATEMENT_TIMEOUT
		return "70100"
	default: // 1205 ER_LOCK_WAIT_TIMEOUT, 3024 ER_QUERY_TIMEOUT, 3572 ER_LOCK_NOWAIT, …
		return "HY000"
	}
}

// NetworkError returns the error a read on a TCP connection reset by the
// peer gives: a *net.OpError wrapping an *os.SyscallError wrapping
// syscall.ECONNRESET, so errors.Is(err, syscall.ECONNRESET) holds.
func NetworkError() error {
	return &net.OpError{
		Op:   "read",
		Net:  "tcp",
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5432},
		Err:  os.NewSyscallError("read", syscall.ECONNRESET),
	}
}

// BadConn returns [driver.ErrBadConn], which database/sql drivers return when
// nothing was sent on a broken connection.
func BadConn() error { return driver.ErrBadConn }

// InvalidConn returns mysql.ErrInvalidConn, which go-sql-driver/mysql returns
// when reading the answer fails after the request was written.
func InvalidConn() error { return mysql.ErrInvalidConn }

// SQLiteBusy provokes and returns a real SQLITE_BUSY (5) error from
// modernc.org/sqlite: one connection holds the write lock with BEGIN
// IMMEDIATE and a second one, with busy_timeout 0, tries to take it too.
// It fails the test if the error is not a *sqlite.Error with code 5.
func SQLiteBusy(tb testing.TB) error {
	tb.Helper()
	ctx := context.Background()
	db := openSQLite(tb, "busy.db")
	mustExec(tb, db, "CREATE TABLE t (x INTEGER)")
	holder := conn(tb, db)
	defer holder.Close()
	mustExec(tb, holder, "BEGIN IMMEDIATE")
	defer holder.ExecContext(ctx, "ROLLBACK")

	other := conn(tb, db)
	defer other.Close()
	_, err := other.ExecContext(ctx, "BEGIN IMMEDIATE")
	if err == nil {
		other.ExecContext(ctx, "ROLLBACK")
	}
	return wantSQLiteCode(tb, err, sqlite3.SQLITE_BUSY)
}

// SQLiteBusySnapshot provokes and returns a real SQLITE_BUSY_SNAPSHOT (517)
// error from modernc.org/sqlite with the recipe of docs/backends.md §5.3: in
// WAL mode a deferred transaction reads, another connection commits a write,
// and the first transaction's write then fails. It fails the test if the
// error is not a *sqlite.Error with code 517.
func SQLiteBusySnapshot(tb testing.TB) error {
	tb.Helper()
	ctx := context.Background()
	db := openSQLite(tb, "busy_snapshot.db")
	mustExec(tb, db, "CREATE TABLE t (x INTEGER)")
	mustExec(tb, db, "INSERT INTO t VALUES (1)")

	reader := conn(tb, db)
	defer reader.Close()
	mustExec(tb, reader, "BEGIN")
	defer reader.ExecContext(ctx, "ROLLBACK")
	var n int
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		tb.Fatalf("dboptest: SQLiteBusySnapshot: read: %v", err)
	}

	writer := conn(tb, db)
	defer writer.Close()
	mustExec(tb, writer, "INSERT INTO t VALUES (2)")

	_, err := reader.ExecContext(ctx, "INSERT INTO t VALUES (3)")
	return wantSQLiteCode(tb, err, sqlite3.SQLITE_BUSY_SNAPSHOT)
}

// SQLiteLocked provokes and returns a real SQLITE_LOCKED (6) error from
// modernc.org/sqlite: a connection drops a table while one of its own
// statements is still reading it. It fails the test if the error is not a
// *sqlite.Error with code 6.
func SQLiteLocked(tb testing.TB) error {
	tb.Helper()
	ctx := context.Background()
	db := openSQLite(tb, "locked.db")
	mustExec(tb, db, "CREATE TABLE t (x INTEGER)")
	mustExec(tb, db, "INSERT INTO t VALUES (1), (2), (3)")

	c := conn(tb, db)
	defer c.Close()
	rows, err := c.QueryContext(ctx, "SELECT x FROM t")
	if err != nil {
		tb.Fatalf("dboptest: SQLiteLocked: query: %v", err)
	}
	defer rows.Close()
	if !rows.Next() {
		tb.Fatalf("dboptest: SQLiteLocked: no row: %v", rows.Err())
	}
	_, err = c.ExecContext(ctx, "DROP TABLE t")
	return wantSQLiteCode(tb, err, sqlite3.SQLITE_LOCKED)
}

// SQLiteConstraintUnique provokes and returns a real
// SQLITE_CONSTRAINT_UNIQUE (2067) error from modernc.org/sqlite by inserting
// the same value twice into a UNIQUE column. It fails the test if the error
// is not a *sqlite.Error with code 2067.
func SQLiteConstraintUnique(tb testing.TB) error {
	tb.Helper()
	db := openSQLite(tb, "unique.db")
	mustExec(tb, db, "CREATE TABLE t (x INTEGER UNIQUE)")
	mustExec(tb, db, "INSERT INTO t VALUES (1)")
	_, err := db.Exec("INSERT INTO t VALUES (1)")
	return wantSQLiteCode(tb, err, sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

// SQLiteConstraintPrimaryKey provokes and returns a real
// SQLITE_CONSTRAINT_PRIMARYKEY (1555) error from modernc.org/sqlite by
// inserting the same INTEGER PRIMARY KEY twice. It fails the test if the error
// is not a *sqlite.Error with code 1555.
func SQLiteConstraintPrimaryKey(tb testing.TB) error {
	tb.Helper()
	db := openSQLite(tb, "primary_key.db")
	mustExec(tb, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	mustExec(tb, db, "INSERT INTO t VALUES (1)")
	_, err := db.Exec("INSERT INTO t VALUES (1)")
	return wantSQLiteCode(tb, err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// openSQLite opens a new WAL-mode database file in tb's temporary directory
// with busy_timeout 0, so lock conflicts fail at once. The database is closed
// when the test ends.
func openSQLite(tb testing.TB, name string) *sql.DB {
	tb.Helper()
	u := url.URL{
		Scheme:   "file",
		Path:     filepath.ToSlash(filepath.Join(tb.TempDir(), name)),
		RawQuery: "_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)",
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		tb.Fatalf("dboptest: open %s: %v", u.String(), err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func conn(tb testing.TB, db *sql.DB) *sql.Conn {
	tb.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatalf("dboptest: connection: %v", err)
	}
	return c
}

func mustExec(tb testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string) {
	tb.Helper()
	if _, err := db.ExecContext(context.Background(), query); err != nil {
		tb.Fatalf("dboptest: %s: %v", query, err)
	}
}

// wantSQLiteCode returns err if it is a *sqlite.Error with the given
// (extended) result code, and fails the test otherwise.
func wantSQLiteCode(tb testing.TB, err error, code int) error {
	tb.Helper()
	se, ok := errors.AsType[*sqlite.Error](err)
	switch {
	case err == nil:
		tb.Fatalf("dboptest: want SQLite error code %d, got no error", code)
	case !ok:
		tb.Fatalf("dboptest: want *sqlite.Error with code %d, got %T: %v", code, err, err)
	case se.Code() != code:
		tb.Fatalf("dboptest: want SQLite error code %d, got %d: %v", code, se.Code(), err)
	}
	return err
}
