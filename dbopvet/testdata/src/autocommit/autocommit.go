// Package autocommit holds the cases of the autocommit-retry check: a
// write in autocommit in an operation whose retry is not marked
// Idempotent.
package autocommit

import (
	"context"
	"database/sql"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

var (
	backoff = dbop.Exponential(10*time.Millisecond, time.Second)
	pool    *pgxpool.Pool
	gdb, _  = gorm.Open(nil)
)

const insertOrder = `
	-- the order, once
	INSERT INTO orders (id) VALUES ($1)`

// --- true positives ---------------------------------------------------

func insertPgx(ctx context.Context, id int64) error {
	op := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := pool.Exec(ctx, "INSERT INTO orders (id) VALUES ($1)", id) // want `INSERT through pool \(\*pgxpool.Pool\) runs in autocommit under dbop.WithRetry \(line 35\) without dbop.Idempotent\(\): if the connection drops after it was sent, nobody knows whether it was applied, and the retry may apply it twice; run it in pgxdb.InTx, or give it an idempotency key \(a unique id, ON CONFLICT DO NOTHING\) and mark the retry dbop.Idempotent\(\)`
		return tag.RowsAffected(), err
	})
	_, err := op.With(dbop.WithRetry(backoff, dbop.MaxAttempts(5))).Run(ctx)
	return err
}

func updateSQL(ctx context.Context, db *sql.DB) (int64, error) {
	return dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res, err := db.ExecContext(ctx, " /* nightly */ -- job\n  update accounts set n = n + 1") // want `UPDATE through db \(\*sql.DB\) runs in autocommit under dbop.WithRetry \(line 46\) without dbop.Idempotent\(\).* run it in sqldb.InTx`
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}).With(dbop.WithTimeout(time.Second), dbop.WithRetry(backoff)).Run(ctx)
}

var resilient = dbop.Chain(dbop.WithRetry(backoff), dbop.WithTimeout(time.Second))

func constantText(ctx context.Context, db *sql.DB, id int64) error {
	op := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
		_, err := db.Exec(insertOrder, id) // want `INSERT through db \(\*sql.DB\) runs in autocommit under dbop.WithRetry in resilient \(line 56\)`
		return struct{}{}, err
	})
	_, err := op.With(resilient).Run(ctx)
	return err
}

func deleteGorm(ctx context.Context) error {
	purge := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res := gdb.WithContext(ctx).Exec("DELETE FROM sessions WHERE expired") // want `DELETE through gdb \(\*gorm.DB\) runs in autocommit .* run it in gormdb.InTx`
		return res.RowsAffected, res.Error
	})
	_, err := purge.With(dbop.WithTimeout(time.Minute)).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

func rawGorm(ctx context.Context) (int64, error) {
	var id int64
	return dbop.Op[int64](func(ctx context.Context) (int64, error) {
		err := gdb.Raw("INSERT INTO users (name) VALUES (?) RETURNING id", "ann").Scan(&id).Error // want `INSERT through gdb \(\*gorm.DB\) runs in autocommit`
		return id, err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

func recordVisit(ctx context.Context) (int64, error) {
	tag, err := pool.Exec(ctx, "UPDATE pages SET visits = visits + 1") // want `UPDATE through pool \(\*pgxpool.Pool\) runs in autocommit under dbop.WithRetry \(line 83\)`
	return tag.RowsAffected(), err
}

func namedFunction(ctx context.Context) (int64, error) {
	return dbop.Op[int64](recordVisit).With(dbop.WithRetry(backoff)).Run(ctx)
}

// --- negatives ----------------------------------------------------------

// A read under a retry.
func selectUnderRetry(ctx context.Context, db *sql.DB) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n)
		return n, err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A write marked idempotent: it carries its own key.
func idempotent(ctx context.Context, id int64) error {
	op := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := pool.Exec(ctx, "INSERT INTO orders (id) VALUES ($1) ON CONFLICT DO NOTHING", id)
		return tag.RowsAffected(), err
	})
	if _, err := op.With(dbop.WithRetry(backoff, dbop.Idempotent())).Run(ctx); err != nil {
		return err
	}
	safe := dbop.Chain(dbop.WithRetry(backoff, dbop.MaxAttempts(3), dbop.Idempotent()))
	_, err := op.With(safe).Run(ctx)
	return err
}

// A write with no retry.
func noRetry(ctx context.Context, id int64) error {
	_, err := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := pool.Exec(ctx, "INSERT INTO orders (id) VALUES ($1)", id)
		return tag.RowsAffected(), err
	}).With(dbop.WithTimeout(time.Second)).Run(ctx)
	return err
}

// A write in a transaction: InTx's operation, under a retry.
func inTransaction(ctx context.Context, id int64) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO orders (id) VALUES ($1)", id)
		return err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// A text the analyzer cannot read, and a write it does not recognise.
func unknownText(ctx context.Context, db *sql.DB, q string) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, err
		}
		_, err := db.ExecContext(ctx, "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x")
		return 0, err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// Options the analyzer cannot see: one of them may be Idempotent.
func unknownOptions(ctx context.Context, opts ...dbop.RetryOption) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := pool.Exec(ctx, "DELETE FROM t")
		return 0, err
	}).With(dbop.WithRetry(backoff, opts...)).Run(ctx)
	return err
}

// A *gorm.DB from a parameter may be a transaction.
func gormParam(ctx context.Context, db *gorm.DB) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		return 0, db.Exec("DELETE FROM t").Error
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// Silenced, with a reason.
func silenced(ctx context.Context) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		//dbopvet:ignore the trigger on seen_at makes a second UPDATE harmless
		_, err := pool.Exec(ctx, "UPDATE sessions SET seen_at = now()")
		return 0, err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}
