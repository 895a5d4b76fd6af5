package mysqldb_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/go-sql-driver/mysql"
)

// Setting a system variable the server does not have fails with 1193 on
// every attempt (docs/backends.md §3.8). MariaDB has no max_execution_time
// (MySQL's statement time limit), which is how a MySQL setting reaches it.
func TestLiveUnknownSystemVariable(t *testing.T) {
	db := openMySQL(t)
	var version string
	if err := db.QueryRowContext(t.Context(), "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	stmts := []string{"SET SESSION dbop_no_such_variable = 1"}
	if strings.Contains(version, "MariaDB") {
		stmts = append(stmts, "SET SESSION max_execution_time = 1000")
	}
	for _, stmt := range stmts {
		t.Run(stmt, func(t *testing.T) {
			_, err := db.ExecContext(t.Context(), stmt)
			if me, ok := errors.AsType[*mysql.MySQLError](err); !ok || me.Number != 1193 {
				t.Fatalf("%s on %s: got %v, want error 1193", stmt, version, err)
			}
			checkVerdicts(t, "Classifier", mysqldb.Classifier, []verdictCase{{"Classifier", err, dbop.NotRetryable}})
			checkVerdicts(t, "MariaDB.Classify", mysqldb.MariaDB.Classify, []verdictCase{{"MariaDB", err, dbop.NotRetryable}})
		})
	}
}
