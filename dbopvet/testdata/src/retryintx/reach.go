package retryintx

// A retry, run with a context not marked as inside the transaction, whose
// attempts reach a savepoint scope on it only through something other than
// the retry's own With list: a step of a Then or an All, an Op of the
// user's, another With. Without the mark the retry cannot tell that it
// runs inside the transaction, and the scope covers only its own step.

import (
	"context"
	"database/sql"
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

// --- true positives ---------------------------------------------------

// A Then whose second step runs in a savepoint scope: after a deadlock the
// retry runs the Then again, and its first step's write commits on its own.
func thenStepSavepointPgx(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	write := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	both := dbop.Then(write, func(ctx context.Context, _ int64) (int64, error) {
		return step.With(pgxdb.InSavepoint(tx)).Run(ctx)
	})
	if _, err := both.With(dbop.WithRetry(backoff)).Run(ctx); err != nil { // want `^dbop.WithRetry runs the work on tx again, inside a transaction begun by hand \(line 29\), with a context not marked by dbop.WithinTx: without the mark it cannot tell that it runs inside the transaction, not around the code that begins it, and the savepoint scope inside it \(line 37\), not listed after it in the same With, covers only its own step: after a deadlock, which ends the transaction on MySQL and MariaDB, the retry runs the work again, each statement then committed on its own; Run it with dbop.WithinTx\(ctx\) so that the error reaches the code that began tx, or list pgxdb.InSavepoint\(tx\) after the retry in the same With$`
		return err
	}
	return tx.Commit(ctx)
}

// The review's case, on database/sql.
func thenStepSavepointSQL(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	write := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := tx.ExecContext(ctx, "UPDATE t SET n = n + 1")
		return 1, err
	})
	step := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := tx.ExecContext(ctx, "UPDATE u SET n = n + 1")
		return 1, err
	})
	_, err = dbop.Then(write, func(ctx context.Context, _ int) (int, error) {
		return step.With(sqldb.InSavepoint(tx, sqldb.Postgres)).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx) // want `^dbop.WithRetry runs the work on tx again, inside a transaction begun by hand \(line 47\), .* the savepoint scope inside it \(line 61\), not listed after it in the same With, covers only its own step: .* or list sqldb.InSavepoint\(tx, dialect\) after the retry in the same With$`
	if err != nil {
		return err
	}
	return tx.Commit()
}

// An Op of the user's that writes on the transaction, then runs a step in
// a savepoint scope.
func ownOpSavepoint(ctx context.Context, pool *pgxpool.Pool) error {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	own := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		if _, err := tx.Exec(ctx, "UPDATE jobs SET state = 'seen'"); err != nil {
			return 0, err
		}
		return step.With(pgxdb.InSavepoint(tx)).Run(ctx)
	})
	_, err := own.With(dbop.WithRetry(backoff)).Run(ctx) // want `^dbop.WithRetry runs the work on tx again, inside a transaction begun by hand \(line 72\), .* the savepoint scope inside it \(line 78\)`
	return err
}

// An Op of the user's whose only work on the transaction is steps in
// savepoint scopes, built outside it (work, from the caller, is not seen).
func ownOpSavepointsOnly(ctx context.Context, pool *pgxpool.Pool, work dbop.Op[int64]) error {
	tx, _ := pool.Begin(ctx)
	first := work.With(pgxdb.InSavepoint(tx))
	second := work.With(dbop.WithTimeout(time.Second), pgxdb.InSavepoint(tx))
	own := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		if _, err := first.Run(ctx); err != nil {
			return 0, err
		}
		return second.Run(ctx)
	})
	_, err := own.With(dbop.WithRetry(backoff)).Run(ctx) // want `inside a transaction begun by hand \(line 87\), .* the savepoint scope inside it \(line 88\)`
	return err
}

// A savepoint scope in a With of its own, inside the retry's: the retry
// does not see it.
func separateWith(ctx context.Context, pool *pgxpool.Pool, db *sql.DB, gdb *gorm.DB) {
	tx, _ := pool.Begin(ctx)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	_, _ = step.With(pgxdb.InSavepoint(tx)).With(dbop.WithRetry(backoff)).Run(ctx) // want `dbop.WithRetry runs the work on tx again, inside a transaction begun by hand \(line 103\), .* or list pgxdb.InSavepoint\(tx\) after the retry in the same With`
	inner := step.With(dbop.AroundTx(tx, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) }))
	_, _ = inner.With(resilient).Run(ctx) // want `dbop.WithRetry in resilient runs the work on tx again, .* the savepoint scope inside it \(line 106\)`

	stx, _ := db.BeginTx(ctx, nil)
	sstep := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := stx.ExecContext(ctx, "UPDATE t SET n = 1")
		return 1, err
	})
	_, _ = sstep.With(sqldb.InSavepoint(stx, sqldb.Postgres)).With(dbop.WithRetry(backoff)).Run(ctx) // want `dbop.WithRetry runs the work on stx again, .* or list sqldb.InSavepoint\(stx, dialect\) after the retry in the same With`

	gtx := gdb.Begin()
	gstep := dbop.Op[int](func(ctx context.Context) (int, error) { return 1, gtx.Create(&struct{}{}).Error })
	_, _ = gstep.With(gormdb.InSavepoint(gtx)).With(dbop.WithRetry(backoff)).Run(ctx) // want `dbop.WithRetry runs the work on gtx again, .* or list gormdb.InSavepoint\(gtx\) after the retry in the same With`
}

