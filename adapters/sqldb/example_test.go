package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/scopes"
)

// A money transfer on MariaDB, retried whole on deadlocks and lost
// connections, with a server-side lock wait limit per attempt.
func ExampleInTx() {
	db, err := sql.Open("mysql", "app@tcp(127.0.0.1:3306)/bank")
	if err != nil {
		log.Fatal(err)
	}
	transfer := func(from, to int64, cents int64) dbop.Op[int64] {
		return sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int64, error) {
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET cents = cents - ? WHERE id = ?", cents, from); err != nil {
				return 0, err
			}
			res, err := tx.ExecContext(ctx, "UPDATE accounts SET cents = cents + ? WHERE id = ?", cents, to)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}, sqldb.LockTimeout(2*time.Second))
	}
	retry := dbop.WithRetry(dbop.FullJitter(dbop.Exponential(10*time.Millisecond, time.Second)))

	_, err = transfer(1, 2, 500).With(retry).Run(context.Background())
	if errors.Is(err, scopes.ErrAmbiguousCommit) {
		// The COMMIT was sent and its answer lost: check before trying again.
		log.Print("transfer may or may not have happened: ", err)
	}
}

// A step retried at a savepoint, keeping the transaction's earlier work: a
// lock wait timeout is retried there; a deadlock escapes to the retry around
// InTx, which reruns the whole transaction.
func ExampleInSavepoint() {
	db, err := sql.Open("mysql", "app@tcp(127.0.0.1:3306)/shop")
	if err != nil {
		log.Fatal(err)
	}
	retry := dbop.WithRetry(dbop.Exponential(10*time.Millisecond, 200*time.Millisecond), dbop.MaxAttempts(4))

	order := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int64, error) {
		res, err := tx.ExecContext(ctx, "INSERT INTO orders (customer) VALUES (?)", 42)
		if err != nil {
			return 0, err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return 0, err
		}
		reserve := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			_, err := tx.ExecContext(ctx, "UPDATE stock SET reserved = reserved + 1 WHERE sku = ?", "A-1")
			return id, err
		})
		return reserve.With(retry, sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
	}, sqldb.LockTimeout(time.Second))

	id, err := order.With(retry).Run(context.Background())
	fmt.Println(id, err)
}

// PostgreSQL through the pgx stdlib driver: the timeouts are SET LOCAL, so
// they die with each attempt's transaction.
func ExampleStatementTimeout() {
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	report := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (int, error) {
		var n int
		err := tx.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE day = current_date").Scan(&n)
		return n, err
	}, sqldb.ReadOnly(), sqldb.StatementTimeout(500*time.Millisecond), sqldb.LockTimeout(100*time.Millisecond))

	n, err := report.With(dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(3))).Run(context.Background())
	fmt.Println(n, err)
}

// SQLite for concurrent writers: WAL, a busy timeout, and BEGIN IMMEDIATE.
func ExampleSQLiteDSN() {
	fmt.Println(sqldb.SQLiteDSN("/var/lib/app/app.db"))
	fmt.Println(sqldb.SQLiteDSN("app.db", sqldb.SQLiteBusyTimeout(time.Second), sqldb.SQLitePragma("foreign_keys(1)")))
	// Output:
	// file:/var/lib/app/app.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate
	// file:app.db?_pragma=busy_timeout(1000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate
}

// Counting on SQLite: every writer retries SQLITE_BUSY, each with its own
// busy_timeout per attempt.
func ExampleInTx_sqlite() {
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN("counter.db"))
	if err != nil {
		log.Fatal(err)
	}
	increment := sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
		var n int
		err := tx.QueryRowContext(ctx, "UPDATE counter SET n = n + 1 RETURNING n").Scan(&n)
		return n, err
	}, sqldb.LockTimeout(50*time.Millisecond))

	n, err := increment.With(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 100*time.Millisecond)))).Run(context.Background())
	fmt.Println(n, err)
}

// A single statement outside a transaction, classified by the dialect's
// rules: a lock wait timeout is retried, a duplicate key is not.
func ExampleDialect() {
	db, err := sql.Open("mysql", "app@tcp(127.0.0.1:3306)/app")
	if err != nil {
		log.Fatal(err)
	}
	touch := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		res, err := db.ExecContext(ctx, "UPDATE sessions SET seen = NOW() WHERE id = ?", 7)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	// Setting seen to NOW() twice leaves the row as once does: the
	// statement is idempotent, so a lost answer may be retried.
	n, err := touch.With(
		dbop.WithRetry(dbop.Constant(20*time.Millisecond), dbop.MaxAttempts(3), dbop.Idempotent()),
		dbop.ClassifyBy(mysqldb.MariaDB.Classify),
	).Run(context.Background())
	fmt.Println(n, err)
}

// A dialect is a value: a copy with one rule changed serves a driver the
// declared ones do not know, here pgx's database/sql driver with pgx's own
// classifier asked first.
func ExampleDialect_copy() {
	pgxClassifier := func(err error) dbop.Verdict { return dbop.Unclassified } // say, pgxdb.Classifier
	d := sqldb.Postgres
	d.Name = "postgres+pgx"
	d.Classify = dbop.Classifier(pgxClassifier).Or(sqldb.Postgres.Classify)
	fmt.Println(d, d.Family)
	// Output:
	// postgres+pgx postgres
}

// Work with no result: Do commits it, or rolls it back and lets the retry
// run it again.
func ExampleDo() {
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN("jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	claim := sqldb.Do(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE jobs SET owner = ? WHERE id = ? AND owner IS NULL", "worker-1", 42)
		return err
	}, sqldb.LockTimeout(50*time.Millisecond))

	_, err = claim.With(dbop.WithRetry(dbop.Exponential(time.Millisecond, 100*time.Millisecond), dbop.MaxAttempts(5))).Run(context.Background())
	fmt.Println(err)
}
