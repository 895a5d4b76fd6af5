package dbop

// waiter is an attempt waiting for a slot.
type waiter struct {
	key    int64   // when its operation arrived or first lost, in Unix nanoseconds
	order  uint64  // the order it queued in, for equal keys
	ticket ticket  // its admission, once admitted
	index  int     // its place in the queue; -1 once out of it
	solo   bool    // it must run alone
	retry  bool    // its operation already lost a conflict
	keys   hotKeys // its operation's keys (HotSpotKeys), nil if none
	passes int     // later waiters admitted before it (admitWaitersLocked)
	ready  chan struct{}
}

// waitQueue is a binary min-heap of waiters by key, then order.
type waitQueue struct {
	items []*waiter
	next  uint64
}

func (q *waitQueue) less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	return a.key < b.key || (a.key == b.key && a.order < b.order)
}

func (q *waitQueue) swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].index, q.items[j].index = i, j
}

func (q *waitQueue) push(w *waiter) {
	q.next++
	w.order = q.next
	w.index = len(q.items)
	q.items = append(q.items, w)
	q.up(w.index)
}

func (q *waitQueue) pop() *waiter {
	w := q.items[0]
	q.removeAt(0)
	return w
}

func (q *waitQueue) remove(w *waiter) { q.removeAt(w.index) }

func (q *waitQueue) removeAt(i int) {
	last := len(q.items) - 1
	w := q.items[i]
	if i != last {
		q.swap(i, last)
	}
	q.items[last] = nil
	q.items = q.items[:last]
	if i != last {
		q.down(i)
		q.up(i)
	}
	w.index = -1
}

func (q *waitQueue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q *waitQueue) down(i int) {
	n := len(q.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			return
		}
		q.swap(i, m)
		i = m
	}
}
