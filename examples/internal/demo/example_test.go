package demo_test

import (
	"context"
	"os"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/examples/internal/demo"
)

// Stats counts the attempts and the retries of a pipeline; the summary
// prints them at the end.
func ExampleStats() {
	var st demo.Stats
	resilient := dbop.Chain(
		dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(5),
			dbop.OnRetry(func(_ context.Context, e dbop.RetryEvent) {
				st.Retried(demo.PostgresCause(e.Err) + " (" + e.Verdict.String() + ")")
			}),
		),
		dbop.Before(st.Attempt),
		dbop.ClassifyBy(classifiers.Postgres), // as pgxdb.InTx does
	)
	deadlock := dboptest.PgError("40P01", "deadlock detected")
	conflict := dboptest.PgError("40001", "could not serialize access")
	op := dboptest.Script(struct{}{}, deadlock, conflict, deadlock).Op()
	if _, err := op.With(resilient).Run(context.Background()); err != nil {
		panic(err)
	}

	attempts, retries := st.Snapshot()
	s := demo.Finished(os.Stdout, 1500*time.Millisecond)
	s.Row("attempts", "%d", attempts)
	s.Row("retries", "%d", retries)
	s.Causes(st.Retries())
	s.Check(st.Caused("40P01") == 2, "OK: two deadlocks retried", "%d deadlocks", st.Caused("40P01"))
	// Output:
	// finished in 1.5s
	//   attempts    4
	//   retries     3
	//         1  40001 serialization_failure (retry-transaction)
	//         2  40P01 deadlock_detected (retry-transaction)
	//   check       2 deadlocks: OK: two deadlocks retried
}
