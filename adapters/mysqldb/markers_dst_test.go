package mysqldb_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/testdb"
)

// DeleteCommitMarkers reckons a marker's age in real time, not on the
// session's wall clock: in a zone with daylight saving, a minute's floor
// deleted a marker 15 seconds old when the clocks went forward, and its
// transaction's resolution took it for a rollback (docs/backends.md §11.2;
// internal/resolve TestMarkersAreNotDeletedYoungAcrossADaylightSavingChange
// runs the statements themselves). The session keeps Europe/Berlin time and
// a temporary marker table: nothing outside it is touched.
func TestDeleteCommitMarkersAcrossADaylightSavingChange(t *testing.T) {
	db := openMySQL(t)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var berlin sql.NullString
	if err := conn.QueryRowContext(t.Context(), "SELECT CONVERT_TZ('2027-03-28 01:59:50', 'Europe/Berlin', 'UTC')").Scan(&berlin); err != nil {
		t.Fatal(err)
	}
	if !berlin.Valid {
		testdb.NoTimeZoneTables(t) // a session cannot reckon time across a daylight saving change
	}
	exec := func(stmt string, args ...any) int64 {
		t.Helper()
		res, err := conn.ExecContext(t.Context(), stmt, args...)
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		n, _ := res.RowsAffected()
		return n
	}
	exec("SET time_zone = 'Europe/Berlin'")
	exec(strings.Replace(resolve.CreateMarkersSQL, "CREATE TABLE IF NOT EXISTS", "CREATE TEMPORARY TABLE", 1))
	// Written at 01:59:50 CET; the clocks go forward at 02:00 CET.
	exec("SET timestamp = ?", time.Date(2027, 3, 28, 0, 59, 50, 0, time.UTC).Unix())
	exec("INSERT INTO " + mysqldb.CommitMarkerTable + " (token, conn) VALUES (X'01', 1)")
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{time.Date(2027, 3, 28, 1, 0, 5, 0, time.UTC), 0}, // 03:00:05 CEST, 15 s later
		{time.Date(2027, 3, 28, 1, 1, 0, 0, time.UTC), 1}, // 70 s later
	} {
		exec("SET timestamp = ?", c.at.Unix())
		n, err := mysqldb.DeleteCommitMarkers(t.Context(), conn, time.Minute)
		if err != nil || n != c.want {
			t.Errorf("DeleteCommitMarkers(a minute) %v after the marker was written = %d, %v; want %d", c.at.Sub(time.Date(2027, 3, 28, 0, 59, 50, 0, time.UTC)), n, err, c.want)
		}
	}
}
