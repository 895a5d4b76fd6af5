package dbop

import (
	"cmp"
	"context"
	"slices"
)

// HotSpotKeys returns a copy of ctx that names the rows an operation run
// with it writes, for the [HotSpot] that admits its attempts: keys of the
// application's choosing (account numbers, say), one per row, that mean the
// same to every operation of that HotSpot. While the HotSpot limits, it
// never admits two attempts whose keys overlap at once, and it may admit
// attempts whose keys are disjoint side by side, as many as its level
// search finds worth it, without the deadlines it gives attempts that may
// form lock cycles among themselves. Waiters are admitted oldest first,
// except that one whose keys are taken may be passed by later ones whose
// keys are free; once four have started before it, it keeps its keys: no
// later one that shares a key with it starts before it. Without keys an
// attempt overlaps every other.
//
// The keys guide admission; they are not locks. An operation that writes a
// row its keys do not name still runs correctly: it may conflict, and the
// retry handles the conflict as it would without keys (an operation that
// lost twice runs alone), and the HotSpot bounds attempts side by side
// again for a while, and takes its lock across processes as if they had
// no keys. Across processes, while the HotSpot takes its lock, an attempt
// with keys takes the lock shared and a lock per key exclusively: on
// PostgreSQL with the lock tables, one of fifteen tables per key; on MySQL
// and MariaDB, one of 256 rows per key; so attempts of different
// processes whose keys fall on different locks run side by side, and an
// attempt without keys runs alone (docs/backends.md §1.16, §3.14). An
// attempt whose keys fall on more than four such locks, or whose
// operation lost twice, takes the HotSpot's lock alone, as without keys;
// so do all for a while after one that held its keys' locks still lost a
// conflict.
// PostgreSQL's advisory lock, taken where the lock tables are missing,
// orders every attempt, whatever its keys. Where the database
// reports conflicts between transactions that write disjoint rows
// (PostgreSQL's SERIALIZABLE reading a small table by a sequential scan,
// which locks the whole table for its conflict checks,
// docs/backends.md §1.15), the level search finds that running them side
// by side gets less done, and runs one at a time.
//
// With no keys it returns ctx. The keys are copied: ctx does not keep keys.
func HotSpotKeys(ctx context.Context, keys ...int64) context.Context {
	if len(keys) == 0 {
		return ctx
	}
	ks := slices.Clone(keys)
	slices.Sort(ks)
	ks = slices.Compact(ks)
	return context.WithValue(ctx, hotKeysKey{}, hotKeys(ks))
}

type hotKeysKey struct{}

// maxPasses is how many later waiters may be admitted before a waiter
// whose keys do not fit, before it keeps its keys (admitWaitersLocked):
// each pass costs it at most an attempt's time, and lets disjoint work
// run side by side where keeping the keys at once would often leave
// nothing that fits (with 4 accounts, a waiter and the attempt in flight
// that it overlaps hold 3 of them).
const maxPasses = 4

// hotKeys are an operation's keys, sorted, without duplicates.
type hotKeys []int64

func hotKeysOf(ctx context.Context) hotKeys {
	ks, _ := ctx.Value(hotKeysKey{}).(hotKeys)
	return ks
}

// overlapsAny reports whether a shares a key with b.
func (a hotKeys) overlapsAny(b map[int64]int32) bool {
	for _, k := range a {
		if b[k] > 0 {
			return true
		}
	}
	return false
}

// keysFit reports whether an attempt with keys ks may run beside the
// attempts in flight, as far as keys go: a keyed one beside keyed ones
// that share none of its keys, an unkeyed one beside unkeyed ones only.
func (h *hotSpot) keysFit(ks hotKeys) bool {
	if ks == nil {
		return h.keyedIn == 0
	}
	return h.unkeyedIn == 0 && !ks.overlapsAny(h.keysIn)
}

// holdKeys counts an admitted attempt's keys in flight; dropKeys, when it
// leaves.
func (h *hotSpot) holdKeys(ks hotKeys) {
	if ks == nil {
		h.unkeyedIn++
		return
	}
	if h.keysIn == nil {
		h.keysIn = make(map[int64]int32, len(ks))
	}
	h.keyedIn++
	for _, k := range ks {
		h.keysIn[k]++
	}
}

func (h *hotSpot) dropKeys(ks hotKeys) {
	if ks == nil {
		h.unkeyedIn--
		return
	}
	if h.keyedIn--; h.keyedIn == 0 {
		h.keysIn = nil // a burst of many keys leaves nothing behind
		return
	}
	for _, k := range ks {
		if h.keysIn[k]--; h.keysIn[k] <= 0 {
			delete(h.keysIn, k)
		}
	}
}

// admitWaitersLocked admits the waiters that may start now, oldest first.
// A waiter whose keys are taken may be passed by later waiters whose keys
// are free; once maxPasses have started before it, it keeps its keys: no
// later waiter that shares one of them starts before it, so it starts once
// the attempts in flight on them end. Nothing passes an unkeyed or a solo
// waiter. So none waits for ever, and none long.
func (h *hotSpot) admitWaitersLocked() {
	q := &h.queue
	if len(q.items) == 0 {
		return
	}
	if !h.keyed() && h.keyedIn == 0 {
		// No keys lately: strictly oldest first.
		for len(q.items) > 0 && h.admissible(q.items[0].solo, q.items[0].keys, int(h.state.Load()&inflightMask)) && h.keysFit(q.items[0].keys) {
			h.admitWaiterLocked(q.pop())
		}
		return
	}
	if !h.admissible(false, anyKeys, int(h.state.Load()&inflightMask)) {
		return // the level is full: no waiter may start, whatever its keys
	}
	order := append(h.scratch[:0], q.items...)
	slices.SortFunc(order, func(a, b *waiter) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.order, b.order)
	})
	n := len(order)
	reserved := h.reserved
	clear(reserved)
	reserve := func(w *waiter) {
		if reserved == nil {
			reserved = make(map[int64]int32, len(w.keys))
		}
		for _, k := range w.keys {
			reserved[k]++
		}
	}
	passed := order[:0] // the waiters passed over so far, in place
	for _, w := range order {
		if !h.admissible(false, anyKeys, int(h.state.Load()&inflightMask)) {
			break // no later waiter may start either
		}
		ahead := w.keys == nil && len(passed) > 0 // an unkeyed one overlaps every waiter it would pass
		if !ahead && h.admissible(w.solo, w.keys, int(h.state.Load()&inflightMask)) && h.keysFit(w.keys) && !w.keys.overlapsAny(reserved) {
			q.remove(w)
			h.admitWaiterLocked(w)
			for _, p := range passed {
				if p.passes++; p.passes == maxPasses {
					reserve(p)
				}
			}
			continue
		}
		if w.keys == nil || w.solo {
			break
		}
		passed = append(passed, w)
		if w.passes >= maxPasses {
			reserve(w)
		}
	}
	clear(order[:n])
	if cap(order) > 1024 {
		order = nil
	}
	if len(reserved) > 1024 {
		reserved = nil
	}
	h.scratch, h.reserved = order[:0], reserved
}

// admitWaiterLocked admits w, out of the queue, and wakes it.
func (h *hotSpot) admitWaiterLocked(w *waiter) {
	w.ticket = h.admitLocked(w.solo, w.retry, w.keys)
	close(w.ready)
}
