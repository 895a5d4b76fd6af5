package retryintx

// GORM's own transaction, db.Transaction(func(tx *gorm.DB) error {…}): the
// transaction GORM users begin most, and the one the retry inside it
// cannot see.

import (
	"context"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// --- true positives ---------------------------------------------------

// A step retried inside GORM's Transaction: after a MariaDB deadlock the
// retry runs it again in autocommit, and GORM commits the rest.
func inGormTransaction(ctx context.Context, db *gorm.DB) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.Exec("UPDATE stock SET n = n - 1 WHERE id = 1").Error
		})
		_, err := step.With(dbop.WithRetry(backoff)).Run(ctx) // want `^dbop.WithRetry runs the statements on tx again, inside the transaction GORM's Transaction handed in \(line 20\), with no savepoint scope inside the retry and a context not marked by dbop.WithinTx: after a deadlock or a serialization failure it retries inside the doomed transaction \(PostgreSQL fails every attempt with 25P02; MySQL has rolled it back, so the attempts run in autocommit\); list gormdb.InSavepoint\(tx\) after the retry, or Run it with dbop.WithinTx\(ctx\) so that the error reaches the code that began tx$`
		return err
	})
}

// The savepoint scope in a With of its own, inside the retry's.
func inGormTransactionScopeApart(ctx context.Context, db *gorm.DB) error {
	return db.Transaction(func(tx *gorm.DB) error {
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.Exec("UPDATE stock SET n = n - 1 WHERE id = 1").Error
		}).With(gormdb.InSavepoint(tx))
		_, err := step.With(dbop.WithRetry(backoff)).Run(ctx) // want `^dbop.WithRetry runs the work on tx again, inside the transaction GORM's Transaction handed in \(line 31\), with a context not marked by dbop.WithinTx`
		return err
	})
}

// --- negatives --------------------------------------------------------

// The savepoint scope listed after the retry.
func inGormTransactionSavepoint(ctx context.Context, db *gorm.DB) error {
	return db.Transaction(func(tx *gorm.DB) error {
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.Exec("UPDATE stock SET n = n - 1 WHERE id = 1").Error
		})
		_, err := step.With(dbop.WithRetry(backoff), gormdb.InSavepoint(tx)).Run(ctx)
		return err
	})
}

// The context marked.
func inGormTransactionMarked(ctx context.Context, db *gorm.DB) error {
	return db.Transaction(func(tx *gorm.DB) error {
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.Exec("UPDATE stock SET n = n - 1 WHERE id = 1").Error
		})
		_, err := step.With(dbop.WithRetry(backoff)).Run(dbop.WithinTx(ctx))
		return err
	})
}

// GORM's Connection hands in no transaction.
func inGormConnection(ctx context.Context, db *gorm.DB) error {
	return db.Connection(func(conn *gorm.DB) error {
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, conn.Exec("UPDATE stock SET n = n - 1 WHERE id = 1").Error
		})
		_, err := step.With(dbop.WithRetry(backoff)).Run(ctx)
		return err
	})
}
