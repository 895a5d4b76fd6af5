package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/testdb"
)

// Inside a transaction, a retry around a Then of savepoint steps whose
// first step released its savepoint and whose second failed (a statement
// error, rolled back to its savepoint) does not run the first again: its
// row is in the transaction, and running it again would put it there
// twice. The retry returns ErrAlreadyCommitted; InTx rolls back, and a
// retry around InTx runs the whole transaction again: each row once. With
// a savepoint of its own around the Then, the retry runs the Then again
// inside the transaction: each row once too, checked on the rows the
// server committed.
func TestRetryInsideATransactionNeverRunsAReleasedStepAgainLive(t *testing.T) {
	busy := dbop.Classify(errors.New("the step's statement failed"), dbop.RetryStatement)
	for _, b := range []struct {
		name string
		open func(t *testing.T) *sql.DB
		d    sqldb.Dialect
	}{
		{"postgres", func(t *testing.T) *sql.DB { return openPostgres(t) }, sqldb.Postgres},
		{"mariadb", func(t *testing.T) *sql.DB { return openMariaDB(t) }, mysqldb.MariaDB},
		{"sqlite", func(t *testing.T) *sql.DB { return openSQLite(t, testdb.SQLiteFile(t)) }, sqldb.SQLite},
	} {
		for _, c := range []struct {
			name       string
			ownSP      bool // a savepoint of the retry's own around the Then
			retryOwner bool // a retry around InTx
			wantErr    error
			wantA      int
		}{
			{"a retry around the Then", false, false, dbop.ErrAlreadyCommitted, 0},
			{"and a retry around InTx", false, true, nil, 1},
			{"a retry and a savepoint around the Then", true, false, nil, 1},
		} {
			t.Run(b.name+"/"+c.name, func(t *testing.T) {
				db := b.open(t)
				rows := table(t, db, "sqldb_released_steps", "(k varchar(8) NOT NULL)")
				fails := 1
				op := sqldb.InTx(db, b.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
					insert := func(k string) dbop.Op[int] {
						return dbop.Op[int](func(ctx context.Context) (int, error) {
							if _, err := tx.ExecContext(ctx, "INSERT INTO "+rows+" (k) VALUES ('"+k+"')"); err != nil {
								return 0, err
							}
							if k == "B" && fails > 0 {
								fails--
								return 0, busy
							}
							return 1, nil
						}).With(sqldb.InSavepoint(tx, b.d))
					}
					then := dbop.Then(insert("A"), func(ctx context.Context, _ int) (int, error) { return insert("B").Run(ctx) })
					retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))
					if c.ownSP {
						return then.With(retry, sqldb.InSavepoint(tx, b.d)).Run(ctx)
					}
					return then.With(retry).Run(ctx)
				})
				if c.retryOwner {
					op = op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
				}
				_, err := op.Run(t.Context())
				switch {
				case c.wantErr == nil && err != nil:
					t.Errorf("Run: %v, want success", err)
				case c.wantErr != nil && !errors.Is(err, c.wantErr):
					t.Errorf("Run: %v, want an error matching %v", err, c.wantErr)
				}
				a := scalar[int](t, db, "SELECT count(*) FROM "+rows+" WHERE k = 'A'")
				bs := scalar[int](t, db, "SELECT count(*) FROM "+rows+" WHERE k = 'B'")
				if a != c.wantA || bs != c.wantA {
					t.Errorf("committed A %d times and B %d, want %d each", a, bs, c.wantA)
				}
			})
		}
	}
}
