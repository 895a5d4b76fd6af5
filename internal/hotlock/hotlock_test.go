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

// An attempt with keys locks its HotSpot's table in the shared mode and
// each key's stripe exclusively, every table once, in the order of the
// tables' numbers; consecutive keys fall on different stripes, never on
// the HotSpot's own table. Without keys it is the one exclusive lock.
func TestPostgresLocksOfKeys(t *testing.T) {
	number := map[string]int{}
	for i, n := range PostgresTableNames() {
		number[n] = i
	}
	for _, key := range []int64{0, 5, 15, -1, math.MinInt64, 0x6462_6f70} {
		if got, keyed := PostgresLocks(key, nil); len(got) != 1 || got[0] != PostgresLock(key) || keyed {
			t.Errorf("key %d without keys: %q, %v, want %q, false", key, got, keyed, PostgresLock(key))
		}
		// Five stripes or more: the HotSpot's lock alone, exclusively.
		if got, keyed := PostgresLocks(key, []int64{1, 2, 3, 4, 5}); len(got) != 1 || got[0] != PostgresLock(key) || keyed {
			t.Errorf("key %d with keys on 5 stripes: %q, %v, want %q, false", key, got, keyed, PostgresLock(key))
		}
		for _, keys := range [][]int64{{1}, {1, 2}, {3, 4, 5, 6}, {-7, 0, 8}, {1, 16}, {0, 15}, {-1, 0}, {-2, -1, 0, 1}, {1, 16, 31, 46, 61}} {
			stmts, keyed := PostgresLocks(key, keys)
			if !keyed {
				t.Errorf("key %d, keys %d: not keyed", key, keys)
			}
			last, shared, exclusive := -1, 0, 0
			for _, stmt := range stmts {
				name, mode, ok := strings.Cut(strings.TrimPrefix(stmt, "LOCK TABLE "), " IN ")
				n, known := number[name]
				if !ok || !known || !strings.HasSuffix(mode, " MODE") {
					t.Fatalf("key %d, keys %d: statement %q", key, keys, stmt)
				}
				if n <= last {
					t.Errorf("key %d, keys %d: %q after table %d: not in ascending order", key, keys, stmts, last)
				}
				last = n
				switch strings.TrimSuffix(mode, " MODE") {
				case PostgresShareMode:
					shared++
					if name != PostgresTable(key) {
						t.Errorf("key %d, keys %d: %s shared, want the HotSpot's %s", key, keys, name, PostgresTable(key))
					}
				case PostgresLockMode:
					exclusive++
					if name == PostgresTable(key) {
						t.Errorf("key %d, keys %d: the HotSpot's own table locked exclusively", key, keys)
					}
				default:
					t.Errorf("key %d, keys %d: mode %q", key, keys, mode)
				}
			}
			// Keys 15 apart share a stripe; others do not, negative
			// ones included.
			stripes := map[int64]bool{}
			for _, k := range keys {
				stripes[((k%(PostgresTables-1))+PostgresTables-1)%(PostgresTables-1)] = true
			}
			if shared != 1 || exclusive != len(stripes) {
				t.Errorf("key %d, keys %d: %d shared and %d exclusive locks, want 1 and %d: %q", key, keys, shared, exclusive, len(stripes), stmts)
			}
		}
	}
}

// The rows of a HotSpot's keys on MySQL: one of MySQLStripes per key,
// consecutive keys on different rows, none the HotSpot's own row or
// another HotSpot's; the statement locks them once each, sorted, and
// counts them.
func TestMySQLKeyRows(t *testing.T) {
	spots := []int64{0, 1, 2, -1, 0x6462_6f70}
	rows := map[int64]int64{}
	for _, spot := range spots {
		rows[spot] = spot
	}
	for _, spot := range spots {
		for k := range int64(MySQLStripes) {
			id := MySQLKeyRow(spot, k)
			if other, taken := rows[id]; taken {
				t.Fatalf("HotSpot %d key %d: row %d already stands for %d", spot, k, id, other)
			}
			rows[id] = spot
			if again := MySQLKeyRow(spot, k+MySQLStripes); again != id {
				t.Errorf("HotSpot %d: keys %d and %d on rows %d and %d, want one stripe", spot, k, k+MySQLStripes, id, again)
			}
		}
	}
	if stmt, args := mySQLKeysLock(7, []int64{1, 2, 3, 4, 5}); stmt != "" || args != nil {
		t.Errorf("keys on 5 rows: %q %v, want none (the HotSpot's row alone)", stmt, args)
	}
	stmt, args := mySQLKeysLock(7, []int64{3, 1, 2, 1 + MySQLStripes})
	if want := "SELECT COUNT(*) FROM " + MySQLTable + " WHERE id IN (?, ?, ?) FOR UPDATE"; stmt != want {
		t.Errorf("statement %q, want %q", stmt, want)
	}
	if len(args) != 3 {
		t.Fatalf("%d arguments, want 3 (keys 1 and %d share a row)", len(args), 1+MySQLStripes)
	}
	for i := 1; i < len(args); i++ {
		if args[i-1].(int64) >= args[i].(int64) {
			t.Errorf("rows %v not in ascending order", args)
		}
	}
	if got, want := mySQLAdd(3), "INSERT IGNORE INTO "+MySQLTable+" (id) VALUES (?), (?), (?)"; got != want {
		t.Errorf("mySQLAdd(3) = %q, want %q", got, want)
	}
}
