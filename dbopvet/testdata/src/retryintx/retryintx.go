// Package retryintx holds the cases of the retry-in-tx check: a retry
// around statements on a transaction that no savepoint scope and no
// marked context protects — the one composition dbop's runtime cannot see.
package retryintx

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

var backoff = dbop.Constant(10 * time.Millisecond)

// --- true positives ---------------------------------------------------

func byHandPgx(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := tx.Exec(ctx, "UPDATE jobs SET state = 'claimed' WHERE id = 1")
		return tag.RowsAffected(), err
	})
	if _, err := step.With(dbop.WithRetry(backoff, dbop.MaxAttempts(3))).Run(ctx); err != nil { // want `dbop.WithRetry runs the statements on tx again, inside a transaction begun by hand \(line 27\), with no savepoint scope inside the retry and a context not marked by dbop.WithinTx: after a deadlock or a serialization failure it retries inside the doomed transaction \(PostgreSQL fails every attempt with 25P02; MySQL has rolled it back, so the attempts run in autocommit\); list pgxdb.InSavepoint\(tx\) after the retry, or Run it with dbop.WithinTx\(ctx\) so that the error reaches the code that began tx`
		return err
	}
	return tx.Commit(ctx)
}

func byHandSQL(db *sql.DB) error {
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	step := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := tx.ExecContext(ctx, "UPDATE t SET n = n + 1")
		return 1, err
	})
	_, err = step.With(
		dbop.WithTimeout(time.Second),
		dbop.WithRetry(backoff), // want `dbop.WithRetry runs the statements on tx again, inside a transaction begun by hand .* list sqldb.InSavepoint\(tx, dialect\) after the retry`
		dbop.ClassifyBy(),
	).Run(context.Background())
	if err != nil {
		return err
	}
	return tx.Commit()
}

func byHandGorm(ctx context.Context, db *gorm.DB) error {
	tx := db.WithContext(ctx).Begin()
	step := dbop.Op[int](func(ctx context.Context) (int, error) {
		return 1, tx.Create(&struct{ ID int }{}).Error
	})
	if _, err := step.With(dbop.WithRetry(backoff)).Run(ctx); err != nil { // want `list gormdb.InSavepoint\(tx\) after the retry`
		tx.Rollback()
		return err
	}
	return tx.Commit().Error
}

// The retry comes from a Chain in a variable; the statements run in a
// helper the transaction is passed to; the context is derived from the
// caller's.
var resilient = dbop.Chain(dbop.WithTimeout(time.Second), dbop.WithRetry(backoff))

func claim(ctx context.Context, tx pgx.Tx) (int64, error) {
	tag, err := tx.Exec(ctx, "UPDATE jobs SET state = 'claimed'")
	return tag.RowsAffected(), err
}

func chainAndHelper(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	stepCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	op := step.With(resilient) // want `dbop.WithRetry in resilient runs the statements on tx again`
	if _, err := op.Run(stepCtx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// context.Background() inside InTx's function: the retry cannot know it
// runs inside InTx's transaction.
func backgroundInsideInTx(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	return pgxdb.InTx(pool, func(txCtx context.Context, tx pgx.Tx) (int64, error) {
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
		return step.With(dbop.WithRetry(backoff)).Run(context.Background()) // want `dbop.WithRetry runs the statements on tx again, inside the transaction pgxdb.InTx handed in, with no savepoint scope inside the retry and a context that is not the one pgxdb.InTx handed in: .* Run it with the context pgxdb.InTx handed in, or list pgxdb.InSavepoint\(tx\) after the retry`
	}).Run(ctx)
}

// The caller's context, captured, instead of the one InTx handed in.
func outerCtxInsideInTx(ctx context.Context, db *sql.DB) (int, error) {
	return sqldb.InTx(db, sqldb.Postgres, func(_ context.Context, tx *sql.Tx) (int, error) {
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			_, err := tx.ExecContext(ctx, "UPDATE t SET n = 1")
			return 1, err
		})
		return step.With(dbop.WithRetry(backoff)).Run(ctx) // want `inside the transaction sqldb.InTx handed in`
	}).Run(ctx)
}

// A test's context is not marked either.
func TestByHand(t *testing.T) { // want TestByHand:"writes"
	var pool *pgxpool.Pool
	tx, _ := pool.Begin(t.Context())
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	_, _ = step.With(dbop.WithRetry(backoff)).Run(t.Context()) // want `inside a transaction begun by hand`
}

// --- negatives ----------------------------------------------------------

