package scopes_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// The retry around InTx runs the whole transaction again after a
// transaction-level failure such as a deadlock.
func ExampleInTx() {
	var db dboptest.Recorder // a fake database that logs statements
	db.FailNext("UPDATE accounts", dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction))

	transfer := scopes.InTx(db.Begin, func(ctx context.Context, tx *dboptest.Tx) (int64, error) {
		if err := tx.Exec(ctx, "SELECT balance"); err != nil {
			return 0, err
		}
		return 42, tx.Exec(ctx, "UPDATE accounts")
	})
	id, err := transfer.With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
	fmt.Println(id, err)
	fmt.Println(strings.Join(db.Log(), "\n"))
	// Output:
	// 42 <nil>
	// BEGIN
	// SELECT balance
	// UPDATE accounts
	// ROLLBACK
	// BEGIN
	// SELECT balance
	// UPDATE accounts
	// COMMIT
}

// The retry around InSavepoint runs one statement again inside the caller's
// transaction, keeping the transaction's earlier work.
func ExampleInSavepoint() {
	var db dboptest.Recorder
	lockTimeout := dbop.Classify(errors.New("lock wait timeout exceeded"), dbop.RetryStatement)
	db.FailNext("UPDATE b", lockTimeout, lockTimeout)

	op := scopes.InTx(db.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT a"); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.Exec(ctx, "UPDATE b")
		})
		return step.With(dbop.WithRetry(dbop.Constant(0)), scopes.InSavepoint(tx)).Run(ctx)
	})
	if _, err := op.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.Join(db.Log(), "\n"))
	// Output:
	// BEGIN
	// INSERT a
	// SAVEPOINT dbop_sp_1
	// UPDATE b
	// ROLLBACK TO SAVEPOINT dbop_sp_1
	// RELEASE SAVEPOINT dbop_sp_1
	// SAVEPOINT dbop_sp_1
	// UPDATE b
	// ROLLBACK TO SAVEPOINT dbop_sp_1
	// RELEASE SAVEPOINT dbop_sp_1
	// SAVEPOINT dbop_sp_1
	// UPDATE b
	// RELEASE SAVEPOINT dbop_sp_1
	// COMMIT
}

// A COMMIT that fails after it was sent may have been applied: it is not
// retried unless the operation is idempotent.
func ExampleAmbiguousCommitError() {
	var db dboptest.Recorder
	db.FailNext("COMMIT", errors.New("connection reset by peer"))

	op := scopes.InTx(db.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return 1, tx.Exec(ctx, "INSERT payment")
	})
	_, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background())
	fmt.Println(err)
	fmt.Println(errors.Is(err, scopes.ErrAmbiguousCommit), dbop.VerdictOf(err))
	fmt.Println(db.Log())
	// Output:
	// scopes: commit outcome unknown: connection reset by peer
	// true ambiguous
	// [BEGIN INSERT payment COMMIT]
}
