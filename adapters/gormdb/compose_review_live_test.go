package gormdb_test

// Review B: GORM's own nested transactions (tx.Transaction, a savepoint)
// inside gormdb.InTx on MariaDB, with a real 1213 (the heavy transaction
// of gcmpScene).

import (
	"context"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

func rbLogCounts(t *testing.T, s *gcmpScene) map[string]int {
	t.Helper()
	var rows []struct {
		K string
		N int
	}
	if err := s.db.Raw("SELECT k, COUNT(*) AS n FROM " + s.log + " GROUP BY k").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.K] = r.N
	}
	return counts
}

// TestMariaDBGormNestedTransactionSwallowed: InTx's function runs a
// best-effort step in GORM's own nested transaction (tx.Transaction, which
// GORM implements with SAVEPOINT / ROLLBACK TO), swallows its 1213, writes
// C and returns nil. MariaDB rolled the whole transaction back at the
// 1213 (A and the step are gone), GORM's ROLLBACK TO fails unseen (1305),
// C is committed on its own, and InTx, which no scope told, commits
// nothing and reports success: A lost, C applied. With the step in
// gormdb.InSavepoint inside GORM's nested transaction, InTx sees the doom
// and returns the Ambiguous error of S5.
func TestMariaDBGormNestedTransactionSwallowed(t *testing.T) {
	for _, dbopScope := range []bool{false, true} {
		t.Run(fmt.Sprintf("InSavepoint inside=%v", dbopScope), func(t *testing.T) {
			s := newGcmpScene(t, fmt.Sprintf("rb_gnest_%v", dbopScope), gcmpDeadlock)
			var outer gcmpRecorder
			var swallowed []error
			attempts := 0
			op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				attempts++
				if err := s.write(ctx, tx, "A"); err != nil {
					return 0, err
				}
				err := tx.Transaction(func(tx2 *gorm.DB) error {
					step := s.step(tx2)
					if dbopScope {
						step = step.With(gormdb.InSavepoint(tx2, mariadb))
					}
					_, err := step.Run(ctx)
					return err
				})
				if err != nil {
					swallowed = append(swallowed, err) // best effort
				}
				return attempts, s.write(ctx, tx, "C")
			}, mariadb)
			err := s.run(t, func(ctx context.Context) (err error) {
				_, err = op.With(s.retry(&outer)).Run(ctx)
				return err
			})
			counts := rbLogCounts(t, s)
			t.Logf("Run: %v (verdict %v); attempts %d; swallowed %v; retried %v; log %v",
				err, dbop.VerdictOf(err), attempts, swallowed, outer.all(), counts)
			if len(swallowed) != 1 || !isMySQL(swallowed[0], 1213) {
				t.Fatalf("swallowed %v, want one 1213", swallowed)
			}
			if err == nil {
				t.Errorf("Run returned success; log rows %v: A and the step were rolled back by the 1213, C committed on its own", counts)
			}
		})
	}
}
