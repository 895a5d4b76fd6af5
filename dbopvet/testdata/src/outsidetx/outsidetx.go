// Package outsidetx holds the cases of the outside-tx check: a statement,
// inside a function InTx or Do runs, through a database handle from
// outside instead of the transaction handed in.
package outsidetx

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

type User struct{ ID int64 }

var global *pgxpool.Pool

// --- true positives ---------------------------------------------------

func capturedPool(ctx context.Context, pool *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE accounts SET n = n + 1"); err != nil {
			return err
		}
		_, err := pool.Exec(ctx, "INSERT INTO audit VALUES (1)") // want `pool \(\*pgxpool.Pool\) runs this statement outside the transaction pgxdb.Do handed in: it commits on its own, stays applied if the transaction rolls back, and runs again on every retry of the transaction; run it on tx`
		return err
	}).Run(ctx))
}

func capturedGlobal(ctx context.Context) (int64, error) {
	return pgxdb.InTx(global, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		var n int64
		err := global.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n) // want `global \(\*pgxpool.Pool\) runs this statement outside the transaction pgxdb.InTx handed in`
		return n, err
	}).Run(ctx)
}

func capturedSQLDB(ctx context.Context, db *sql.DB) (int, error) {
	return sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
		var n int
		err := db.QueryRowContext(ctx, "SELECT n FROM counters").Scan(&n) // want `db \(\*sql.DB\) runs this statement outside the transaction sqldb.InTx handed in`
		if err != nil {
			return 0, err
		}
		_, err = tx.ExecContext(ctx, "UPDATE counters SET n = $1", n+1)
		return n, err
	}).Run(ctx)
}

func capturedInGoroutine(ctx context.Context, db *sql.DB) error {
	return errOf(sqldb.Do(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) error {
		done := make(chan error)
		go func() {
			_, err := db.ExecContext(ctx, "DELETE FROM sessions") // want `db \(\*sql.DB\) runs this statement outside the transaction sqldb.Do handed in`
			done <- err
		}()
		return <-done
	}).Run(ctx))
}

func capturedConn(ctx context.Context, pool *pgxpool.Pool, conn *pgx.Conn) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := conn.Exec(ctx, "UPDATE jobs SET state = 'done'") // want `conn \(\*pgx.Conn\) runs this statement outside the transaction pgxdb.Do handed in`
		return err
	}).Run(ctx))
}

func aliasOfPool(ctx context.Context, pool *pgxpool.Pool) error {
	p := pool
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := p.Query(ctx, "SELECT id FROM users") // want `p \(\*pgxpool.Pool\) runs this statement outside`
		if err != nil {
			return err
		}
		rows.Close()
		return nil
	}).Run(ctx))
}

func gormCaptured(ctx context.Context, db *gorm.DB, u *User) error {
	return errOf(gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		if err := tx.WithContext(ctx).Create(u).Error; err != nil {
			return err
		}
		return db.WithContext(ctx).Where("id = ?", u.ID).First(u).Error // want `db \(\*gorm.DB\) runs this statement outside the transaction gormdb.Do handed in`
	}).Run(ctx))
}

var gormPool, _ = gorm.Open(nil)

func gormPackagePool(ctx context.Context, u *User) (int64, error) {
	return gormdb.InTx(gormPool, func(ctx context.Context, tx *gorm.DB) (int64, error) {
		var n int64
		err := gormPool.Model(&User{}).Count(&n).Error // want `gormPool \(\*gorm.DB\) runs this statement outside`
		return n, err
	}).Run(ctx)
}

// A named function and a method value, passed to InTx.

type Store struct {
	pool *pgxpool.Pool
	db   *gorm.DB
}

func (s *Store) Transfer(ctx context.Context) (int64, error) { // want Transfer:"writes" Transfer:"commitsTx"
	return pgxdb.InTx(s.pool, s.transfer).Run(ctx)
}

func (s *Store) transfer(ctx context.Context, tx pgx.Tx) (int64, error) {
	if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - 1 WHERE id = 1"); err != nil {
		return 0, err
	}
	_, err := s.pool.Exec(ctx, "UPDATE accounts SET balance = balance + 1 WHERE id = 2") // want `s.pool \(\*pgxpool.Pool\) runs this statement outside the transaction pgxdb.InTx handed in`
	return 1, err
}

