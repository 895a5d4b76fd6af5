package gormdb_test

import (
	osexec "os/exec"
	"strings"
	"testing"
)

// gormdb links no database driver: the rules of MySQL and MariaDB, which
// need go-sql-driver/mysql's error type, come with mysqldb, which only a
// program on the mysql dialector imports (gormdb.Dialect(mysqldb.MariaDB)),
// and pgx comes with GORM's postgres dialector, not with gormdb. Its tests
// use both; its non-test dependencies must not.
func TestNoDriverDependencies(t *testing.T) {
	goCmd, err := osexec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH:", err)
	}
	const pkg = "github.com/dbop-go/dbop/adapters/gormdb"
	out, err := osexec.CommandContext(t.Context(), goCmd, "list", "-deps", pkg).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*osexec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %s", pkg, msg)
	}
	forbidden := []string{"github.com/go-sql-driver/mysql", "github.com/jackc/pgx"}
	var found []string
	sawGORM := false // shows that the list holds the dependencies at all
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		sawGORM = sawGORM || dep == "gorm.io/gorm"
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				found = append(found, dep)
			}
		}
	}
	if !sawGORM {
		t.Errorf("go list -deps %s does not list gorm.io/gorm:\n%s", pkg, out)
	}
	if len(found) > 0 {
		t.Errorf("%s links %v", pkg, found)
	}
}
