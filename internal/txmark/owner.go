package txmark

import (
	"context"
	"sync/atomic"
)

// OwnerWatch records whether a transaction scope of dbop's (scopes.InTx,
// and with it every adapter's InTx and Do) began a transaction for work run
// with the context [WithOwnerWatch] returned. A dbop.HotSpot that cuts an
// attempt short needs to know: such a scope ended its transaction and
// judged its COMMIT, while an Op of the user's own may have been cut in its
// COMMIT, whose outcome nobody knows.
type OwnerWatch struct{ began atomic.Bool }

type ownerWatchKey struct{}

// WithOwnerWatch returns a context that carries a new OwnerWatch, and the
// watch.
func WithOwnerWatch(ctx context.Context) (context.Context, *OwnerWatch) {
	w := new(OwnerWatch)
	return context.WithValue(ctx, ownerWatchKey{}, w), w
}

// Began reports whether a transaction scope began a transaction under the
// watch.
func (w *OwnerWatch) Began() bool { return w.began.Load() }

// OwnerBegins records, on the OwnerWatch ctx carries if any, that a
// transaction scope begins a transaction.
func OwnerBegins(ctx context.Context) {
	if w, _ := ctx.Value(ownerWatchKey{}).(*OwnerWatch); w != nil {
		w.began.Store(true)
	}
}
