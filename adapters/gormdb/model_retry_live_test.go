package gormdb_test

// GORM writes back into the model it is given: the primary key a Create or
// Save got back, among others, and the rollback of a failed attempt does not
// undo that (docs/backends.md §9.9). A retry that saves a model declared
// outside InTx's function finds its key set: tx.Save takes it for an
// update, updates no row, and inserts it with hooks skipped, so the
// model's AfterCreate hook runs on no attempt that commits. The package
// documentation tells users to declare the models inside the function;
// this test shows why, on live servers, with a real deadlock.

import (
	"context"
	"sync"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// hookedOrder writes its ledger row in its AfterCreate hook, as a user's
// model would.
type hookedOrder struct {
	ID   int64 `gorm:"primaryKey"`
	Item string
}

func (hookedOrder) TableName() string { return "gormdb_hooked_orders" }

func (o *hookedOrder) AfterCreate(tx *gorm.DB) error {
	return tx.Exec("INSERT INTO gormdb_hooked_ledger (order_id, item) VALUES (?, ?)", o.ID, o.Item).Error
}

func TestLiveSaveOfAModelFromOutsideSkipsCreateHooksOnTheRetry(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(*testing.T, *gorm.Config) *gorm.DB
		id   string
		opts []gormdb.TxOption
	}{
		{"postgres", livePostgres, "bigserial", nil},
		{"mariadb", liveMySQL, "bigint AUTO_INCREMENT", []gormdb.TxOption{mariadb}},
	} {
		for _, outside := range []bool{true, false} {
			name := b.name + "/declared inside"
			if outside {
				name = b.name + "/declared outside"
			}
			t.Run(name, func(t *testing.T) {
				db := b.open(t, nil)
				createTable(t, db, "gormdb_hooked_orders", "id "+b.id+" PRIMARY KEY, item varchar(8) NOT NULL")
				createTable(t, db, "gormdb_hooked_ledger", "order_id bigint NOT NULL UNIQUE, item varchar(8) NOT NULL")
				createTable(t, db, "gormdb_hooked_rows", "id int PRIMARY KEY, n int NOT NULL")
				exec(t, db, "INSERT INTO gormdb_hooked_rows (id, n) VALUES (1, 0), (2, 0)")
				saveHookedOrders(t, db, b.opts, outside)
			})
		}
	}
}

// saveHookedOrders runs two transactions that each save an order and then
// update two rows in opposite orders, so that one of them dies in a
// deadlock and is retried; outside: each saves a model declared outside
// its function.
func saveHookedOrders(t *testing.T, db *gorm.DB, opts []gormdb.TxOption, outside bool) {
	t.Helper()
	bothLocked := newBarrier(2)
	done := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var mu sync.Mutex
	var retried []dbop.AttemptEvent
	errs := make([]error, 2)
	update := "UPDATE gormdb_hooked_rows SET n = n + 1 WHERE id = ?"
	var wg sync.WaitGroup
	for i, order := range [][2]int{{1, 2}, {2, 1}} {
		item := []string{"a", "b"}[i]
		wg.Go(func() {
			defer close(done[i])
			runs := 0
			o := hookedOrder{Item: item}
			_, errs[i] = gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				runs++
				if !outside {
					o = hookedOrder{Item: item}
				}
				if err := tx.Save(&o).Error; err != nil {
					return err
				}
				if err := tx.Exec(update, order[0]).Error; err != nil {
					return err
				}
				if runs == 1 {
					if err := bothLocked.arrive(ctx); err != nil {
						return dbop.Classify(err, dbop.NotRetryable)
					}
				}
				return tx.Exec(update, order[1]).Error
			}, opts...).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
				dbop.OnRetry(func(ctx context.Context, e dbop.AttemptEvent) {
					mu.Lock()
					retried = append(retried, e)
					mu.Unlock()
					select { // the victim runs again once the winner has committed
					case <-done[1-i]:
					case <-ctx.Done():
					}
				}))).Run(t.Context())
		})
	}
	wg.Wait()
	if len(retried) != 1 || retried[0].Verdict != dbop.RetryTransaction {
		t.Fatalf("retried %v; want one deadlock (the fault did not fire)", retried)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("transaction %d: %v", i+1, err)
		}
	}
	var orders, ledger int64
	if err := db.Raw("SELECT COUNT(*) FROM gormdb_hooked_orders").Scan(&orders).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Raw("SELECT COUNT(*) FROM gormdb_hooked_ledger").Scan(&ledger).Error; err != nil {
		t.Fatal(err)
	}
	wantLedger := int64(2)
	if outside {
		wantLedger = 1 // the victim's hook ran on its rolled-back attempt only
	}
	if orders != 2 || ledger != wantLedger {
		t.Errorf("%d orders and %d ledger rows after two successes; want 2 and %d", orders, ledger, wantLedger)
	}
}
