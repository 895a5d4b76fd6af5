package gormdb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5/pgconn"
	mysqldialect "gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// These examples need a database, so they are compiled but not run.

type Account struct {
	ID      int64
	Balance int64
}

// openDB opens GORM on PostgreSQL. Leave TranslateError off if you want
// errors.As to find the driver's error on MySQL (see the package
// documentation).
func openDB(dsn string) (*gorm.DB, error) {
	return gorm.Open(postgres.Open(dsn), &gorm.Config{})
}

// A transfer runs in a transaction of its own per attempt; the retry
// around it runs the whole transaction again after a deadlock or a
// serialization failure, reads included.
func ExampleInTx() {
	db, err := openDB("postgres://app@localhost/app")
	if err != nil {
		fmt.Println(err)
		return
	}
	transfer := func(from, to, amount int64) dbop.Op[int64] {
		return gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int64, error) {
			var src Account
			if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&src, from).Error; err != nil {
				return 0, err // gorm.ErrRecordNotFound is NotRetryable
			}
			if src.Balance < amount {
				return 0, errors.New("insufficient funds") // an error no rule knows is never retried
			}
			if err := tx.Model(&Account{}).Where("id = ?", from).Update("balance", gorm.Expr("balance - ?", amount)).Error; err != nil {
				return 0, err
			}
			if err := tx.Model(&Account{}).Where("id = ?", to).Update("balance", gorm.Expr("balance + ?", amount)).Error; err != nil {
				return 0, err
			}
			return src.Balance - amount, nil
		}, gormdb.Isolation(sql.LevelRepeatableRead))
	}

	left, err := transfer(1, 2, 100).With(
		dbop.WithRetry(dbop.FullJitter(dbop.Exponential(20*time.Millisecond, time.Second))),
	).Run(context.Background())
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, scopes.ErrAmbiguousCommit):
		fmt.Println("the transfer may or may not have happened: check before trying again")
	case errors.As(err, &pgErr):
		fmt.Println("server error", pgErr.Code)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("left:", left)
	}
}

// Do runs work with no result; here a counter bumped in a transaction of
// its own per attempt.
func ExampleDo() {
	db, err := openDB("postgres://app@localhost/app")
	if err != nil {
		fmt.Println(err)
		return
	}
	bump := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		return tx.Exec("UPDATE counters SET n = n + 1 WHERE name = ?", "visits").Error
	}, gormdb.StatementTimeout(time.Second))
	_, err = bump.With(dbop.WithRetry(dbop.Constant(10 * time.Millisecond))).Run(context.Background())
	fmt.Println(err)
}

// Inside the transaction, a step that may wait for a lock runs in a
// savepoint: a lock timeout (LockTimeout, server-side) rolls back to the
// savepoint and runs the step again, keeping the transaction's earlier
// work, while a deadlock goes out to the retry around InTx.
func ExampleInSavepoint() {
	db, err := openDB("postgres://app@localhost/app")
	if err != nil {
		fmt.Println(err)
		return
	}
	backoff := dbop.Exponential(10*time.Millisecond, 200*time.Millisecond)
	order := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int64, error) {
		if err := tx.Exec("INSERT INTO orders (item, qty) VALUES (?, ?)", "book", 1).Error; err != nil {
			return 0, err
		}
		reserve := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			r := tx.WithContext(ctx).Exec("UPDATE stock SET qty = qty - 1 WHERE item = ? AND qty > 0", "book")
			return r.RowsAffected, r.Error
		})
		return reserve.With(dbop.WithRetry(backoff, dbop.MaxAttempts(5)), gormdb.InSavepoint(tx)).Run(ctx)
	}, gormdb.LockTimeout(200*time.Millisecond))

	reserved, err := order.With(dbop.WithRetry(backoff)).Run(context.Background())
	fmt.Println(reserved, err)
}

// On GORM's mysql dialector, name the server: gormdb links no driver, and
// the rules of MySQL and MariaDB need go-sql-driver/mysql's error type,
// which mysqldb holds. Give the Dialect to every scope; without it they
// panic when they are built.
func ExampleDialect() {
	db, err := gorm.Open(mysqldialect.Open("app@tcp(localhost:3306)/app?parseTime=true"), &gorm.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	mariadb := gormdb.Dialect(mysqldb.MariaDB)
	order := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int64, error) {
		reserve := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			r := tx.WithContext(ctx).Exec("UPDATE stock SET qty = qty - 1 WHERE item = ? AND qty > 0", "book")
			return r.RowsAffected, r.Error
		})
		// A lock wait timeout (1205) is retried here; a deadlock (1213)
		// ends the transaction on MariaDB, and goes out to the retry
		// around InTx.
		return reserve.With(dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(3)), gormdb.InSavepoint(tx, mariadb)).Run(ctx)
	}, mariadb, gormdb.Isolation(sql.LevelRepeatableRead))
	n, err := order.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(context.Background())
	fmt.Println(n, err)
}

// ClassifyBy adds rules before the dialect's: CockroachDB behind the
// postgres dialector, say. For a statement outside a transaction (a read:
// see "Writes outside a transaction" in the package documentation), a
// dialect's classifier serves dbop.ClassifyBy.
func ExampleClassifyBy() {
	db, err := openDB("postgres://app@localhost:26257/app")
	if err != nil {
		fmt.Println(err)
		return
	}
	crdb := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		return 0, tx.Exec("UPDATE accounts SET balance = balance + 1 WHERE id = 1").Error
	}, gormdb.ClassifyBy(classifiers.CockroachDB))
	_, err = crdb.With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
	fmt.Println(err)

	count := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		var n int64
		return n, db.WithContext(ctx).Model(&Account{}).Count(&n).Error
	})
	n, err := count.With(
		dbop.WithRetry(dbop.Constant(50*time.Millisecond)),
		dbop.ClassifyBy(classifiers.CockroachDB, sqldb.Postgres.Classify),
	).Run(context.Background())
	fmt.Println(n, err)
}
