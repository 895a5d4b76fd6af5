// Package gormdb is a stub of github.com/dbop-go/dbop/adapters/gormdb.
package gormdb

import (
	"context"

	"github.com/dbop-go/dbop"
	"gorm.io/gorm"
)

type TxOption interface{ txOption() }

type SavepointOption interface{ savepointOption() }

func InTx[T any](db *gorm.DB, fn func(ctx context.Context, tx *gorm.DB) (T, error), opts ...TxOption) dbop.Op[T] {
	return nil
}

func Do(db *gorm.DB, fn func(ctx context.Context, tx *gorm.DB) error, opts ...TxOption) dbop.Op[struct{}] {
	return nil
}

func ReadOnly() TxOption { return nil }

func InSavepoint(tx *gorm.DB, opts ...SavepointOption) dbop.Decorator { return nil }
