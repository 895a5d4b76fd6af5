package resolve

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/testdb"
)

// dstConn returns a connection of its own to the server of
// DBOP_TEST_MYSQL whose session reckons time in Europe/Berlin, as a server
// whose time_zone is SYSTEM on a host in that zone does, with a session
// temporary marker table (nothing outside the session is touched), and
// whether the server is MariaDB. It skips the test where the server has no
// time zone tables (mysql_tzinfo_to_sql not loaded): no session can then
// reckon time in a zone that changes its offset.
func dstConn(t *testing.T) (*sql.Conn, bool) {
	t.Helper()
	db, err := sql.Open("mysql", testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var berlin sql.NullString
	if err := conn.QueryRowContext(t.Context(), "SELECT CONVERT_TZ('2027-03-28 01:59:50', 'Europe/Berlin', 'UTC')").Scan(&berlin); err != nil {
		t.Fatal(err)
	}
	if !berlin.Valid {
		testdb.NoTimeZoneTables(t) // a session cannot reckon time across a daylight saving change
	}
	var version string
	if err := conn.QueryRowContext(t.Context(), "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	create := strings.Replace(CreateMarkersSQL, "CREATE TABLE IF NOT EXISTS", "CREATE TEMPORARY TABLE", 1)
	for _, stmt := range []string{"SET time_zone = 'Europe/Berlin'", create} {
		if _, err := conn.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return conn, strings.Contains(version, "MariaDB")
}

// at makes the session's clock read the instant given (SET timestamp).
func at(t *testing.T, conn *sql.Conn, instant string) {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, instant)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), "SET timestamp = ?", ts.Unix()); err != nil {
		t.Fatal(err)
	}
}

// The deletion of old markers (CleanupSQL after a COMMIT, DeleteSQL for
// mysqldb.DeleteCommitMarkers) must reckon a marker's age in real time, not
// on the session's wall clock: where the server keeps local time with
// daylight saving (time_zone SYSTEM on a host in such a zone), NOW(6) -
// INTERVAL jumps an hour when the clocks go forward, and every marker
// written before the change looked an hour old. A marker 15 seconds old was
// deleted; a resolution then found no marker within MarkerSafeAge and took
// a COMMIT that may have been applied for a rollback, and the retry applied
// the transaction twice.
func TestMarkersAreNotDeletedYoungAcrossADaylightSavingChange(t *testing.T) {
	conn, mariadb := dstConn(t)
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		written string // the instant the marker was written
		deleted string // the instant the deletion runs, 15 s later
	}{
		// Europe/Berlin, clocks forward at 01:00 UTC: 01:59:50 CET, 03:00:05 CEST.
		{"clocks forward", "2027-03-28T00:59:50Z", "2027-03-28T01:00:05Z"},
		// Clocks back at 01:00 UTC: 02:59:50 CEST, 02:00:05 CET.
		{"clocks back", "2027-10-31T00:59:50Z", "2027-10-31T01:00:05Z"},
	} {
		for _, del := range []struct {
			name string
			stmt string
		}{
			{"CleanupSQL", CleanupSQL(mariadb)},
			{"DeleteSQL, a minute", DeleteSQL(mariadb, time.Minute, 10000)},
		} {
			t.Run(c.name+"/"+del.name, func(t *testing.T) {
				if _, err := conn.ExecContext(ctx, "DELETE FROM "+MarkerTable); err != nil {
					t.Fatal(err)
				}
				at(t, conn, c.written)
				if _, err := conn.ExecContext(ctx, "INSERT INTO "+MarkerTable+" (token, conn) VALUES (X'01', 1)"); err != nil {
					t.Fatal(err)
				}
				at(t, conn, c.deleted)
				res, err := conn.ExecContext(ctx, del.stmt)
				if err != nil {
					t.Fatalf("%s: %v", del.stmt, err)
				}
				if n, _ := res.RowsAffected(); n != 0 {
					t.Errorf("%s deleted a marker written 15 seconds before", del.stmt)
				}
			})
		}
	}
	// A marker old enough is still deleted, by either.
	for _, stmt := range []string{CleanupSQL(mariadb), DeleteSQL(mariadb, time.Minute, 10000)} {
		if _, err := conn.ExecContext(ctx, "DELETE FROM "+MarkerTable); err != nil {
			t.Fatal(err)
		}
		at(t, conn, "2027-03-28T00:59:50Z")
		if _, err := conn.ExecContext(ctx, "INSERT INTO "+MarkerTable+" (token, conn) VALUES (X'02', 1)"); err != nil {
			t.Fatal(err)
		}
		at(t, conn, "2027-03-28T01:30:00Z")
		res, err := conn.ExecContext(ctx, stmt)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Errorf("%s deleted %d markers 30 minutes old, want 1", stmt, n)
		}
	}
}
