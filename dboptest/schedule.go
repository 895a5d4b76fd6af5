package dboptest

import (
	"math/rand/v2"
	"time"

	"github.com/dbop-go/dbop"
)

// Schedule returns the first n delays a retry loop using b would wait,
// feeding each delay back to b as the previous one, with the random words
// drawn from src (from [rand.Uint64] when src is nil). With a seeded source
// such as [rand.NewPCG] the schedule is reproducible, which makes it useful
// in documentation and tests. It returns nil when n <= 0.
//
// It panics if b is nil.
func Schedule(b dbop.Backoff, n int, src rand.Source) []time.Duration {
	if b == nil {
		panic("dboptest: Schedule: the Backoff must not be nil")
	}
	if n <= 0 {
		return nil
	}
	random := rand.Uint64
	if src != nil {
		random = src.Uint64
	}
	delays := make([]time.Duration, n)
	var prev time.Duration
	for i := range delays {
		prev = max(b.Delay(i+1, prev, random()), 0)
		delays[i] = prev
	}
	return delays
}
