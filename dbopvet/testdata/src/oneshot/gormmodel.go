package oneshot

// GORM's model: a struct with create hooks, declared outside a function a
// retry may run more than once and saved inside it. GORM writes the
// primary key the first attempt got back into the model, and a retry's
// Save then inserts it with hooks skipped (docs/backends.md §9.9).

import (
	"context"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

var gdb *gorm.DB

type Order struct {
	ID   int64
	Item string
}

func (o *Order) AfterCreate(tx *gorm.DB) error { return nil }

type Audit struct{ ID int64 }

func (a *Audit) BeforeCreate(tx *gorm.DB) error { return nil }

type Plain struct{ ID int64 } // no create hook: a retry's Save inserts it all the same

// --- true positives ---------------------------------------------------

// The model built before Do, saved by address.
func saveOrder(ctx context.Context, item string) error {
	o := Order{Item: item}
	_, err := gormdb.Do(gdb, func(ctx context.Context, tx *gorm.DB) error {
		return tx.Save(&o).Error // want `^o \(oneshot.Order\) is built outside the function gormdb.Do runs \(line 34\) and saved by tx.Save inside it; dbop.WithRetry in retried \(line 37\) may run the function more than once: GORM writes the primary key the first attempt got back into o, and the rollback keeps it: a retry's Save takes o for an update, updates no row and inserts it with hooks skipped, so its AfterCreate runs on no attempt that commits; build it inside the function$`
	}).With(retried).Run(ctx)
	return err
}

// A pointer to the model, declared outside, on a derived handle.
func saveAudit(ctx context.Context) error {
	a := &Audit{}
	_, err := gormdb.InTx(gdb, func(ctx context.Context, tx *gorm.DB) (int64, error) {
		err := tx.WithContext(ctx).Save(a).Error // want `^a \(\*oneshot.Audit\) is built outside the function gormdb.InTx runs \(line 43\) and saved by tx.WithContext\(ctx\).Save inside it; dbop.WithRetry in retried \(line 47\) may run the function more than once: GORM writes the primary key the first attempt got back into a, and the rollback keeps it: a retry's Save takes a for an update, updates no row and inserts it with hooks skipped, so its BeforeCreate runs on no attempt that commits; build it inside the function$`
		return a.ID, err
	}).With(retried).Run(ctx)
	return err
}

// --- negatives --------------------------------------------------------

// Built again at each attempt.
func saveOrderInside(ctx context.Context, item string) error {
	var o Order
	_, err := gormdb.Do(gdb, func(ctx context.Context, tx *gorm.DB) error {
		o = Order{Item: item}
		return tx.Save(&o).Error
	}).With(retried).Run(ctx)
	return err
}

// Declared inside.
func saveOrderDeclaredInside(ctx context.Context, item string) error {
	_, err := gormdb.Do(gdb, func(ctx context.Context, tx *gorm.DB) error {
		o := Order{Item: item}
		return tx.Save(&o).Error
	}).With(retried).Run(ctx)
	return err
}

// No create hook to skip.
func savePlain(ctx context.Context) error {
	p := Plain{}
	_, err := gormdb.Do(gdb, func(ctx context.Context, tx *gorm.DB) error {
		return tx.Save(&p).Error
	}).With(retried).Run(ctx)
	return err
}

// Create runs the hooks on every attempt.
func createOrder(ctx context.Context, item string) error {
	o := Order{Item: item}
	_, err := gormdb.Do(gdb, func(ctx context.Context, tx *gorm.DB) error {
		return tx.Create(&o).Error
	}).With(retried).Run(ctx)
	return err
}

// No retry runs the function again.
func saveOrderOnce(ctx context.Context, item string) error {
	o := Order{Item: item}
	_, err := gormdb.Do(gdb, func(ctx context.Context, tx *gorm.DB) error {
		return tx.Save(&o).Error
	}).Run(ctx)
	return err
}
