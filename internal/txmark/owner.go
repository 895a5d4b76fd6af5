package txmark

import (
	"context"
	"reflect"
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
type OwnerWatch struct {
	mu   sync.Mutex
	errs []error
}

type ownerWatchKey struct{}

// WithOwnerWatch returns a context that carries a new OwnerWatch, and the
// watch.
func WithOwnerWatch(ctx context.Context) (context.Context, *OwnerWatch) {
	w := new(OwnerWatch)
	return context.WithValue(ctx, ownerWatchKey{}, w), w
}

// OwnerEnded records, on the OwnerWatch ctx carries if any, that a
// transaction scope returned err, having ended its transaction.
func OwnerEnded(ctx context.Context, err error) {
	if w, _ := ctx.Value(ownerWatchKey{}).(*OwnerWatch); w != nil && err != nil {
		w.mu.Lock()
		w.errs = append(w.errs, err)
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
	return len(w.errs) > 0 && w.owns(err, follow)
}

func (w *OwnerWatch) owns(err error, follow func(error) (error, bool)) bool {
	for err != nil {
		for _, e := range w.errs {
			if same(e, err) {
				return true
			}
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

// same reports whether a and b are the same error value. == panics on
// errors of a type that cannot be compared (a slice of field errors, a
// struct holding one), which a function run in a scope may return: those
// are the same only when they share their backing slice or map (an error
// the scope returned as it was); any other is taken for another error,
// which leaves the cut Ambiguous.
func same(a, b error) (eq bool) {
	t := reflect.TypeOf(a)
	if t != reflect.TypeOf(b) {
		return false
	}
	if t.Comparable() {
		// A comparable struct or array may still hold, in an interface
		// field, a value that is not: == panics then.
		defer func() {
			if recover() != nil {
				eq = false
			}
		}()
		return a == b
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch t.Kind() {
	case reflect.Slice:
		return va.Len() > 0 && va.Len() == vb.Len() && va.Pointer() == vb.Pointer()
	case reflect.Map:
		return !va.IsNil() && va.Pointer() == vb.Pointer()
	}
	return false
}
