package sqldb_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// TestHotSpotLetsSlowTransactionsFinish: one caller, nothing else running,
// transactions of 600 ms under a new HotSpot, whose first bound is 200 ms
// (on MariaDB max_statement_time, its one limit; on PostgreSQL
// lock_timeout, with statement_timeout about 405 ms from the attempt's
// backstop). The attempt after one that timed out gets twice its bound,
// and once one succeeded the HotSpot bounds attempts by what they take:
// every operation succeeds, and the later ones at their first attempt.
func TestHotSpotLetsSlowTransactionsFinish(t *testing.T) {
	for _, c := range []struct {
		name  string
		db    func(t *testing.T) *sql.DB
		d     sqldb.Dialect
		sleep string
	}{
		{"mariadb", func(t *testing.T) *sql.DB { return openMariaDB(t) }, mysqldb.MariaDB, "SELECT SLEEP(0.6)"},
		{"postgres", func(t *testing.T) *sql.DB { return postgresInSchema(t, "sqldb_hot_slow", true) }, sqldb.Postgres, "SELECT pg_sleep(0.6)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.db(t)
			if err := sqldb.CreateHotSpotLocks(t.Context(), db, c.d); err != nil {
				t.Fatal(err)
			}
			pipeline := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(5)), dbop.HotSpot())
			runs := 0
			op := sqldb.InTx(db, c.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				_, err := tx.ExecContext(ctx, c.sleep)
				return 1, err
			})
			for i := range 3 {
				before, start := runs, time.Now()
				v, err := op.With(pipeline).Run(t.Context())
				if err != nil || v != 1 {
					t.Fatalf("operation %d, a lone 600 ms transaction: %d, %v after %d attempts, %v", i, v, err, runs-before, time.Since(start).Round(time.Millisecond))
				}
				if i > 0 && runs-before != 1 {
					t.Errorf("operation %d took %d attempts; want 1, the HotSpot having seen one succeed", i, runs-before)
				}
			}
		})
	}
}
