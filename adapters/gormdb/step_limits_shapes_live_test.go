package gormdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"gorm.io/gorm"
)

type shapesRow struct{ ID int }

func (shapesRow) TableName() string { return "gormdb_step_shapes" }

// The step limits hold for each *gorm.DB shape a user passes to InSavepoint inside
// InTx (no InTx deadline; WithTimeout(10s) on the step), on MariaDB: is
// max_statement_time set inside the step, and restored after?
func TestStepLimitsGormShapesMariaDB(t *testing.T) {
	for _, cfg := range []struct {
		name string
		cfg  *gorm.Config
	}{{"plain", nil}, {"PrepareStmtConfig", &gorm.Config{PrepareStmt: true}}} {
		db := onePool(t, liveMySQL(t, cfg.cfg))
		createTable(t, db, "gormdb_step_shapes", "id int")
		shapes := []struct {
			name string
			f    func(ctx context.Context, tx *gorm.DB, inner func(*gorm.DB) error) error
		}{
			{"as given", func(ctx context.Context, tx *gorm.DB, in func(*gorm.DB) error) error { return in(tx) }},
			{"WithContext", func(ctx context.Context, tx *gorm.DB, in func(*gorm.DB) error) error { return in(tx.WithContext(ctx)) }},
			{"Session", func(ctx context.Context, tx *gorm.DB, in func(*gorm.DB) error) error {
				return in(tx.Session(&gorm.Session{SkipDefaultTransaction: true}))
			}},
			{"Session PrepareStmt", func(ctx context.Context, tx *gorm.DB, in func(*gorm.DB) error) error {
				return in(tx.Session(&gorm.Session{PrepareStmt: true}))
			}},
			{"Model", func(ctx context.Context, tx *gorm.DB, in func(*gorm.DB) error) error {
				return in(tx.Model(&shapesRow{}))
			}},
			{"Table", func(ctx context.Context, tx *gorm.DB, in func(*gorm.DB) error) error {
				return in(tx.Table("gormdb_step_shapes"))
			}},
			{"nested Transaction", func(ctx context.Context, tx *gorm.DB, in func(*gorm.DB) error) error {
				return tx.Transaction(func(tx2 *gorm.DB) error { return in(tx2) })
			}},
		}
		for _, s := range shapes {
			t.Run(cfg.name+"/"+s.name, func(t *testing.T) {
				var before, inside, after string
				q := func(d *gorm.DB) string {
					var v string
					if err := d.Raw("SELECT @@SESSION.max_statement_time").Row().Scan(&v); err != nil {
						t.Fatal(err)
					}
					return v
				}
				_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
					return s.f(ctx, tx, func(stx *gorm.DB) error {
						before = q(stx)
						_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
							inside = q(stx.WithContext(ctx))
							return 0, nil
						}).With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(10*time.Second), gormdb.InSavepoint(stx, gormdb.Dialect(mysqldb.MariaDB))).Run(ctx)
						after = q(stx)
						return err
					})
				}, gormdb.Dialect(mysqldb.MariaDB)).Run(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: before %s inside %s after %s", s.name, before, inside, after)
				if !strings.HasPrefix(inside, "9.9") {
					t.Errorf("%s: max_statement_time inside the step %s, want ~9.95 (no limit set)", s.name, inside)
				}
				if after != before {
					t.Errorf("%s: not restored: %s, was %s", s.name, after, before)
				}
			})
		}
	}
}
