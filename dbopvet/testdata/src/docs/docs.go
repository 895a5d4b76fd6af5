// Package docs holds the examples of docs/dbopvet.md, one per check:
// TestDocs finds each Go block of the document here, and each message the
// document shows among the findings on this package.
package docs

import (
	"context"
	"database/sql"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var retried = dbop.WithRetry(dbop.Exponential(5*time.Millisecond, time.Second), dbop.MaxAttempts(50))

// outside-tx

func transfer(ctx context.Context, pool *pgxpool.Pool, from, to, amount int64) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from); err != nil {
			return err
		}
		_, err := pool.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", amount, to) // want `^pool \(\*pgxpool.Pool\) runs this statement outside`
		return err
	}).With(retried).Run(ctx)
	return err
}

func debitAudited(ctx context.Context, pool *pgxpool.Pool, from, amount int64) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := pgxdb.Do(pool, func(ctx context.Context, atx pgx.Tx) error { // want `^pgxdb.Do runs a transaction of its own with context.Background\(\)`
			_, err := atx.Exec(ctx, "INSERT INTO audit (account, amount) VALUES ($1, $2)", from, amount)
			return err
		}).Run(context.Background()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from)
		return err
	}).With(retried).Run(ctx)
	return err
}

// ends-tx

func placeOrder(ctx context.Context, pool *pgxpool.Pool, customer int64) (int64, error) {
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		defer tx.Rollback(ctx) // want `^deferred tx.Rollback rolls back`
		var id int64
		err := tx.QueryRow(ctx, "INSERT INTO orders (customer) VALUES ($1) RETURNING id", customer).Scan(&id)
		return id, err
	})
	return op.With(retried).Run(ctx)
}

// retry-in-tx

func claimJob(ctx context.Context, pool *pgxpool.Pool, jobID int64) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	claim := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := tx.Exec(ctx, "UPDATE jobs SET state = 'claimed' WHERE id = $1", jobID)
		return tag.RowsAffected(), err
	})
	if _, err := claim.With(dbop.WithRetry(dbop.Constant(50 * time.Millisecond))).Run(ctx); err != nil { // want `^dbop.WithRetry runs the statements on tx again`
		return err
	}
	return tx.Commit(ctx)
}

func claimJobLogged(ctx context.Context, db *sql.DB, dialect sqldb.Dialect, jobID int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	logClaim := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res, err := tx.ExecContext(ctx, "INSERT INTO job_log (job_id, event) VALUES (?, 'claimed')", jobID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	claim := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res, err := tx.ExecContext(ctx, "UPDATE jobs SET state = 'claimed' WHERE id = ?", jobID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	seq := dbop.Then(logClaim, func(ctx context.Context, _ int64) (int64, error) {
		return claim.With(sqldb.InSavepoint(tx, dialect)).Run(ctx)
	})
	if _, err := seq.With(dbop.WithRetry(dbop.Constant(50 * time.Millisecond))).Run(ctx); err != nil { // want `^dbop.WithRetry runs the work on tx again`
		return err
	}
	return tx.Commit()
}

// autocommit-retry

func recordPayment(ctx context.Context, pool *pgxpool.Pool, orderID, amount int64) error {
	record := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := pool.Exec(ctx, "INSERT INTO payments (order_id, amount) VALUES ($1, $2)", orderID, amount) // want `^INSERT through pool`
		return tag.RowsAffected(), err
	})
	_, err := record.With(retried, dbop.ClassifyBy(pgxdb.Classifier)).Run(ctx)
	return err
}

// retry-commits

func shipOrder(ctx context.Context, pool *pgxpool.Pool, orderID int64) error {
	reserve := func(ctx context.Context, tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, "UPDATE stock SET reserved = reserved + 1 WHERE order_id = $1", orderID)
		return tag.RowsAffected(), err
	}
	ship := func(ctx context.Context, tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, "INSERT INTO shipments (order_id) VALUES ($1)", orderID)
		return tag.RowsAffected(), err
	}
	op := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		if _, err := pgxdb.InTx(pool, reserve).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, ship).Run(ctx) // want `^pgxdb.InTx \(line \d+\) commits before this pgxdb.InTx runs`
	})
	_, err := op.With(retried).Run(ctx)
	return err
}

// then-ctx

type (
	User    struct{ ID int64 }
	Order   struct{ ID int64 }
	Handler struct{ pool *pgxpool.Pool }
)

func getUser(id int64) dbop.Op[User] {
	return dbop.Op[User](func(context.Context) (User, error) { return User{ID: id}, nil })
}

var orders *pgxpool.Pool

func createOrder(u User) dbop.Op[Order] {
	return pgxdb.InTx(orders, func(ctx context.Context, tx pgx.Tx) (Order, error) {
		var o Order
		return o, tx.QueryRow(ctx, "INSERT INTO orders (user_id) VALUES ($1) RETURNING id", u.ID).Scan(&o.ID)
	})
}

func (h *Handler) Checkout(ctx context.Context, id int64) error { // want Checkout:"writes"
	op := dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		return createOrder(u).Run(ctx) // want `^this step of dbop.Then runs createOrder\(u\) with ctx, not with the context Then handed it`
	})
	_, err := op.With(retried).Run(ctx)
	return err
}

// one-shot

func importUsers(ctx context.Context, pool *pgxpool.Pool, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "email"}, src) // want `^src \(pgx.CopyFromSource\) is built outside the function pgxdb.Do runs`
		return err
	}).With(retried).Run(ctx)
	return err
}

