package mysqldb_test

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/google/go-cmp/cmp"
)

// verdictCase is one row of a classifier's table: an error and the verdict
// the classifier must give it.
type verdictCase struct {
	name string
	err  error
	want dbop.Verdict
}

// checkVerdicts runs each case as a named subtest, three times: the bare
// error, the error wrapped with fmt.Errorf("%w"), and the error joined after
// an unrelated one with errors.Join. The verdict must be the same each time.
func checkVerdicts(t *testing.T, name string, classify func(error) dbop.Verdict, cases []verdictCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, form := range []struct {
				name string
				err  error
			}{
				{"bare", tc.err},
				{"wrapped", fmt.Errorf("transfer %d: %w", 42, tc.err)},
				{"joined", errors.Join(errors.New("audit log: write failed"), tc.err)},
			} {
				t.Run(form.name, func(t *testing.T) {
					got := classify(form.err)
					if diff := cmp.Diff(tc.want, got); diff != "" {
						t.Errorf("%s(%v) = %v, want %v (-want +got):\n%s", name, form.err, got, tc.want, diff)
					}
				})
			}
		})
	}
}

// openMySQL opens a pool on the server DBOP_TEST_MYSQL names, closed when
// t ends.
func openMySQL(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
