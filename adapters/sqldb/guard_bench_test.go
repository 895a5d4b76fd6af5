package sqldb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// BenchmarkInTxGuardMariaDB measures what guarding the connection of a
// transaction over a *sql.DB costs when it commits (docs/backends.md
// §7.11): "guarded" is sqldb.InTx over the *sql.DB, which holds a
// *sql.Conn per transaction; "unguarded" is the same transaction over a
// Beginner that hides the *sql.DB, so that InTx begins on the pool as it
// did before the guard. BEGIN, one UPDATE and COMMIT on the MariaDB of
// DBOP_TEST_MYSQL.
func BenchmarkInTxGuardMariaDB(b *testing.B) {
	db := openMariaDB(b)
	db.SetMaxIdleConns(4)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS dbop_guard_bench (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT IGNORE INTO dbop_guard_bench VALUES (1, 0)"); err != nil {
		b.Fatal(err)
	}
	fn := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE dbop_guard_bench SET n = n + 1 WHERE id = 1")
		return err
	}
	for _, bc := range []struct {
		name string
		b    sqldb.Beginner
	}{
		{"guarded", db},
		{"unguarded", ownBeginner{db}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			op := sqldb.Do(bc.b, mysqldb.MariaDB, fn)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := op.Run(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
