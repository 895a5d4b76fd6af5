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
