// Package usetxhelp calls the wrappers of package txhelp, which the
// analyzer knows through facts.
package usetxhelp

import (
	"context"
	"time"

	"github.com/dbop-go/dbop"
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

// retry-commits through the wrappers: one that runs its transaction, one
// that returns the operation to run.
func wrappersUnderRetry(ctx context.Context, s *txhelp.Store, pool *pgxpool.Pool, fns []func(context.Context, pgx.Tx) error) error {
	retry := dbop.WithRetry(dbop.Constant(time.Millisecond))
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		if err := s.InTx(ctx, insert); err != nil {
			return 0, err
		}
		if err := txhelp.WithTx(ctx, pool, func(tx pgx.Tx) error { return insert(ctx, tx) }); err != nil { // want `s.InTx \(line 64\) commits before this txhelp.WithTx runs, under dbop.WithRetry in retry \(line 72\) without dbop.Idempotent\(\)`
			return 0, err
		}
		_, err := s.Op(fns[1], false).Run(ctx) // want `txhelp.WithTx \(line 67\) commits before this s.Op runs`
		return 0, err
	}).With(retry).Run(ctx)
	if err != nil {
		return err
	}
	_, err = dbop.Op[int](func(ctx context.Context) (int, error) {
		for range fns {
			if err := txhelp.Tx(ctx, s, insert); err != nil { // want `txhelp.Tx runs in the loop over fns \(line 77\)`
				return 0, err
			}
		}
		return 0, nil
	}).With(retry).Run(ctx)
	return err
}

// Negatives: a read-only transaction first; an operation a wrapper
// returns, which may be read-only, first.
func readOnlyWrappersUnderRetry(ctx context.Context, s *txhelp.Store, fns []func(context.Context, pgx.Tx) error) error {
	fn := fns[0]
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		if err := s.Read(ctx, insert); err != nil {
			return 0, err
		}
		if _, err := s.Op(insert, true).Run(ctx); err != nil {
			return 0, err
		}
		return 0, s.InTx(ctx, fn)
	}).With(dbop.WithRetry(dbop.Constant(time.Millisecond))).Run(ctx)
	return err
}

// insert writes: retry-commits counts only a transaction whose function
// it sees write.
func insert(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "INSERT INTO t VALUES (1)")
	return err
}

// A repository method of another package that runs a transaction of its
// own, twice.
func repositoryMethods(ctx context.Context, s *txhelp.Store) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		if err := s.Reserve(ctx, 1); err != nil {
			return 0, err
		}
		return 0, s.Reserve(ctx, 2) // want `s.Reserve \(line \d+\) commits before this s.Reserve runs`
	}).With(dbop.WithRetry(dbop.Constant(time.Millisecond))).Run(ctx)
	return err
}

// tx-on-busy-conn through wrappers known as facts: the connection passed
// as the wrapper's database.
func wrapperOnBusyConn(ctx context.Context, pool *pgxpool.Pool) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := txhelp.OnConnAgain(ctx, c, func(ctx context.Context, inner pgx.Tx) error { return nil }); err != nil { // want `^c \(\*pgxpool.Conn\) is the connection the transaction tx was begun on by hand \(line \d+\), still open here: txhelp.OnConnAgain begins again on the same connection, where PostgreSQL ignores a BEGIN inside a transaction, so its ROLLBACK would undo tx's work and its COMMIT commit it; run the step in a savepoint of tx \(pgxdb.InSavepoint\(tx\) in its With\), or pass the pool \(pool\), not the connection$`
		return err
	}
	if err := txhelp.OnConn(ctx, pool, func(ctx context.Context, inner pgx.Tx) error { return nil }); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// shared-settings through the wrappers that share commits; the same
// statement through one that does not is silent.
func sharedSettings(ctx context.Context, s *txhelp.Store, pool *pgxpool.Pool) error {
	if err := s.Shared(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '1s'") // want `^tx.Exec runs SET LOCAL lock_timeout in the transaction txhelp.Shared shares with other operations' attempts`
		return err
	}); err != nil {
		return err
	}
	if err := txhelp.SharedWithTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE") // want `^tx.Exec runs SET CONSTRAINTS in the transaction txhelp.SharedWithTx shares`
		return err
	}); err != nil {
		return err
	}
	return s.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '1s'")
		return err
	})
}
