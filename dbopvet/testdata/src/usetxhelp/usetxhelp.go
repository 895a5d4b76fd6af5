// Package usetxhelp calls the wrappers of package txhelp, which the
// analyzer knows through facts.
package usetxhelp

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"txhelp"
)

func throughMethod(ctx context.Context, s *txhelp.Store) error {
	return s.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := s.Pool.Exec(ctx, "UPDATE t SET n = 1") // want `s.Pool \(\*pgxpool.Pool\) runs this statement outside the transaction txhelp.InTx handed in`
		return err
	})
}

func throughFunction(ctx context.Context, pool *pgxpool.Pool) error {
	return txhelp.WithTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE t SET n = 1"); err != nil {
			return err
		}
		_, err := pool.Exec(ctx, "UPDATE u SET n = 1") // want `pool \(\*pgxpool.Pool\) runs this statement outside the transaction txhelp.WithTx handed in`
		return err
	})
}

func throughTwo(ctx context.Context, s *txhelp.Store) error {
	return txhelp.Tx(ctx, s, func(ctx context.Context, tx pgx.Tx) error {
		return txhelp.Done(ctx, tx) // want `txhelp.Done \(passed tx\) commits the transaction txhelp.Tx handed in`
	})
}

func abandons(ctx context.Context, s *txhelp.Store) error {
	return s.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		txhelp.Abandon(ctx, tx) // want `txhelp.Abandon \(passed tx\) rolls back the transaction txhelp.InTx handed in`
		return nil
	})
}

// Negatives: the transaction used as it should be.
func fine(ctx context.Context, s *txhelp.Store, pool *pgxpool.Pool) error {
	if err := s.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE t SET n = 1")
		return err
	}); err != nil {
		return err
	}
	return txhelp.WithTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE t SET n = 2")
		return err
	})
}
