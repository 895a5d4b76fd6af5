package contention

import (
	"context"
	"sync"
)

// Executor hands every transfer of a process to one goroutine of its own,
// which runs them one after another, one attempt each, on the workers'
// connections, and gives up on any error, as the reference does. It is not
// a retry strategy but a yardstick: the least a process of many workers can
// pay to run their transactions one at a time. No attempt waits for a
// goroutine to be woken, and nothing decides admission; what it still pays
// beside the reference is waking each worker once its transfer is done.
// Run alone in a process, it commits without conflicts; across processes
// it gives up on the conflicts between them.
func Executor() Strategy {
	type job struct {
		ctx  context.Context
		db   DB
		fn   TxFunc
		done chan error
	}
	var jobs chan job
	return Strategy{
		Name: "executor",
		Start: func() func() {
			jobs = make(chan job, 64)
			var wg sync.WaitGroup
			wg.Go(func() {
				for j := range jobs {
					j.done <- j.db.Attempt(j.ctx, j.fn)
				}
			})
			return func() { close(jobs); wg.Wait() }
		},
		Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
			done := make(chan error, 1)
			jobs <- job{ctx, db, fn, done}
			return <-done
		},
	}
}
