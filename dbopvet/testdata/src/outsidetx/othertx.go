package outsidetx

// The cases of a transaction from outside: inside a function InTx or Do
// runs, a statement on another transaction than the one handed in, begun
// by hand or handed in by an enclosing InTx.

import (
	"context"
	"database/sql"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

// --- true positives ---------------------------------------------------

func nestedUsesOuter(ctx context.Context, pool, other *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return errOf(pgxdb.Do(other, func(ctx context.Context, inner pgx.Tx) error {
			if _, err := inner.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE accounts SET n = n + 1") // want `tx \(pgx.Tx, handed in by pgxdb.Do at line \d+\) is another transaction than the one pgxdb.Do handed in \(inner\): this statement runs in it, stays applied when this transaction rolls back, and runs again on every retry of it; run it in inner, or outside this function`
			return err
		}).Run(ctx))
	}).Run(ctx))
}

func handBegunInTx(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	_, err = pgxdb.InTx(pool, func(ctx context.Context, tx2 pgx.Tx) (int, error) {
		_, err := tx.Exec(ctx, "INSERT INTO audit VALUES (1)") // want `tx \(pgx.Tx, begun by hand at line \d+\) is another transaction than the one pgxdb.InTx handed in \(tx2\): this statement runs in it`
		return 0, err
	}).Run(ctx)
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func handBegunSQL(ctx context.Context, db, other *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return errOf(sqldb.Do(other, sqldb.Postgres, func(ctx context.Context, inner *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions") // want `tx \(\*sql.Tx, begun by hand at line \d+\) is another transaction than the one sqldb.Do handed in \(inner\)`
		return err
	}).Run(ctx))
}

func handBegunGorm(ctx context.Context, gdb, other *gorm.DB) error {
	tx := gdb.Begin()
	defer tx.Rollback()
	return errOf(gormdb.Do(other, func(ctx context.Context, inner *gorm.DB) error {
		return tx.WithContext(ctx).Create(&User{}).Error // want `tx \(\*gorm.DB, begun by hand at line \d+\) is another transaction than the one gormdb.Do handed in \(inner\)`
	}).Run(ctx))
}

func savepointOnOuter(ctx context.Context, pool, other *pgxpool.Pool, step dbop.Op[int]) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return errOf(pgxdb.Do(other, func(ctx context.Context, inner pgx.Tx) error {
			_, err := step.With(pgxdb.InSavepoint(tx)).Run(ctx) // want `tx \(pgx.Tx, handed in by pgxdb.Do at line \d+\) is another transaction than the one pgxdb.Do handed in \(inner\): the operation runs in a savepoint of it, what it does stays applied when this transaction rolls back, and runs again on every retry of it; build the savepoint scope on inner`
			return err
		}).Run(ctx))
	}).Run(ctx))
}

// --- negatives ----------------------------------------------------------

// The inner transaction, and a savepoint on it, inside a nested InTx.
func nestedUsesInner(ctx context.Context, pool, other *pgxpool.Pool, step dbop.Op[int]) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE a SET n = 1"); err != nil {
			return err
		}
		return errOf(pgxdb.Do(other, func(ctx context.Context, inner pgx.Tx) error {
			if _, err := step.With(pgxdb.InSavepoint(inner)).Run(ctx); err != nil {
				return err
			}
			_, err := inner.Exec(ctx, "INSERT INTO t VALUES (1)")
			return err
		}).Run(ctx))
	}).Run(ctx))
}

// An outer transaction passed in as a parameter the analyzer cannot trace.
func withOuter(outer pgx.Tx) func(ctx context.Context, tx pgx.Tx) error {
	return func(ctx context.Context, tx pgx.Tx) error {
		_, err := outer.Exec(ctx, "UPDATE t SET n = 1")
		return err
	}
}

func useWithOuter(ctx context.Context, pool *pgxpool.Pool, outer pgx.Tx) error {
	return errOf(pgxdb.Do(pool, withOuter(outer)).Run(ctx))
}

func outerParamInTx(ctx context.Context, pool *pgxpool.Pool, outer pgx.Tx) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, inner pgx.Tx) error {
		_, err := outer.Exec(ctx, "UPDATE t SET n = 1")
		return err
	}).Run(ctx))
}

// On purpose, silenced.
func outerOnPurpose(ctx context.Context, pool, other *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return errOf(pgxdb.Do(other, func(ctx context.Context, inner pgx.Tx) error {
			//dbopvet:ignore the outer transaction keeps the attempt on purpose
			_, err := tx.Exec(ctx, "INSERT INTO attempts VALUES (now())")
			return err
		}).Run(ctx))
	}).Run(ctx))
}
