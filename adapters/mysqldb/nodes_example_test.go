package mysqldb_test

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
)

// A transfer on a three-node Galera cluster. Each attempt begins on the
// first node that has not failed lately; a node that refuses connections,
// answers 1047 or does not answer within the attempt's two seconds is left
// for the next node, at the next attempt. The transfer is written as
// relative updates, with no SELECT: on Galera that is what keeps it whole
// when other nodes write the same rows (docs/clusters.md).
func ExampleNodes() {
	var dbs []*sql.DB
	for _, addr := range []string{"10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"} {
		db, err := sql.Open("mysql", "app@tcp("+addr+")/bank?timeout=1s")
		if err != nil {
			log.Fatal(err)
		}
		dbs = append(dbs, db)
	}
	nodes := mysqldb.Nodes(dbs...)

	errInsufficient := errors.New("insufficient funds")
	transfer := sqldb.Do(nodes, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE accounts SET cents = cents - 500 WHERE id = 1 AND cents >= 500")
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errInsufficient // no rule recognises it: not retried
		}
		_, err = tx.ExecContext(ctx, "UPDATE accounts SET cents = cents + 500 WHERE id = 2")
		return err
	})

	_, err := transfer.With(
		dbop.WithRetry(dbop.FullJitter(dbop.Exponential(10*time.Millisecond, time.Second)),
			dbop.MaxElapsed(30*time.Second),
			nodes.Failover()), // a node-level failure moves the next attempt to another node
		dbop.WithTimeout(2*time.Second), // each attempt: a node that stalls is a node-level failure
	).Run(context.Background())
	fmt.Println(err)
}

// errStale says that a row changed between the transaction's read and its
// write.
var errStale = errors.New("changed since it was read")

// When a transaction on Galera must read before it writes, it reads
// everything first, with plain SELECTs (no FOR UPDATE), and then writes
// each row only if it is still as read: a compare-and-set on a version
// column. A row that changed meanwhile, on any node, updates nothing; the
// function turns that into a RetryTransaction verdict, and the retry reads
// again. Certification catches the writes the node had not applied yet
// (1213, retried the same way).
//
// Compare the version, not the value: go-sql-driver reports changed rows,
// so an UPDATE that writes the value already there affects none.
func ExampleNodes_compareAndSet() {
	db1, _ := sql.Open("mysql", "app@tcp(10.0.0.1:3306)/bank")
	db2, _ := sql.Open("mysql", "app@tcp(10.0.0.2:3306)/bank")
	nodes := mysqldb.Nodes(db1, db2)

	applyInterest := sqldb.Do(nodes, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		// 1. Every read, before any write.
		var cents, version int64
		if err := tx.QueryRowContext(ctx, "SELECT cents, version FROM accounts WHERE id = ?", 7).Scan(&cents, &version); err != nil {
			return err
		}
		// 2. Writes that check what was read.
		res, err := tx.ExecContext(ctx, "UPDATE accounts SET cents = ?, version = version + 1 WHERE id = ? AND version = ?",
			cents+cents/100, 7, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return dbop.Classify(fmt.Errorf("account 7: %w", errStale), dbop.RetryTransaction)
		}
		return nil
	})
	_, err := applyInterest.With(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(10*time.Millisecond, time.Second)), nodes.Failover())).Run(context.Background())
	fmt.Println(err)
}
