// Package sqldb is a stub of github.com/dbop-go/dbop/adapters/sqldb.
package sqldb

import (
	"context"
	"database/sql"

	"github.com/dbop-go/dbop"
)

type Beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

type Dialect struct{ Name string }

var (
	Postgres = Dialect{Name: "postgres"}
	SQLite   = Dialect{Name: "sqlite"}
)

type TxOption interface{ txOption() }

type SavepointOption interface{ savepointOption() }

func InTx[T any](db Beginner, d Dialect, fn func(ctx context.Context, tx *sql.Tx) (T, error), opts ...TxOption) dbop.Op[T] {
	return nil
}

func Do(db Beginner, d Dialect, fn func(ctx context.Context, tx *sql.Tx) error, opts ...TxOption) dbop.Op[struct{}] {
	return nil
}

func ReadOnly() TxOption { return nil }

func Isolation(level sql.IsolationLevel) TxOption { return nil }

func InSavepoint(tx *sql.Tx, d Dialect, opts ...SavepointOption) dbop.Decorator { return nil }
