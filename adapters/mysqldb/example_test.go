package mysqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

// Classifier says what a MySQL or MariaDB error did to the transaction.
func ExampleClassifier() {
	fmt.Println(mysqldb.Classifier(dboptest.MySQLError(1213, "Deadlock found when trying to get lock; try restarting transaction")))
	fmt.Println(mysqldb.Classifier(dboptest.MySQLError(1205, "Lock wait timeout exceeded; try restarting transaction")))
	fmt.Println(mysqldb.Classifier(dboptest.MySQLError(1062, "Duplicate entry '7' for key 'PRIMARY'")))
	// Output:
	// retry-transaction
	// retry-statement
	// not-retryable
}

// A money transfer on MariaDB, retried whole on deadlocks and lost
// connections, with a server-side lock wait limit per attempt.
func ExampleMariaDB() {
	db, err := sql.Open("mysql", "app@tcp(127.0.0.1:3306)/bank")
	if err != nil {
		log.Fatal(err)
	}
	transfer := sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET cents = cents - 500 WHERE id = 1"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE accounts SET cents = cents + 500 WHERE id = 2")
		return err
	}, sqldb.LockTimeout(2*time.Second))

	_, err = transfer.With(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(10*time.Millisecond, time.Second)))).Run(context.Background())
	fmt.Println(err)
}

// A single statement outside a transaction: the MySQL rules first, then
// the driver-free ones for transport and context errors.
func ExampleClassifier_autocommit() {
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
		dbop.ClassifyBy(mysqldb.Classifier, classifiers.Default),
	).Run(context.Background())
	fmt.Println(n, err)
}
