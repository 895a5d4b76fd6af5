package outsidetx

import (
	"context"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A transaction of its own run inside the function a scope runs: InTx
// counts it only when it runs with the context InTx handed in.

func audit(pool *pgxpool.Pool, what string) dbop.Op[struct{}] {
	return pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO audit (what) VALUES ($1)", what)
		return err
	})
}

// --- true positives ---------------------------------------------------

func nestedWithBackground(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error { // want `pgxdb.Do runs a transaction of its own with context.Background\(\), not with the context pgxdb.Do handed in \(ctx\): it commits on its own, stays applied if this transaction rolls back, and pgxdb.Do counts only what commits through its context, so a retry around it runs this committed transaction again; pass ctx`
			_, err := tx.Exec(ctx, "INSERT INTO audit (what) VALUES ('debit')")
			return err
		}).Run(context.Background()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET n = n - 1")
		return err
	}).With(dbop.WithRetry(dbop.Constant(0))).Run(ctx)
	return err
}

func nestedWithTheHandlersContext(outer context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if _, err := audit(pool, "debit").Run(outer); err != nil { // want `audit\(pool, "debit"\) runs a transaction of its own with outer, not with the context pgxdb.InTx handed in \(ctx\)`
			return 0, err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET n = n - 1")
		return 1, err
	}).Run(outer)
	return err
}

func nestedUnnamedContext(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(_ context.Context, tx pgx.Tx) error {
		_, err := audit(pool, "debit").Run(context.TODO()) // want `with context.TODO\(\), not with the context pgxdb.Do handed in \(its context parameter\): .*; name the context parameter and pass it`
		return err
	}).Run(ctx)
	return err
}

// --- silent -----------------------------------------------------------

// With the context handed in, InTx counts the commit: a retry refuses to
// run it again (dbop.ErrAlreadyCommitted).
func nestedWithItsContext(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := audit(pool, "debit").Run(ctx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET n = n - 1")
		return err
	}).Run(ctx)
	return err
}

// A read-only transaction writes nothing to run twice.
func nestedReadOnly(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			var n int
			return n, tx.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n)
		}, pgxdb.ReadOnly()).Run(context.Background())
		return err
	}).Run(ctx)
	return err
}

// A context whose origin the analyzer does not know.
func nestedUnknownContext(ctx context.Context, pool *pgxpool.Pool, pick func() context.Context) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := audit(pool, "debit").Run(pick())
		return err
	}).Run(ctx)
	return err
}
