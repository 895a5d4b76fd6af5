// Package scopes is a stub of github.com/dbop-go/dbop/scopes.
package scopes

import (
	"context"

	"github.com/dbop-go/dbop"
)

type Tx interface {
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

type Savepointer interface {
	Savepoint(ctx context.Context, name string) error
	RollbackTo(ctx context.Context, name string) error
	Release(ctx context.Context, name string) error
}

type BeginOptions struct{ ReadOnly bool }

type BeginFunc[X Tx] func(ctx context.Context, opts BeginOptions) (X, error)

type TxOption interface{ txOption() }

type SavepointOption interface{ savepointOption() }

type Option interface {
	TxOption
	SavepointOption
}

func InTx[X Tx, T any](begin BeginFunc[X], fn func(ctx context.Context, tx X) (T, error), opts ...TxOption) dbop.Op[T] {
	return nil
}

func Do[X Tx](begin BeginFunc[X], fn func(ctx context.Context, tx X) error, opts ...TxOption) dbop.Op[struct{}] {
	return nil
}

func ReadOnly() TxOption { return nil }

func InSavepoint(sp Savepointer, opts ...SavepointOption) dbop.Decorator { return nil }
