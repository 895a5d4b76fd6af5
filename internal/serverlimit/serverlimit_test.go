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
			"set_config('statement_timeout', LEAST(COALESCE(NULLIF(CASE WHEN translate(current_setting('statement_timeout'), '0123456789', '') = '' THEN current_setting('statement_timeout')::numeric ELSE EXTRACT(EPOCH FROM current_setting('statement_timeout')::interval) * 1000 END, 0), 2147483647), 1950)::bigint::text, true)"},
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