func (s *Store) Rename(ctx context.Context, u *User) error { // want Rename:"writes"
	return errOf(gormdb.Do(s.db, func(ctx context.Context, tx *gorm.DB) error {
		return s.db.Model(u).Update("name", "x").Error // want `s.db \(\*gorm.DB\) runs this statement outside the transaction gormdb.Do handed in`
	}).Run(ctx))
}

func markPaid(ctx context.Context, tx pgx.Tx) error {
	_, err := global.Exec(ctx, "UPDATE invoices SET paid = true") // want `global \(\*pgxpool.Pool\) runs this statement outside the transaction pgxdb.Do handed in`
	return err
}

func namedFunction(ctx context.Context) error {
	return errOf(pgxdb.Do(global, markPaid).Run(ctx))
}

func literalInVariable(ctx context.Context, db *sql.DB) error {
	fn := func(ctx context.Context, tx *sql.Tx) error {
		_, err := db.ExecContext(ctx, "UPDATE t SET n = 1") // want `db \(\*sql.DB\) runs this statement outside the transaction sqldb.Do handed in`
		return err
	}
	return errOf(sqldb.Do(db, sqldb.Postgres, fn).Run(ctx))
}

// The generic scopes.InTx, over any transaction type.

type fakeTx struct{}

func (*fakeTx) Commit(context.Context) error   { return nil }
func (*fakeTx) Rollback(context.Context) error { return nil }

func scopesInTx(ctx context.Context, begin scopes.BeginFunc[*fakeTx], db *sql.DB) (int, error) {
	return scopes.InTx(begin, func(ctx context.Context, tx *fakeTx) (int, error) {
		_, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1)") // want `db \(\*sql.DB\) runs this statement outside the transaction scopes.InTx handed in`
		return 1, err
	}).Run(ctx)
}

// A pool passed where the transaction fits: to a helper that takes the
// interface both implement, as sqlc's New(DBTX) does.

type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type Queries struct{ db DBTX }

func New(db DBTX) *Queries { return &Queries{db: db} }

func (q *Queries) CreateUser(ctx context.Context, name string) error {
	_, err := q.db.Exec(ctx, "INSERT INTO users (name) VALUES ($1)", name)
	return err
}

func insertUser(ctx context.Context, db DBTX, name string) error {
	_, err := db.Exec(ctx, "INSERT INTO users (name) VALUES ($1)", name)
	return err
}

func poolToHelper(ctx context.Context, pool *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if err := New(pool).CreateUser(ctx, "ann"); err != nil { // want `pool \(\*pgxpool.Pool\) is passed to outsidetx.New where the transaction fits: its statements run outside the transaction pgxdb.Do handed in, commit on their own, and run again on every retry of the transaction; pass tx`
			return err
		}
		return insertUser(ctx, pool, "bob") // want `pool \(\*pgxpool.Pool\) is passed to outsidetx.insertUser where the transaction fits`
	}).Run(ctx))
}

func saveUser(db *gorm.DB, u *User) error { return db.Save(u).Error }

func gormToHelper(ctx context.Context, db *gorm.DB, u *User) error {
	return errOf(gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		return saveUser(db, u) // want `db \(\*gorm.DB\) is passed to outsidetx.saveUser where the transaction fits`
	}).Run(ctx))
}

// --- negatives ----------------------------------------------------------

// The transaction itself, passed to helpers, nested ones included.

func insertOrder(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := tx.Exec(ctx, "INSERT INTO orders (id) VALUES ($1)", id)
	if err != nil {
		return err
	}
	return insertLine(ctx, tx, id)
}

func insertLine(ctx context.Context, db DBTX, id int64) error {
	_, err := db.Exec(ctx, "INSERT INTO lines (order_id) VALUES ($1)", id)
	return err
}

func txToHelpers(ctx context.Context, pool *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if err := insertOrder(ctx, tx, 1); err != nil {
			return err
		}
		if err := New(tx).CreateUser(ctx, "ann"); err != nil {
			return err
		}
		return insertUser(ctx, tx, "bob")
	}).Run(ctx))
}

// The transaction stored in a struct.

type repo struct {
	tx pgx.Tx
	db *gorm.DB
}

func (r repo) save(ctx context.Context) error {
	_, err := r.tx.Exec(ctx, "INSERT INTO t VALUES (1)")
	return err
}

