package outsidetx

import (
	"context"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// GORM's Transaction begins a transaction as by hand: inside an InTx
// within it, a statement on it runs in another transaction.
func gormTransactionOuter(ctx context.Context, gdb, other *gorm.DB) error {
	return gdb.Transaction(func(tx *gorm.DB) error {
		return errOf(gormdb.Do(other, func(ctx context.Context, inner *gorm.DB) error {
			return tx.WithContext(ctx).Create(&User{}).Error // want `^tx \(\*gorm.DB, begun by GORM's Transaction at line 13\) is another transaction than the one gormdb.Do handed in \(inner\)`
		}).Run(ctx))
	})
}
