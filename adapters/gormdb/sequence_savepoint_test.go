package gormdb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// GORM's twin of sqldb's TestRetryInsideATransactionNeverRunsAReleasedStepAgainLive:
// inside gormdb.InTx, a retry around a Then of savepoint steps whose first
// step released its savepoint does not run it again (ErrAlreadyCommitted;
// InTx rolls back); a retry around InTx runs the whole transaction again,
// and a retry with a savepoint of its own around the Then runs the Then
// again inside the transaction: each row once, counted on what the server
// committed.
func TestRetryInsideATransactionNeverRunsAReleasedStepAgainGORM(t *testing.T) {
	busy := dbop.Classify(errors.New("the step's statement failed"), dbop.RetryStatement)
	for _, b := range []struct {
		name string
		open func(t *testing.T) *gorm.DB
		opts []gormdb.TxOption
		sp   []gormdb.SavepointOption
	}{
		{"postgres", func(t *testing.T) *gorm.DB { return livePostgres(t, nil) }, nil, nil},
		{"mariadb", func(t *testing.T) *gorm.DB { return liveMySQL(t, nil) }, []gormdb.TxOption{mariadb}, []gormdb.SavepointOption{mariadb}},
	} {
		for _, c := range []struct {
			name       string
			ownSP      bool // a savepoint of the retry's own around the Then
			retryOwner bool // a retry around InTx
			wantErr    error
			want       int
		}{
			{"a retry around the Then", false, false, dbop.ErrAlreadyCommitted, 0},
			{"and a retry around InTx", false, true, nil, 1},
			{"a retry and a savepoint around the Then", true, false, nil, 1},
		} {
			t.Run(b.name+"/"+c.name, func(t *testing.T) {
				db := b.open(t)
				createTable(t, db, "gormdb_released_steps", "k varchar(8) NOT NULL")
				fails := 1
				op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					insert := func(k string) dbop.Op[int] {
						return dbop.Op[int](func(ctx context.Context) (int, error) {
							if err := tx.WithContext(ctx).Exec("INSERT INTO gormdb_released_steps (k) VALUES (?)", k).Error; err != nil {
								return 0, err
							}
							if k == "B" && fails > 0 {
								fails--
								return 0, busy
							}
							return 1, nil
						}).With(gormdb.InSavepoint(tx, b.sp...))
					}
					then := dbop.Then(insert("A"), func(ctx context.Context, _ int) (int, error) { return insert("B").Run(ctx) })
					retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))
					if c.ownSP {
						return then.With(retry, gormdb.InSavepoint(tx, b.sp...)).Run(ctx)
					}
					return then.With(retry).Run(ctx)
				}, b.opts...)
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
				var a, bs int64
				db.Raw("SELECT count(*) FROM gormdb_released_steps WHERE k = 'A'").Scan(&a)
				db.Raw("SELECT count(*) FROM gormdb_released_steps WHERE k = 'B'").Scan(&bs)
				if a != int64(c.want) || bs != int64(c.want) {
					t.Errorf("committed A %d times and B %d, want %d each", a, bs, c.want)
				}
			})
		}
	}
}
