package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The examples that need a server are compiled but not run.

// A transfer in a SERIALIZABLE transaction, run again as a whole on
// serialization failures, deadlocks, timeouts and lost connections.
func ExampleInTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/bank")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	transfer := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		var balance int64
		if err := tx.QueryRow(ctx, "SELECT balance FROM accounts WHERE id = $1", 1).Scan(&balance); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = $1 WHERE id = $2", balance-100, 1); err != nil {
			return 0, err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + 100 WHERE id = $1", 2)
		return balance - 100, err
	},
		pgxdb.Isolation(pgx.Serializable),
		pgxdb.LockTimeout(2*time.Second),      // per attempt, on the server
		pgxdb.StatementTimeout(5*time.Second), // likewise
	)

	left, err := transfer.With(
		dbop.WithTimeout(30*time.Second), // the overall budget
		dbop.WithRetry(dbop.FullJitter(dbop.Exponential(10*time.Millisecond, time.Second))),
	).Run(ctx)
	switch {
	case errors.Is(err, scopes.ErrAmbiguousCommit):
		log.Printf("the transfer may or may not have happened: %v", err)
	case err != nil:
		log.Printf("the transfer failed: %v", err)
	default:
		log.Printf("%d left", left)
	}
}

// A step retried at a savepoint inside a transaction, with a lock_timeout of
// its own: a lock timeout rolls back to the savepoint and tries the step
// again, keeping the order inserted before it; a deadlock or a
// serialization failure restarts the whole transaction.
func ExampleInSavepoint() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/shop")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	order := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		var id int64
		if err := tx.QueryRow(ctx, "INSERT INTO orders (item) VALUES ($1) RETURNING id", "book").Scan(&id); err != nil {
			return 0, err
		}
		reserve := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			_, err := tx.Exec(ctx, "UPDATE stock SET reserved = reserved + 1 WHERE item = $1", "book")
			return id, err
		})
		return reserve.With(
			dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(3)),
			pgxdb.InSavepoint(tx, pgxdb.LockTimeout(200*time.Millisecond)),
		).Run(ctx) // the context InTx handed to fn
	})

	id, err := order.With(dbop.WithRetry(dbop.Exponential(20*time.Millisecond, time.Second))).Run(ctx)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("order %d", id)
}

// Work with no result: Do runs fn in a transaction per attempt, as InTx
// does.
func ExampleDo() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/shop")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	archive := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO orders_archive SELECT * FROM orders WHERE shipped"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM orders WHERE shipped")
		return err
	}, pgxdb.StatementTimeout(time.Minute))

	if _, err := archive.With(dbop.WithRetry(dbop.Exponential(20*time.Millisecond, time.Second))).Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// CockroachDB's client-side retry protocol: up to 10 runs in place, at
// once, then new transactions begun by the retry around InTx, with its
// backoff.
func ExampleCockroachRestart() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://root@localhost:26257/bank")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - 100 WHERE id = $1", 1)
		return err
	}, pgxdb.CockroachRestart(dbop.MaxAttempts(10), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		log.Printf("restart %d after %v", e.Attempt, e.Err)
	})))

	if _, err := op.With(dbop.WithRetry(dbop.Exponential(50*time.Millisecond, 2*time.Second))).Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// What a retry makes of pgx's errors. Classifier is also what to give
// dbop.ClassifyBy for work on a pgx connection outside InTx.
func ExampleClassifier() {
	for _, err := range []error{
		&pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "could not serialize access"},
		&pgconn.PgError{Severity: "ERROR", Code: "55P03", Message: "canceling statement due to lock timeout"},
		&pgconn.PgError{Severity: "ERROR", Code: "23505", Message: "duplicate key value violates unique constraint"},
		pgconn.ErrConnClosed,
		pgx.ErrTxCommitRollback,
		pgx.ErrNoRows,
	} {
		fmt.Printf("%v: %v\n", err, pgxdb.Classifier(err))
	}
	// Output:
	// ERROR: could not serialize access (SQLSTATE 40001): retry-transaction
	// ERROR: canceling statement due to lock timeout (SQLSTATE 55P03): retry-statement
	// ERROR: duplicate key value violates unique constraint (SQLSTATE 23505): not-retryable
	// conn closed: retry-transaction
	// commit unexpectedly resulted in rollback: not-retryable
	// no rows in result set: unclassified
}

// A HotSpot's lock tables, created once as part of the migrations; the
// transfers that write the same few accounts then run through a HotSpot
// whose attempts, in every process, wait for one another in the server at
// any isolation level.
func ExampleCreateHotSpotLocks() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/bank")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	if err := pgxdb.CreateHotSpotLocks(ctx, pool); err != nil {
		log.Fatal(err)
	}

	hot := dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)), dbop.MaxAttempts(50)), dbop.HotSpot())
	transfer := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - 100 WHERE id = $1", 1); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + 100 WHERE id = $1", 2)
		return err
	}, pgxdb.Isolation(pgx.Serializable))
	if _, err := transfer.With(hot).Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// Transfers between a few hot accounts from many goroutines: the attempts
// that are ready at the same time share one transaction, each in a
// savepoint of its own, and one COMMIT. The operation is built per
// transfer, closing over its accounts; every one built at this
// ShareCommits call shares with the others. The lock tables let processes
// take turns a shared transaction at a time.
func ExampleShareCommits() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/bank")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := pgxdb.CreateHotSpotLocks(ctx, pool); err != nil {
		log.Fatal(err)
	}
	retried := dbop.WithRetry(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)), dbop.MaxAttempts(50))

	transfer := func(from, to, amount int64) error {
		_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $2 WHERE id = $1", from, amount); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + $2 WHERE id = $1", to, amount)
			return err
		}, pgxdb.Isolation(pgx.Serializable), pgxdb.ShareCommits()).With(retried).Run(ctx)
		return err
	}
	var wg sync.WaitGroup
	for i := range int64(16) {
		wg.Go(func() {
			if err := transfer(1+i%4, 1+(i+1)%4, 100); err != nil {
				log.Print(err)
			}
		})
	}
	wg.Wait()
}
