package serverlimit

import "testing"

// The SQL of a derived limit: the server takes the least of it and the
// value in force, 0 in force ("no limit") giving the derived value. The
// live tests of the adapters run these strings on PostgreSQL and MariaDB.
func TestSQL(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"postgres", PostgresLeast("statement_timeout", 1950),
			"set_config('statement_timeout', CASE WHEN current_setting('statement_timeout') = '0' OR (current_setting('statement_timeout') || CASE WHEN strpos('0123456789', right(current_setting('statement_timeout'), 1)) > 0 THEN 'ms' ELSE '' END)::interval > '1950ms' THEN '1950' ELSE current_setting('statement_timeout') END, true)"},
		{"postgres select", PostgresSelect([]string{"a", "b"}), "SELECT a, b"},
		{"postgres select of none", PostgresSelect(nil), ""},
		{"mariadb", MySQLLeast("max_statement_time", "0.270000", true),
			"IF(@@SESSION.max_statement_time = 0, 0.270000, LEAST(@@SESSION.max_statement_time, 0.270000))"},
		{"mysql lock waits", MySQLLeast("innodb_lock_wait_timeout", "2", false),
			"LEAST(@@SESSION.innodb_lock_wait_timeout, 2)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.name, tt.got, tt.want)
		}
	}
}

// A derived value above PostgresMaxMillis (a deadline more than about 24.8
// days away) is written as PostgresMaxMillis: set_config refuses a larger
// one (22023), which the numeric form's LEAST with 2147483647 never wrote
// (docs/backends.md §1.18). Found by a review of the interval form.
func TestPostgresLeastCapsTheDerivedValue(t *testing.T) {
	capped := PostgresLeast("lock_timeout", 2147483647)
	for _, ms := range []int64{2147483648, 30 * 24 * 3600 * 1000, 1 << 62, 9223372036854775807} {
		if got := PostgresLeast("lock_timeout", ms); got != capped {
			t.Errorf("PostgresLeast(lock_timeout, %d):\ngot  %q\nwant %q", ms, got, capped)
		}
	}
}

func TestJoin(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"", ""}, ""},
		{[]string{"SET LOCAL a = 1", "", "LOCK TABLE t", "SELECT 1"}, "SET LOCAL a = 1; LOCK TABLE t; SELECT 1"},
		{[]string{"", "SELECT 1"}, "SELECT 1"},
	} {
		if got := Join(c.in...); got != c.want {
			t.Errorf("Join(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
