package dbopvet

import "testing"

func TestWriteVerb(t *testing.T) {
	for _, tt := range []struct {
		name, sql, want string
	}{
		{"insert", "INSERT INTO t VALUES (1)", "INSERT"},
		{"lower case", "update t set n = 1", "UPDATE"},
		{"mixed case", "DeLeTe FROM t", "DELETE"},
		{"leading space", " \n\t INSERT INTO t VALUES (1)", "INSERT"},
		{"line comment", "-- why\nINSERT INTO t VALUES (1)", "INSERT"},
		{"block comment", "/* why */ UPDATE t SET n = 1", "UPDATE"},
		{"nested block comment", "/* a /* b */ c */DELETE FROM t", "DELETE"},
		{"comments and space", "  -- one\n  /* two */\n  -- three\n  insert into t default values", "INSERT"},
		{"select", "SELECT * FROM t", ""},
		{"select for update", "SELECT * FROM t FOR UPDATE", ""},
		{"returning read", "  select 'INSERT'", ""},
		{"with", "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", ""},
		{"word prefix", "INSERTED", ""},
		{"unterminated comment", "/* INSERT", ""},
		{"comment to the end", "-- INSERT", ""},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := writeVerb(tt.sql); got != tt.want {
				t.Errorf("writeVerb(%q) = %q, want %q", tt.sql, got, tt.want)
			}
		})
	}
}

func TestEndsTxText(t *testing.T) {
	for _, tt := range []struct {
		name, sql, want string
	}{
		{"commit", "COMMIT", "COMMIT"},
		{"end", "end", "COMMIT"},
		{"rollback", " rollback", "ROLLBACK"},
		{"rollback work", "ROLLBACK WORK", "ROLLBACK"},
		{"abort", "ABORT", "ROLLBACK"},
		{"rollback to", "ROLLBACK TO SAVEPOINT a", ""},
		{"rollback work to", "ROLLBACK WORK TO a", ""},
		{"rollback transaction to", "rollback transaction /* x */ to savepoint a", ""},
		{"commit after comment", "/* done */ COMMIT", "COMMIT"},
		{"savepoint", "SAVEPOINT a", ""},
		{"release", "RELEASE SAVEPOINT a", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := endsTxText(tt.sql); got != tt.want {
				t.Errorf("endsTxText(%q) = %q, want %q", tt.sql, got, tt.want)
			}
		})
	}
}

func FuzzSQLWords(f *testing.F) {
	for _, s := range []string{"INSERT", "/* /* */", "-- x\n", "/*/", "ROLLBACK WORK TO a", "\u00a0update"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, _ := sqlWords(s)
		if v := writeVerb(s); v != "" && v != first {
			t.Errorf("writeVerb(%q) = %q, but the first word is %q", s, v, first)
		}
		endsTxText(s)
	})
}

func TestFindSettingChange(t *testing.T) {
	for _, tt := range []struct {
		name, sql, want string
	}{
		{"set local", "SET LOCAL lock_timeout = '1s'", "SET LOCAL lock_timeout"},
		{"lower case, comment", "/* why */ set local Statement_Timeout to 0", "SET LOCAL statement_timeout"},
		{"dotted", "SET LOCAL app.user = 'ann'", "SET LOCAL app.user"},
		{"quoted name", `SET LOCAL "app"."user" = 'ann'`, "SET LOCAL app.user"},
		{"time zone", "SET LOCAL TIME ZONE 'UTC'", "SET LOCAL time zone"},
		{"transaction", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET TRANSACTION"},
		{"constraints", "set constraints all deferred", "SET CONSTRAINTS"},
		{"second statement", "UPDATE t SET s = ';'; SET LOCAL lock_timeout = 1", "SET LOCAL lock_timeout"},
		{"set_config true", "SELECT set_config('app.user', $1, true)", "set_config('app.user', …, true)"},
		{"set_config spaced", "select SET_CONFIG ( 'a' , f(1, 2) , 't' )", "set_config('a', …, true)"},
		{"set_config cast", "SELECT pg_catalog.set_config('a', 'b', 'on'::boolean)", "set_config('a', …, true)"},
		{"set_config param name", "SELECT set_config($1, $2, TRUE)", "set_config($1, …, true)"},
		{"set_config false", "SELECT set_config('a', 'b', false)", ""},
		{"set_config unknown", "SELECT set_config('a', 'b', $3)", ""},
		{"set_config in a string", "SELECT 'set_config(''a'', ''b'', true)'", ""},
		{"set_config in an E string", `SELECT E'\'set_config(a, b, true)'`, ""},
		{"set_config in a comment", "SELECT 1 -- set_config('a', 'b', true)", ""},
		{"set_config in dollars", "SELECT $x$ set_config('a', 'b', true) $x$", ""},
		{"other function", "SELECT my_set_config('a', 'b', true)", ""},
		{"set session", "SET lock_timeout = '1s'", ""},
		{"session", "SET SESSION lock_timeout = '1s'", ""},
		{"characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", ""},
		{"in a string", "INSERT INTO log VALUES ('x; SET LOCAL a = 1')", ""},
		{"update set", "UPDATE t SET local = 1", ""},
		{"unterminated", "SELECT set_config('a', 'b', true", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := findSettingChange(tt.sql)
			if got.what != tt.want {
				t.Errorf("findSettingChange(%q) = %q, want %q", tt.sql, got.what, tt.want)
			}
		})
	}
}
