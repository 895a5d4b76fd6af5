package mysqldb

import (
	"testing"

	"github.com/dbop-go/dbop/internal/sqldialect"
)

// Both dialects are complete, and differ in their family, which decides the
// statement time limit sqldb sets.
func TestDialects(t *testing.T) {
	for _, tc := range []struct {
		d      sqldialect.Dialect
		name   string
		family sqldialect.Family
	}{
		{MySQL, "mysql", sqldialect.MySQL},
		{MariaDB, "mariadb", sqldialect.MariaDB},
	} {
		if err := sqldialect.Check(tc.d); err != nil {
			t.Errorf("%v: %v", tc.d, err)
		}
		if tc.d.Name != tc.name || tc.d.String() != tc.name || tc.d.Family != tc.family {
			t.Errorf("%v: Name %q, Family %v; want %q, %v", tc.d, tc.d.Name, tc.d.Family, tc.name, tc.family)
		}
	}
}
