// Package pgxdb is a stub of github.com/dbop-go/dbop/adapters/pgxdb.
package pgxdb

import (
	"context"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

type TxOption interface{ txOption() }

type SavepointOption interface{ savepointOption() }

type Option interface {
	TxOption
	SavepointOption
}

func InTx[T any](db Beginner, fn func(ctx context.Context, tx pgx.Tx) (T, error), opts ...TxOption) dbop.Op[T] {
	return nil
}

func Do(db Beginner, fn func(ctx context.Context, tx pgx.Tx) error, opts ...TxOption) dbop.Op[struct{}] {
	return nil
}

func InSavepoint(tx pgx.Tx, opts ...SavepointOption) dbop.Decorator { return nil }

func Savepoints(tx pgx.Tx) scopes.Savepointer { return nil }

func ReadOnly() TxOption { return nil }

func Isolation(level pgx.TxIsoLevel) TxOption { return nil }

func LockTimeout(d time.Duration) Option { return nil }

func StatementTimeout(d time.Duration) Option { return nil }

func ShareCommits() TxOption { return nil }

func Classifier(err error) dbop.Verdict { return dbop.Unclassified }
