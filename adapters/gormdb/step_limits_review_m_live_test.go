package gormdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// (3c): the in-force expression through GORM's ? placeholders, on
// PostgreSQL (1ms checked with psql only: the probe itself times out): a
// session statement_timeout/lock_timeout of each value, InTx
// under WithTimeout(20s), a step under WithTimeout(10s). Inside the step
// each limit is the smaller of the one in force and ~9.95s; after the step
// (and the next checkout) the values are as before.
func TestStepLimitsInForceValuesGormPostgres(t *testing.T) {
	for _, c := range []struct{ inForce, want string }{
		{"0", "9950"}, {"150ms", "150"}, {"5s", "5000"}, {"1min", "9950"}, {"2147483647ms", "9950"},
	} {
		t.Run(c.inForce, func(t *testing.T) {
			cc, err := pgx.ParseConfig(testdb.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			cc.RuntimeParams["statement_timeout"] = c.inForce
			cc.RuntimeParams["lock_timeout"] = c.inForce
			db := onePool(t, openPostgres(t, cc, nil))
			show := func(db *gorm.DB) (string, string) {
				var s, l string
				if err := db.Raw("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')").Row().Scan(&s, &l); err != nil {
					t.Fatal(err)
				}
				return s, l
			}
			ms := func(db *gorm.DB) string {
				var s string
				if err := db.Raw("SELECT (SELECT setting FROM pg_settings WHERE name='statement_timeout') || ' ' || (SELECT setting FROM pg_settings WHERE name='lock_timeout')").Row().Scan(&s); err != nil {
					t.Fatal(err)
				}
				return s
			}
			var inside, after string
			_, err = gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
					inside = ms(tx.WithContext(ctx))
					return 0, nil
				}).With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(10*time.Second), gormdb.InSavepoint(tx)).Run(ctx)
				s, l := show(tx)
				after = s + " " + l
				return err
			}).With(dbop.WithTimeout(20 * time.Second)).Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			s, l := show(db)
			t.Logf("in force %s: inside the step %s (ms); after the step %s; next checkout %s %s", c.inForce, inside, after, s, l)
			// The derived value is 10s less the 50ms margin, rounded down,
			// minus the time already used: accept 9900..9950.
			inRange := func(v string) bool {
				if c.want != "9950" {
					return v == c.want
				}
				return v >= "9900" && v <= "9950" && len(v) == 4
			}
			var gs, gl string
			for i, r := range inside {
				if r == ' ' {
					gs, gl = inside[:i], inside[i+1:]
				}
			}
			if !inRange(gs) || !inRange(gl) {
				t.Errorf("in force %s: inside the step %s; want %s for both", c.inForce, inside, c.want)
			}
			if s != c.inForce && !(c.inForce == "2147483647ms" && s == "2147483647ms") {
				t.Errorf("next checkout statement_timeout %s, want %s", s, c.inForce)
			}
		})
	}
}
