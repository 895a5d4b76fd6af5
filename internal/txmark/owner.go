package txmark

import (
	"context"
	"slices"
	"sync"
)

// OwnerWatch records the errors that transaction scopes of dbop's
// (scopes.InTx, and with it every adapter's InTx and Do) returned for work
// run with the context [WithOwnerWatch] returned. A dbop.HotSpot that cuts
// an attempt short needs to know where the cut fell: a scope has ended its
// transaction and judged its COMMIT, while work of the user's own may have
// been cut in its COMMIT, whose outcome nobody knows. That a scope ran in
// the attempt says nothing of the rest of it (an Op of your own that runs a
// scope and then a transaction of its own; All of a scope and an Op of your
// own), so the attempt's error itself must have come from scopes ([Owns]).
//
// An error is known by its identity, so the watch keeps only errors no
// other error can hold unless it wraps them: the marks ([Mark]) a scope
// makes for the error it returns, which are new for each return. An error
// a scope hands back as it came (one no rule retries, from its function
// or its driver) may be a value any error holds: context.DeadlineExceeded,
// which a function returning ctx.Err() gives the scope, and which the
// COMMIT of an Op of your own that the same cut ended returns too; a
// sentinel such as mysql.ErrInvalidConn; or a value == cannot compare. A
// cut whose error holds only such errors is not taken for the scopes'.
type OwnerWatch struct {
	mu    sync.Mutex
	marks []*Mark
}

type ownerWatchKey struct{}

// WithOwnerWatch returns a context that carries a new OwnerWatch, and the
// watch.
func WithOwnerWatch(ctx context.Context) (context.Context, *OwnerWatch) {
	w := new(OwnerWatch)
	return context.WithValue(ctx, ownerWatchKey{}, w), w
}

// OwnerEnded records, on the OwnerWatch ctx carries if any, that a
// transaction scope returned err, having ended its transaction. Only a
// [Mark] the scope made for this return is recorded (see [OwnerWatch]).
func OwnerEnded(ctx context.Context, err error) {
	m, ok := err.(*Mark)
	if !ok {
		return
	}
	if w, _ := ctx.Value(ownerWatchKey{}).(*OwnerWatch); w != nil {
		w.mu.Lock()
		w.marks = append(w.marks, m)
		w.mu.Unlock()
	}
}

// Owns reports whether err, the error an attempt returned, is made only of
// errors scopes returned under the watch: followed through wrapping, each
// error it joins (All's, errors.Join's) must lead to one. follow, when it
// says so, names the one error to follow instead of unwrapping (a retry's
// error inside the attempt: its last attempt's error, not its reason).
func (w *OwnerWatch) Owns(err error, follow func(error) (error, bool)) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.marks) > 0 && w.owns(err, follow)
}

func (w *OwnerWatch) owns(err error, follow func(error) (error, bool)) bool {
	for err != nil {
		if m, ok := err.(*Mark); ok && slices.Contains(w.marks, m) {
			return true
		}
		if next, ok := follow(err); ok {
			err = next
			continue
		}
		switch e := err.(type) {
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			errs := e.Unwrap()
			if len(errs) == 0 {
				return false
			}
			for _, inner := range errs {
				if !w.owns(inner, follow) {
					return false
				}
			}
			return true
		default:
			return false
		}
	}
	return false
}
