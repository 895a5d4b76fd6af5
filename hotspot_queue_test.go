package dbop

import (
	"fmt"
	"testing"
)

// An admission round with many waiters for one pair of keys, which are
// taken: with a slot free (level 4) it sorts the queue and looks at every
// waiter; with the level full (1) it returns at once.
func BenchmarkAdmitWaitersManyOnOneKey(b *testing.B) {
	for _, c := range []struct{ n, level int }{{100, 4}, {4000, 4}, {4000, 1}} {
		b.Run(fmt.Sprintf("waiters=%d/level=%d", c.n, c.level), func(b *testing.B) {
			n := c.n
			h := HotSpot().(*hotSpot)
			h.keyedUntil = 1 << 62 // keys lately
			h.level.slots = c.level
			for i := range n {
				w := &waiter{key: int64(i), keys: hotKeys{1, 2}, ready: make(chan struct{})}
				h.queue.push(w)
			}
			h.holdKeys(hotKeys{1, 2}) // the keys are taken: nobody fits
			h.state.Add(1)
			b.ResetTimer()
			for range b.N {
				h.admitWaitersLocked()
			}
		})
	}
}
