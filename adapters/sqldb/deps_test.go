package sqldb_test

import (
	"os/exec"
	"strings"
	"testing"
)

// No package links a driver its user does not use: sqldb and classifiers
// recognise errors by capability, so neither pgx nor go-sql-driver/mysql is
// among their dependencies (tests aside); go-sql-driver comes only with
// mysqldb, which needs its error type, and pgx never with any of them. The
// quickstart, which the README tells a newcomer to run first, links neither.
func TestNoDriverDependencies(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH:", err)
	}
	const (
		pgx   = "github.com/jackc/pgx"
		mysql = "github.com/go-sql-driver/mysql"
	)
	for _, tc := range []struct {
		pkg       string
		forbidden []string
		required  string // a driver the package must link: shows the check sees one
	}{
		{pkg: "github.com/dbop-go/dbop/adapters/sqldb", forbidden: []string{pgx, mysql}},
		{pkg: "github.com/dbop-go/dbop/classifiers", forbidden: []string{pgx, mysql}},
		{pkg: "github.com/dbop-go/dbop/adapters/mysqldb", forbidden: []string{pgx}, required: mysql},
		{pkg: "github.com/dbop-go/dbop/examples/quickstart", forbidden: []string{pgx, mysql}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), goCmd, "list", "-deps", tc.pkg).Output()
			if err != nil {
				msg := err.Error()
				if ee, ok := err.(*exec.ExitError); ok {
					msg += ": " + string(ee.Stderr)
				}
				t.Fatalf("go list -deps %s: %s", tc.pkg, msg)
			}
			var found []string
			requiredFound := false
			for dep := range strings.Lines(string(out)) {
				dep = strings.TrimSpace(dep)
				requiredFound = requiredFound || dep == tc.required
				for _, f := range tc.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						found = append(found, dep)
					}
				}
			}
			if tc.required != "" && !requiredFound {
				t.Errorf("%s does not link %s", tc.pkg, tc.required)
			}
			if len(found) > 0 {
				t.Errorf("%s links %v", tc.pkg, found)
			}
		})
	}
}
