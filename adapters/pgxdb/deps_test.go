package pgxdb_test

import (
	osexec "os/exec"
	"slices"
	"strings"
	"testing"
)

// A program that imports pgxdb links pgx and no other database driver
// (docs/vocabulary.md, "Modules and drivers").
func TestLinksNoOtherDriver(t *testing.T) {
	goCmd, err := osexec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not available: %v", err)
	}
	out, err := osexec.CommandContext(t.Context(), goCmd, "list", "-deps", "github.com/dbop-go/dbop/adapters/pgxdb").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*osexec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, msg)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/jackc/pgx/v5") {
		t.Fatalf("go list -deps does not list pgx; the list is not what this test expects:\n%s", out)
	}
	for _, p := range deps {
		switch {
		case strings.HasPrefix(p, "github.com/go-sql-driver/mysql"),
			strings.HasPrefix(p, "modernc.org/sqlite"),
			strings.Contains(p, "gorm"),
			strings.Contains(p, "mattn"):
			t.Errorf("pgxdb depends on %s", p)
		}
	}
}
