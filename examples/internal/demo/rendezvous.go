package demo

import (
	"context"
	"sync"
)

// Rendezvous holds the first attempts of n operations until each of them
// has arrived: the way to force an interleaving without sleeping. It is
// safe for concurrent use; make one with [NewRendezvous].
type Rendezvous struct {
	mu      sync.Mutex
	waiting int           // parties yet to arrive
	all     chan struct{} // closed once all have arrived
}

// NewRendezvous returns a Rendezvous of n parties. It panics if n < 1.
func NewRendezvous(n int) *Rendezvous {
	if n < 1 {
		panic("demo: NewRendezvous needs at least one party")
	}
	return &Rendezvous{waiting: n, all: make(chan struct{})}
}

// Party returns the hooks of one operation; call it once per party. The
// first call of wait arrives and waits for the others; later calls (the
// operation's retries) return at once. leave arrives if wait never did, so
// that the others are not kept waiting by an operation that failed early:
// defer it when the operation starts. wait is for the operation's own
// goroutine; leave may be called from any.
func (r *Rendezvous) Party() (wait func(context.Context) error, leave func()) {
	var once sync.Once
	arrive := func() { once.Do(r.arrive) }
	first := true // used by the operation's goroutine only
	wait = func(ctx context.Context) error {
		if !first {
			return nil
		}
		first = false
		arrive()
		return Await(ctx, r.all)
	}
	return wait, arrive
}

func (r *Rendezvous) arrive() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting--
	if r.waiting == 0 {
		close(r.all)
	}
}

// Await waits until done is closed and returns nil, or until ctx is done
// and returns its cause ([context.Cause]), whichever comes first.
func Await(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
