// Package ignore holds the cases of //dbopvet:ignore comments.
package ignore

import (
	"context"

	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func withoutReason(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		/* want `//dbopvet:ignore needs a reason: say why the finding does not apply` */ //dbopvet:ignore
		_, err := pool.Exec(ctx, "UPDATE t SET n = 1")
		return err
	}).Run(ctx)
	return err
}

func tooFar(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		//dbopvet:ignore two lines above does not count

		_, err := pool.Exec(ctx, "UPDATE t SET n = 1") // want `pool \(\*pgxpool.Pool\) runs this statement outside`
		return err
	}).Run(ctx)
	return err
}

func notTheDirective(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		//dbopvet:ignored is another word
		_, err := pool.Exec(ctx, "UPDATE t SET n = 1") // want `pool \(\*pgxpool.Pool\) runs this statement outside`
		return err
	}).Run(ctx)
	return err
}