// A step of an All in a savepoint scope of scopes, and the step of a Then
// held in a variable, in a scope of the user's: work, from the caller, is
// not seen, the savepoint scopes on tx are.
func allAndStepVariable(ctx context.Context, pool *pgxpool.Pool, work dbop.Op[int64]) {
	tx, _ := pool.Begin(ctx)
	guarded := work.With(scopes.InSavepoint(pgxdb.Savepoints(tx)))
	_, _ = dbop.All(2, work, guarded).With(dbop.WithRetry(backoff)).Run(ctx) // want `dbop.WithRetry runs the work on tx again, inside a transaction begun by hand \(line 125\), .* the savepoint scope inside it \(line 126\)`

	then := func(ctx context.Context, n int64) (int64, error) {
		return dbop.Op[int64](func(ctx context.Context) (int64, error) { return n, nil }).
			With(dbop.AroundTx(tx, func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })).
			Run(ctx)
	}
	named := dbop.Then(work, then)
	_, _ = named.With(dbop.WithRetry(backoff)).Run(ctx) // want `dbop.WithRetry runs the work on tx again, inside a transaction begun by hand \(line 125\), .* the savepoint scope inside it \(line 131\)`
}

// context.Background() inside InTx's function, around a Then whose step
// runs in a savepoint scope.
func backgroundThenInTx(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	return pgxdb.InTx(pool, func(txCtx context.Context, tx pgx.Tx) (int64, error) {
		write := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
		both := dbop.Then(write, func(ctx context.Context, n int64) (int64, error) {
			return write.With(pgxdb.InSavepoint(tx)).Run(ctx)
		})
		return both.With(dbop.WithRetry(backoff)).Run(context.Background()) // want `^dbop.WithRetry runs the work on tx again, inside the transaction pgxdb.InTx handed in, with a context that is not the one pgxdb.InTx handed in: without the mark it cannot tell that it runs inside the transaction, not around the code that begins it, and the savepoint scope inside it \(line 144\), not listed after it in the same With, covers only its own step: after a deadlock, which ends the transaction on MySQL and MariaDB, the retry runs the work again, each statement then committed on its own; Run it with the context pgxdb.InTx handed in, or list pgxdb.InSavepoint\(tx\) after the retry in the same With$`
	}).Run(ctx)
}

// A Then with no savepoint scope anywhere: the statements of its steps run
// again inside the doomed transaction.
func thenNoSavepoint(ctx context.Context, pool *pgxpool.Pool) error {
	tx, _ := pool.Begin(ctx)
	write := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	both := dbop.Then(write, func(ctx context.Context, n int64) (int64, error) { return n, nil })
	_, err := both.With(dbop.WithRetry(backoff)).Run(ctx) // want `^dbop.WithRetry runs the statements on tx again, inside a transaction begun by hand \(line 153\), with no savepoint scope inside the retry`
	return err
}

// --- negatives ----------------------------------------------------------

// The savepoint scope listed after the retry in the same With (a Chain
// there included): every attempt runs inside it, and the retry knows.
func sameWith(ctx context.Context, pool *pgxpool.Pool) {
	tx, _ := pool.Begin(ctx)
	write := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	both := dbop.Then(write, func(ctx context.Context, n int64) (int64, error) {
		return write.With(pgxdb.InSavepoint(tx)).Run(ctx)
	})
	_, _ = both.With(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx)).Run(ctx)
	_, _ = both.With(dbop.Chain(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx))).Run(ctx)
	_, _ = write.With(pgxdb.InSavepoint(tx)).With(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx)).Run(ctx)
	// In a With outside the retry's: the scope marks the context.
	_, _ = both.With(dbop.WithRetry(backoff)).With(pgxdb.InSavepoint(tx)).Run(ctx)
}

// The context marked with WithinTx.
func markedThen(ctx context.Context, pool *pgxpool.Pool) {
	tx, _ := pool.Begin(ctx)
	write := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
	both := dbop.Then(write, func(ctx context.Context, n int64) (int64, error) {
		return write.With(pgxdb.InSavepoint(tx)).Run(ctx)
	})
	_, _ = both.With(dbop.WithRetry(backoff)).Run(dbop.WithinTx(ctx))
	_, _ = write.With(pgxdb.InSavepoint(tx)).With(dbop.WithRetry(backoff)).Run(dbop.WithinTx(ctx))
}

// The context InTx handed in.
func inTxThen(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		write := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
		both := dbop.Then(write, func(ctx context.Context, n int64) (int64, error) {
			return write.With(pgxdb.InSavepoint(tx)).Run(ctx)
		})
		if _, err := write.With(pgxdb.InSavepoint(tx)).With(dbop.WithRetry(backoff)).Run(ctx); err != nil {
			return 0, err
		}
		return both.With(dbop.WithRetry(backoff)).Run(ctx)
	}).Run(ctx)
}

// The retry around begin…commit: the savepoint scope is on a transaction
// each attempt begins.
func savepointInsideTheAttempt(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	whole := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		defer tx.Rollback(ctx)
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return claim(ctx, tx) })
		n, err := step.With(pgxdb.InSavepoint(tx)).Run(ctx)
		if err != nil {
			return 0, err
		}
		return n, tx.Commit(ctx)
	})
	return whole.With(dbop.WithRetry(backoff)).Run(ctx)
}

// A savepoint scope on a transaction from a caller: the analyzer does not
// know who began it, nor whether the caller's context is marked.
func savepointFromCaller(ctx context.Context, tx pgx.Tx) (int64, error) {
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { return 1, nil })
	both := dbop.Then(step, func(ctx context.Context, n int64) (int64, error) {
		return step.With(pgxdb.InSavepoint(tx)).Run(ctx)
	})
	return both.With(dbop.WithRetry(backoff)).Run(ctx)
}