func txInStruct(ctx context.Context, pool *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		r := repo{tx: tx}
		if _, err := r.tx.Exec(ctx, "UPDATE t SET n = 2"); err != nil {
			return err
		}
		return r.save(ctx)
	}).Run(ctx))
}

func (s *Store) gormTxInField(ctx context.Context, r *repo) error {
	return errOf(gormdb.Do(s.db, func(ctx context.Context, tx *gorm.DB) error {
		r.db = tx
		return r.db.Create(&User{}).Error
	}).Run(ctx))
}

// A closure over the transaction.

func closureOverTx(ctx context.Context, db *sql.DB) error {
	return errOf(sqldb.Do(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) error {
		exec := func(q string) error {
			_, err := tx.ExecContext(ctx, q)
			return err
		}
		if err := exec("UPDATE a SET n = 1"); err != nil {
			return err
		}
		return exec("UPDATE b SET n = 1")
	}).Run(ctx))
}

// GORM: a query built on the transaction, through a local variable.

func gormTxLocal(ctx context.Context, db *gorm.DB) error {
	return errOf(gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		q := tx.WithContext(ctx).Model(&User{})
		var n int64
		return q.Where("id > ?", 0).Count(&n).Error
	}).Run(ctx))
}

// A *gorm.DB the analyzer cannot tell from a transaction: a parameter that
// is not the one the transaction was begun on.
func gormOther(ctx context.Context, db, other *gorm.DB) error {
	return errOf(gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		return other.Create(&User{}).Error
	}).Run(ctx))
}

// A query on a different database, on purpose.

func auditElsewhere(ctx context.Context, pool, audit *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE accounts SET n = 0"); err != nil {
			return err
		}
		//dbopvet:ignore the audit log is another database, and must keep the attempt even when it rolls back
		_, err := audit.Exec(ctx, "INSERT INTO attempts VALUES (now())")
		return err
	}).Run(ctx))
}

func auditSameLine(ctx context.Context, pool, audit *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := audit.Exec(ctx, "INSERT INTO attempts VALUES (now())") //dbopvet:ignore another database, on purpose
		return err
	}).Run(ctx))
}

// A statement on the connection the transaction was begun on runs inside
// the transaction.
func sameConn(ctx context.Context, conn *pgx.Conn) error {
	return errOf(pgxdb.Do(conn, func(ctx context.Context, tx pgx.Tx) error {
		_, err := conn.Exec(ctx, "UPDATE t SET n = 1")
		return err
	}).Run(ctx))
}

// The pool used for what is not a statement, or passed where the
// transaction does not fit.

func stats(p *pgxpool.Pool) int { return 0 }

func poolNotAStatement(ctx context.Context, pool *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_ = pool.Stat()
		fmt.Println(pool, stats(pool))
		return nil
	}).Run(ctx))
}

// A transaction of its own, on the pool: a scope of its own.
func nestedScope(ctx context.Context, pool *pgxpool.Pool) error {
	return errOf(pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return errOf(pgxdb.Do(pool, func(ctx context.Context, inner pgx.Tx) error {
			_, err := inner.Exec(ctx, "INSERT INTO t VALUES (1)")
			return err
		}).Run(ctx))
	}).Run(ctx))
}

// The pool outside any transaction function.
func plainQuery(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, "UPDATE t SET n = 1")
	return err
}

// Hooks kept for after the commit: they run outside the transaction on
// purpose.
func afterCommit(ctx context.Context, pool *pgxpool.Pool) error {
	var after []func() error
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		after = append(after, func() error {
			_, err := pool.Exec(ctx, "NOTIFY orders")
			return err
		})
		_, err := tx.Exec(ctx, "INSERT INTO orders DEFAULT VALUES")
		return err
	}).Run(ctx)
	if err != nil {
		return err
	}
	for _, f := range after {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func hookReturned(ctx context.Context, pool *pgxpool.Pool) (func() error, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (func() error, error) {
		_, err := tx.Exec(ctx, "INSERT INTO orders DEFAULT VALUES")
		return func() error {
			_, err := pool.Exec(ctx, "NOTIFY orders")
			return err
		}, err
	}).Run(ctx)
}

func errOf(_ struct{}, err error) error { return err }
