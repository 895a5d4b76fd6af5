// Package endstx holds the cases of the ends-tx check: a function InTx or
// Do runs that commits or rolls back the transaction it was handed.
package endstx

import (
	"context"
	"database/sql"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

// --- true positives ---------------------------------------------------

func commitsPgx(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if _, err := tx.Exec(ctx, "UPDATE t SET n = n + 1"); err != nil {
			return 0, err
		}
		return 1, tx.Commit(ctx) // want `^tx.Commit commits the transaction pgxdb.InTx handed in before pgxdb.InTx does: later statements on tx fail, pgxdb.InTx's own COMMIT fails on the closed transaction, and the committed work is reported as an ambiguous outcome, of which the caller learns only that it may have committed; return nil and let pgxdb.InTx commit$`
	}).Run(ctx)
}

// The habit of a transaction begun by hand, carried into InTx.
func defersRollback(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		defer tx.Rollback(ctx) // want `^deferred tx.Rollback rolls back the transaction pgxdb.InTx handed in when the function returns, before pgxdb.InTx commits it: pgxdb.InTx's COMMIT then fails on the closed transaction, and the work is lost and reported as a commit error; return an error to roll back, and let pgxdb.InTx end the transaction$`
		_, err := tx.Exec(ctx, "UPDATE t SET n = n + 1")
		return 1, err
	}).Run(ctx)
}

func rollsBackSQL(ctx context.Context, db *sql.DB) (int, error) {
	return sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
		if _, err := tx.ExecContext(ctx, "UPDATE t SET n = n + 1"); err != nil {
			_ = tx.Rollback() // want `^tx.Rollback rolls back the transaction sqldb.InTx handed in, which sqldb.InTx rolls back itself when the function returns an error: later statements on tx fail, and if the function returns nil, sqldb.InTx's COMMIT fails on the closed transaction and the lost work is reported as a commit error; return the error and let sqldb.InTx roll back$`
			return 0, err
		}
		return 1, nil
	}).Run(ctx)
}

func commitsGorm(ctx context.Context, db *gorm.DB) (int, error) {
	return gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		if err := tx.Create(&struct{ ID int }{}).Error; err != nil {
			return 0, err
		}
		return 1, tx.WithContext(ctx).Commit().Error // want `tx.WithContext\(ctx\).Commit commits the transaction gormdb.InTx handed in`
	}).Run(ctx)
}

func deferredCommit(ctx context.Context, db *sql.DB) (int, error) {
	return sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
		defer func() {
			_ = tx.Commit() // want `^deferred tx.Commit commits the transaction sqldb.InTx handed in when the function returns, even after an error, before sqldb.InTx ends it: sqldb.InTx's own COMMIT or ROLLBACK then fails on the closed transaction, and committed work is reported as an ambiguous outcome, of which the caller learns only that it may have committed; return nil and let sqldb.InTx commit$`
		}()
		_, err := tx.ExecContext(ctx, "UPDATE t SET n = n + 1")
		return 1, err
	}).Run(ctx)
}

func commitStatement(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		_, err := tx.Exec(ctx, "  /* done */ commit") // want `tx.Exec commits the transaction pgxdb.InTx handed in`
		return 1, err
	}).Run(ctx)
}

func finish(ctx context.Context, tx pgx.Tx, err error) error { // want finish:"endsTx\\(param 1 commits\\)"
	if err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

func viaHelper(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		_, err := tx.Exec(ctx, "UPDATE t SET n = n + 1")
		return 1, finish(ctx, tx, err) // want `endstx.finish \(passed tx\) commits the transaction pgxdb.InTx handed in`
	}).Run(ctx)
}

type fakeTx struct{}

func (*fakeTx) Commit(context.Context) error   { return nil }
func (*fakeTx) Rollback(context.Context) error { return nil }

func scopesCommit(ctx context.Context, begin scopes.BeginFunc[*fakeTx]) (int, error) {
	return scopes.InTx(begin, func(ctx context.Context, tx *fakeTx) (int, error) {
		return 1, tx.Commit(ctx) // want `tx.Commit commits the transaction scopes.InTx handed in`
	}).Run(ctx)
}

// --- negatives ----------------------------------------------------------

// pgx's nested "transaction" is a savepoint: its Commit is a RELEASE.
func pseudoNested(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := sp.Exec(ctx, "UPDATE t SET n = 1"); err != nil {
			_ = sp.Rollback(ctx)
			return 0, err
		}
		return 1, sp.Commit(ctx)
	}).Run(ctx)
}

func rollbackToSavepoint(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		if _, err := tx.Exec(ctx, "SAVEPOINT a"); err != nil {
			return 0, err
		}
		_, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT a")
		return 1, err
	}).Run(ctx)
}

// A transaction begun by hand is its owner's to end.
func byHand(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "UPDATE t SET n = 1"); err != nil {
		return err
	}
	return finish(ctx, tx, nil)
}

// A helper that ends a transaction it began itself.
func ownTx(ctx context.Context, db *sql.DB) error { // no fact: it ends no transaction it is passed
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return tx.Commit()
}

func callsOwnTx(ctx context.Context, db *sql.DB) (int, error) {
	return sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
		return 1, ownTx(ctx, db)
	}).Run(ctx)
}
