package contention

import (
	"context"
	"sync"
)

// Keyed runs each transfer in one attempt, once no other transfer of the
// process is using either of its accounts, and gives up on any error, as
// the reference does. It is not a retry strategy but a yardstick: what
// running disjoint transfers side by side could gain, if an admission knew
// the rows each transfer writes (dbop.HotSpot does not). A transfer whose
// accounts stay busy may be overtaken by later ones: it is not fair.
// Across processes nothing orders the transfers.
func Keyed() Strategy {
	var (
		mu   sync.Mutex
		cond = sync.NewCond(&mu)
		busy = map[int32]bool{}
	)
	return Strategy{Name: "keyed", Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
		tr := TransferOf(ctx)
		mu.Lock()
		for busy[tr.From] || busy[tr.To] {
			cond.Wait()
		}
		busy[tr.From], busy[tr.To] = true, true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(busy, tr.From)
			delete(busy, tr.To)
			cond.Broadcast()
			mu.Unlock()
		}()
		return db.Attempt(ctx, fn)
	}}
}
