package hotlock

import (
	"math"
	"strings"
	"testing"
)

// Every key, negative ones too, names one of the PostgreSQL lock tables,
// the same one each time, and its LOCK statement names that table.
func TestPostgresTableOfAKey(t *testing.T) {
	names := map[string]bool{}
	for _, n := range PostgresTableNames() {
		names[n] = true
	}
	if len(names) != PostgresTables {
		t.Fatalf("%d distinct table names, want %d", len(names), PostgresTables)
	}
	seen := map[string]bool{}
	for _, key := range []int64{0, 1, -1, 15, 16, 17, math.MaxInt64, math.MinInt64, 0x6462_6f70} {
		name := PostgresTable(key)
		if !names[name] || PostgresTable(key) != name {
			t.Errorf("key %d: table %q, not one of CreateHotSpotLocks's or not stable", key, name)
		}
		if want := "LOCK TABLE " + name + " IN EXCLUSIVE MODE"; PostgresLock(key) != want {
			t.Errorf("key %d: %q, want %q", key, PostgresLock(key), want)
		}
	}
	for key := range int64(PostgresTables) {
		seen[PostgresTable(key)] = true
	}
	if len(seen) != PostgresTables {
		t.Errorf("%d consecutive keys fell on %d tables", PostgresTables, len(seen))
	}
}

// PostgresCreate creates and comments every table, one statement each,
// and the names it hands out are a copy.
func TestPostgresCreate(t *testing.T) {
	stmts := Create(true)
	if len(stmts) != 2*PostgresTables {
		t.Fatalf("%d statements, want %d", len(stmts), 2*PostgresTables)
	}
	for i, name := range PostgresTableNames() {
		if want := "CREATE TABLE IF NOT EXISTS " + name + " ()"; stmts[2*i] != want {
			t.Errorf("statement %d: %q, want %q", 2*i, stmts[2*i], want)
		}
		if !strings.HasPrefix(stmts[2*i+1], "COMMENT ON TABLE "+name+" IS ") || strings.Contains(stmts[2*i+1], ";") {
			t.Errorf("statement %d: %q", 2*i+1, stmts[2*i+1])
		}
	}
	PostgresTableNames()[0] = "changed"
	if PostgresTableNames()[0] == "changed" {
		t.Error("PostgresTableNames handed out its own array")
	}
	if got := Create(false); len(got) != 1 || got[0] != MySQLCreate {
		t.Errorf("Create(false) = %q", got)
	}
}
