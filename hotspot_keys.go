package dbop

import (
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
// except that one whose keys are taken may be passed by a later one whose
// keys are free, at most four times: then it keeps its keys until it
// starts. Without keys an attempt overlaps every other.
//
// The keys guide admission; they are not locks. An operation that writes a
// row its keys do not name still runs correctly: it may conflict, and the
// retry handles the conflict as it would without keys (an operation that
// lost twice runs alone), and the HotSpot bounds attempts side by side
// again for a while. Across processes the HotSpot's lock still orders
// every attempt that takes it, whatever its keys. Where the database
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

// overlapsAny reports whether a shares a key with the unsorted multiset b.
func (a hotKeys) overlapsAny(b []int64) bool {
	for _, k := range b {
		if _, ok := slices.BinarySearch(a, k); ok {
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
	h.keyedIn++
	h.keysIn = append(h.keysIn, ks...)
}

func (h *hotSpot) dropKeys(ks hotKeys) {
	if ks == nil {
		h.unkeyedIn--
		return
	}
	h.keyedIn--
	for _, k := range ks {
		if i := slices.Index(h.keysIn, k); i >= 0 {
			last := len(h.keysIn) - 1
			h.keysIn[i] = h.keysIn[last]
			h.keysIn = h.keysIn[:last]
		}
	}
}

// admitWaitersLocked admits the waiters that may start now, oldest first.
// A waiter whose keys do not fit may be passed by later ones whose keys
// do, at most maxPasses times; from then on it keeps its keys: no later
// waiter whose keys overlap them is admitted before it, so it starts once
// the attempts in flight on them end. Nothing passes an unkeyed or a solo
// waiter. So none waits for ever, and none long.
func (h *hotSpot) admitWaitersLocked() {
	q := &h.queue
	if len(q.items) == 0 {
		return
	}
	if !h.keyedSeen {
		// Without keys, strictly oldest first.
		for len(q.items) > 0 && h.admissible(q.items[0].solo, int(h.state.Load()&inflightMask)) {
			h.admitWaiterLocked(q.pop())
		}
		return
	}
	order := append(h.scratch[:0], q.items...)
	slices.SortFunc(order, func(a, b *waiter) int {
		if c := cmpInt64(a.key, b.key); c != 0 {
			return c
		}
		return cmpInt64(int64(a.order), int64(b.order))
	})
	n := len(order)
	reserved := h.reserved[:0]
	passed := order[:0] // the waiters passed over so far, in place
	for _, w := range order {
		ahead := w.keys == nil && len(passed) > 0 // an unkeyed one overlaps every waiter it would pass
		if !ahead && h.admissible(w.solo, int(h.state.Load()&inflightMask)) && h.keysFit(w.keys) && !w.keys.overlapsAny(reserved) {
			q.remove(w)
			h.admitWaiterLocked(w)
			for _, p := range passed {
				p.passes++
			}
			continue
		}
		if w.keys == nil || w.solo {
			break
		}
		passed = append(passed, w)
		if w.passes >= maxPasses {
			reserved = append(reserved, w.keys...)
		}
	}
	clear(order[:n])
	h.scratch, h.reserved = order[:0], reserved[:0]
}

// admitWaiterLocked admits w, out of the queue, and wakes it.
func (h *hotSpot) admitWaiterLocked(w *waiter) {
	w.ticket = h.admitLocked(w.solo, w.retry, w.keys)
	close(w.ready)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
