package sqldialect

import (
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
)

func TestFamilyString(t *testing.T) {
	for f, want := range map[Family]string{
		Postgres: "postgres", MySQL: "mysql", MariaDB: "mariadb", SQLite: "sqlite",
		0: "Family(0)", 9: "Family(9)",
	} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %q, want %q", uint8(f), got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	classify := func(error) dbop.Verdict { return dbop.Unclassified }
	valid := Dialect{Name: "pg", Family: Postgres, Classify: classify, CommitOutcome: classify}
	if err := Check(valid); err != nil {
		t.Errorf("Check(valid) = %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Dialect)
		want string
	}{
		{"zero", func(d *Dialect) { *d = Dialect{} }, "the zero Dialect"},
		{"no name", func(d *Dialect) { d.Name = "" }, "no Name"},
		{"no family", func(d *Dialect) { d.Family = 0 }, "dialect pg: invalid Family(0)"},
		{"bad family", func(d *Dialect) { d.Family = 7 }, "invalid Family(7)"},
		{"no classifier", func(d *Dialect) { d.Classify = nil }, "no Classify"},
		{"no commit outcome", func(d *Dialect) { d.CommitOutcome = nil }, "dialect pg: no CommitOutcome"},
		{"two missing", func(d *Dialect) { d.Classify, d.CommitOutcome = nil, nil }, "no Classify, no CommitOutcome"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := valid
			tc.edit(&d)
			err := Check(d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDialectString(t *testing.T) {
	if got := (Dialect{Name: "mariadb"}).String(); got != "mariadb" {
		t.Errorf("String() = %q", got)
	}
	if got := (Dialect{}).String(); got != "Dialect{Family: Family(0)}" {
		t.Errorf("zero String() = %q", got)
	}
}
