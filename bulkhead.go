package dbop

import (
	"context"
	"fmt"

	"golang.org/x/sync/semaphore"
)

// Bulkhead returns a Decorator that lets at most n runs of what it decorates
// proceed at once; the others wait for a slot, first come first served.
//
// The Decorator holds one semaphore, shared by every Op it decorates and by
// every Pipeline it is part of: that is the point. Build one Bulkhead per
// resource to protect, sized below the connection pool, and use it in every
// pipeline that draws on that pool; two Bulkhead values are two independent
// limits.
//
// Placement is meaning. Listed after [WithRetry], it caps concurrent
// attempts: a slot is held for one attempt and given back during the wait
// before the next, so a storm of retries queues behind the cap instead of
// exhausting the pool. Listed before WithRetry, it caps whole operations,
// waits between attempts included.
//
// Waiting for a slot respects the context: when it ends first, the run
// fails with an error matching the context's error, and the Op is not run.
// That error carries no [Verdict], on purpose: inside a retry, the caller's
// context having ended stops the retry anyway, while a per-attempt
// [WithTimeout] listed before the Bulkhead that fired in the queue is
// retried like any other attempt timeout.
//
// An Op decorated by a Bulkhead must not run, and wait for, another Op
// decorated by the same Bulkhead, on its own goroutine or on others ([All]
// of such Ops): with every slot taken by such outer runs, the inner ones
// would wait until their context ends, for ever without a deadline. The
// same Bulkhead listed twice in one pipeline is refused when the pipeline
// is built, for the same reason.
//
// A Bulkhead with a free slot costs no allocation. It panics if n < 1.
func Bulkhead(n int64) Decorator {
	if n < 1 {
		panic(fmt.Sprintf("dbop: Bulkhead(%d): at least one slot is required", n))
	}
	return &bulkhead{sem: semaphore.NewWeighted(n)}
}

// bulkhead is the Decorator built by Bulkhead.
type bulkhead struct {
	sem *semaphore.Weighted
}

func (*bulkhead) decorator() {}

// acquire takes a slot, or returns why it could not.
func (b *bulkhead) acquire(ctx context.Context) error {
	if err := b.sem.Acquire(ctx, 1); err != nil {
		return fmt.Errorf("dbop: waiting for a bulkhead slot: %w", err)
	}
	return nil
}

func (b *bulkhead) release() { b.sem.Release(1) }