// tx-on-busy-conn

func archiveOrder(ctx context.Context, db *sql.DB, dialect sqldb.Dialect, orderID int64) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO archive SELECT * FROM orders WHERE id = ?", orderID); err != nil {
		return err
	}
	_, err = sqldb.Do(conn, dialect, deleteOrder(orderID)).With(retried).Run(ctx) // want `^conn \(\*sql.Conn\) is the connection the transaction tx was begun on by hand`
	if err != nil {
		return err
	}
	return tx.Commit()
}

func deleteOrder(orderID int64) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM orders WHERE id = ?", orderID)
		return err
	}
}

// The fixes: silent.

func transferFixed(ctx context.Context, pool *pgxpool.Pool, from, to, amount int64) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", amount, to)
		return err
	}).With(retried).Run(ctx)
	return err
}

func claimJobFixed(ctx context.Context, tx pgx.Tx, claim dbop.Op[int64]) error {
	_, err := claim.With(dbop.WithRetry(dbop.Constant(50*time.Millisecond)), pgxdb.InSavepoint(tx)).Run(ctx)
	return err
}

func claimJobLoggedFixed(ctx context.Context, db *sql.DB, dialect sqldb.Dialect, jobID int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	logClaim := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res, err := tx.ExecContext(ctx, "INSERT INTO job_log (job_id, event) VALUES (?, 'claimed')", jobID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	claim := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res, err := tx.ExecContext(ctx, "UPDATE jobs SET state = 'claimed' WHERE id = ?", jobID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	seq := dbop.Then(logClaim, func(ctx context.Context, _ int64) (int64, error) {
		return claim.With(sqldb.InSavepoint(tx, dialect)).Run(ctx)
	})
	// Either fix: the context marked, or the savepoint scope listed after
	// the retry in the same With.
	if _, err := seq.With(dbop.WithRetry(dbop.Constant(50 * time.Millisecond))).Run(dbop.WithinTx(ctx)); err != nil {
		return err
	}
	if _, err := seq.With(dbop.WithRetry(dbop.Constant(50*time.Millisecond)), sqldb.InSavepoint(tx, dialect)).Run(ctx); err != nil {
		return err
	}
	return tx.Commit()
}

func recordPaymentFixed(ctx context.Context, pool *pgxpool.Pool, orderID, amount int64) error {
	record := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		tag, err := pool.Exec(ctx, "INSERT INTO payments (order_id, amount) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING", orderID, amount)
		return tag.RowsAffected(), err
	})
	_, err := record.With(dbop.WithRetry(dbop.Constant(time.Second), dbop.Idempotent()), dbop.ClassifyBy(pgxdb.Classifier)).Run(ctx)
	return err
}

func shipOrderFixed(ctx context.Context, pool *pgxpool.Pool, orderID int64) error {
	reserve := func(ctx context.Context, tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, "UPDATE stock SET reserved = reserved + 1 WHERE order_id = $1", orderID)
		return tag.RowsAffected(), err
	}
	ship := func(ctx context.Context, tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, "INSERT INTO shipments (order_id) VALUES ($1)", orderID)
		return tag.RowsAffected(), err
	}
	op := dbop.Then(pgxdb.InTx(pool, reserve), func(ctx context.Context, _ int64) (int64, error) {
		return pgxdb.InTx(pool, ship).Run(ctx)
	})
	_, err := op.With(retried).Run(ctx)
	return err
}

func (h *Handler) CheckoutFixed(ctx context.Context, id int64) error { // want CheckoutFixed:"writes"
	op := dbop.Then(getUser(id), func(ctx context.Context, u User) (Order, error) {
		return createOrder(u).Run(ctx)
	})
	_, err := op.With(retried).Run(ctx)
	return err
}

func importUsersFixed(ctx context.Context, pool *pgxpool.Pool, rows [][]any) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "email"}, pgx.CopyFromRows(rows))
		return err
	}).With(retried).Run(ctx)
	return err
}

func archiveOrderFixed(ctx context.Context, db *sql.DB, dialect sqldb.Dialect, orderID int64) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO archive SELECT * FROM orders WHERE id = ?", orderID); err != nil {
		return err
	}
	del := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res, err := tx.ExecContext(ctx, "DELETE FROM orders WHERE id = ?", orderID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	if _, err := del.With(retried, sqldb.InSavepoint(tx, dialect)).Run(ctx); err != nil {
		return err
	}
	return tx.Commit()
}

// shared-settings

func debitShared(ctx context.Context, pool *pgxpool.Pool, from, amount int64) error {
	transfer := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '100ms'"); err != nil { // want `^tx.Exec runs SET LOCAL lock_timeout in the transaction pgxdb.Do shares`
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from)
		return err
	}, pgxdb.ShareCommits())
	_, err := transfer.With(retried).Run(ctx)
	return err
}

func debitSharedFixed(ctx context.Context, pool *pgxpool.Pool, from, amount int64) error {
	transfer := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from)
		return err
	}, pgxdb.LockTimeout(100*time.Millisecond), pgxdb.ShareCommits())
	_, err := transfer.With(retried).Run(ctx)
	return err
}

// Silenced.

func transferAudited(ctx context.Context, pool, audit *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		//dbopvet:ignore the audit log is another database, and keeps failed attempts on purpose
		_, err := audit.Exec(ctx, "INSERT INTO attempts (op) VALUES ('transfer')")
		return err
	}).Run(ctx)
	return err
}
