package dboptest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// resilient is the application's retry policy, under test in ExampleScript.
var resilient = dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))

// A scripted operation checks what a policy does with each kind of error,
// without a database.
func ExampleScript() {
	deadlock := dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction)
	flaky := dboptest.Script(42, deadlock, deadlock)
	v, err := flaky.Op().With(resilient).Run(context.Background())
	fmt.Println(v, err, flaky.Calls())

	duplicate := dbop.Classify(errors.New("duplicate key"), dbop.NotRetryable)
	broken := dboptest.Script(42, duplicate)
	_, err = broken.Op().With(resilient).Run(context.Background())
	fmt.Println(err, broken.Calls())
	// Output:
	// 42 <nil> 3
	// duplicate key 1
}

// ordersTx is what placeOrder needs of a transaction. Application code
// written against a small interface like this one runs on an adapter's
// transaction in production and on a [dboptest.Tx] in its unit tests.
type ordersTx interface {
	scopes.Tx
	scopes.Savepointer
	Exec(ctx context.Context, stmt string) error
}

// placeOrder is the application code under test: it inserts an order and
// reserves stock, retrying the reservation alone on a lock timeout and the
// whole transaction on a deadlock.
func placeOrder[X ordersTx](begin scopes.BeginFunc[X]) dbop.Op[int] {
	return scopes.InTx(begin, func(ctx context.Context, tx X) (int, error) {
		if err := tx.Exec(ctx, "INSERT order"); err != nil {
			return 0, err
		}
		reserve := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 7, tx.Exec(ctx, "UPDATE stock")
		})
		return reserve.With(dbop.WithRetry(dbop.Constant(0)), scopes.InSavepoint(tx)).Run(ctx)
	}).With(dbop.WithRetry(dbop.Constant(0)))
}

// A unit test of placeOrder scripts the database's failures and reads the
// statements that ran.
func ExampleRecorder() {
	var db dboptest.Recorder
	lockTimeout := dbop.Classify(errors.New("lock timeout"), dbop.RetryStatement)
	deadlock := dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction)
	db.FailNext("UPDATE stock", lockTimeout, deadlock)

	id, err := placeOrder(db.Begin).Run(context.Background())
	fmt.Println(id, err)
	fmt.Println(strings.Join(db.Log(), "\n"))
	// Output:
	// 7 <nil>
	// BEGIN
	// INSERT order
	// SAVEPOINT dbop_sp_1
	// UPDATE stock
	// ROLLBACK TO SAVEPOINT dbop_sp_1
	// RELEASE SAVEPOINT dbop_sp_1
	// SAVEPOINT dbop_sp_1
	// UPDATE stock
	// ROLLBACK
	// BEGIN
	// INSERT order
	// SAVEPOINT dbop_sp_1
	// UPDATE stock
	// RELEASE SAVEPOINT dbop_sp_1
	// COMMIT
}

// FailNext scripts the n-th run of a statement: here the second COMMIT
// fails after it was sent, so its outcome is unknown.
func ExampleRecorder_FailNext() {
	var db dboptest.Recorder
	db.FailNext("COMMIT", nil, errors.New("connection reset by peer"))
	op := scopes.InTx(db.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return 1, tx.Exec(ctx, "INSERT a")
	})
	for range 2 {
		_, err := op.Run(context.Background())
		fmt.Println(err, errors.Is(err, scopes.ErrAmbiguousCommit))
	}
	fmt.Println(db.Log())
	// Output:
	// <nil> false
	// scopes: commit outcome unknown: connection reset by peer true
	// [BEGIN INSERT a COMMIT BEGIN INSERT a COMMIT]
}

// A seeded source makes a jittered schedule reproducible. Here each delay of
// an exponential backoff is varied by up to ±20%, and never beyond its 2s
// cap: at the cap, the delay is spread over [1.6s, 2s].
func ExampleSchedule() {
	b := dbop.Jitter(dbop.Exponential(100*time.Millisecond, 2*time.Second), 0.2)
	for i, d := range dboptest.Schedule(b, 6, rand.NewPCG(1, 2)) {
		fmt.Printf("retry %d: %v\n", i+1, d.Round(time.Millisecond))
	}
	// Output:
	// retry 1: 111ms
	// retry 2: 209ms
	// retry 3: 446ms
	// retry 4: 895ms
	// retry 5: 1.43s
	// retry 6: 1.616s
}
