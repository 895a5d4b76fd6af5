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