// A savepoint scope inside the retry: the runtime protects it.
func withSavepoint(ctx context.Context, pool *pgxpool.Pool, db *sql.DB, gdb *gorm.DB) {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	_, _ = step.With(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx, pgxdb.LockTimeout(time.Second))).Run(ctx)
	_, _ = step.With(dbop.WithRetry(backoff), scopes.InSavepoint(pgxdb.Savepoints(tx))).Run(ctx)
	_, _ = step.With(dbop.Chain(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx))).Run(ctx)
	// A savepoint scope in a With outside the retry's hands it a context
	// marked as inside the transaction. (One in a With inside it: reach.go.)
	_, _ = step.With(dbop.WithRetry(backoff)).With(pgxdb.InSavepoint(tx)).Run(ctx)

	stx, _ := db.BeginTx(ctx, nil)
	sstep := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := stx.ExecContext(ctx, "UPDATE t SET n = 1")
		return 1, err
	})
	_, _ = sstep.With(dbop.WithRetry(backoff), sqldb.InSavepoint(stx, sqldb.Postgres)).Run(ctx)

	gtx := gdb.Begin()
	gstep := dbop.Op[int](func(ctx context.Context) (int, error) { return 1, gtx.Create(&struct{}{}).Error })
	_, _ = gstep.With(dbop.WithRetry(backoff), gormdb.InSavepoint(gtx)).Run(ctx)

	// A savepoint scope of the user's own, declared with AroundTx.
	own := dbop.AroundTx(tx, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
	_, _ = step.With(dbop.WithRetry(backoff), own).Run(ctx)

	// A scope listed before the retry panics when the pipeline is built.
	_, _ = step.With(pgxdb.InSavepoint(tx), dbop.WithRetry(backoff)).Run(ctx)
}

// A context marked with WithinTx, or derived from one.
func markedByHand(ctx context.Context, pool *pgxpool.Pool) {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	_, _ = step.With(dbop.WithRetry(backoff)).Run(dbop.WithinTx(ctx))
	inTx := dbop.WithinTx(ctx)
	stepCtx, cancel := context.WithTimeout(inTx, time.Second)
	defer cancel()
	_, _ = step.With(dbop.WithRetry(backoff)).Run(stepCtx)
}

// The context InTx handed in, or one derived from it.
func inTxContext(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
		if _, err := step.With(dbop.WithRetry(backoff)).Run(ctx); err != nil {
			return 0, err
		}
		return step.With(dbop.WithRetry(backoff)).Run(context.WithoutCancel(ctx))
	}).Run(ctx)
}

// The retry around begin…commit: every attempt is a transaction of its own.
func retryAroundTheTransaction(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	whole := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		defer tx.Rollback(ctx)
		n, err := claim(ctx, tx)
		if err != nil {
			return 0, err
		}
		return n, tx.Commit(ctx)
	})
	return whole.With(dbop.WithRetry(backoff)).Run(ctx)
}

// A transaction from a parameter: the analyzer does not know who began it,
// nor whether the caller's context is marked.
func fromCaller(ctx context.Context, tx pgx.Tx) (int64, error) {
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	return step.With(dbop.WithRetry(backoff)).Run(ctx)
}

// A decorator the analyzer cannot see into, inside the retry: it may be a
// savepoint scope.
func savepointOf(tx pgx.Tx) dbop.Decorator { return pgxdb.InSavepoint(tx) }

func opaqueDecorator(ctx context.Context, pool *pgxpool.Pool) {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	_, _ = step.With(dbop.WithRetry(backoff), savepointOf(tx)).Run(ctx)
}

// Run with the context of another operation's attempt: unknown.
func nestedOps(ctx context.Context, pool *pgxpool.Pool) {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	outer := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		return step.With(dbop.WithRetry(backoff)).Run(ctx)
	})
	_, _ = outer.With(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx)).Run(dbop.WithinTx(ctx))
}

// No transaction in the operation: the pool, in autocommit.
func noTransaction(ctx context.Context, pool *pgxpool.Pool) {
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		var n int64
		err := pool.QueryRow(ctx, "SELECT 1").Scan(&n)
		return n, err
	})
	_, _ = step.With(dbop.WithRetry(backoff)).Run(ctx)
}

// An operation built and returned: where it runs, and with which context,
// is the caller's business.
func built(ctx context.Context, pool *pgxpool.Pool) dbop.Op[int64] {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	return step.With(dbop.WithRetry(backoff))
}

// A savepoint the caller runs by hand, in an Around inside the retry.
func handMadeSavepoint(ctx context.Context, pool *pgxpool.Pool) {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	savepoint := dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
		if _, err := tx.Exec(ctx, "SAVEPOINT step"); err != nil {
			return err
		}
		if err := next(ctx); err != nil {
			_, _ = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT step")
			return err
		}
		return nil
	})
	_, _ = step.With(dbop.WithRetry(backoff), savepoint).Run(ctx)
}
