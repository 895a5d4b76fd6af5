package txmark

import (
	"context"
	"reflect"
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
type OwnerWatch struct {
	mu sync.Mutex
	// errs are the scopes' errors that are values of their return's own
	// ([distinct]); shared, those that are not.
	errs, shared []error
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
		if distinct(err) {
			w.errs = append(w.errs, err)
		} else {
			w.shared = append(w.shared, err)
		}
		w.mu.Unlock()
	}
}

// Owns reports whether err, the error an attempt returned, is made only of
// errors scopes returned under the watch: followed through wrapping, each
// error it joins (All's, errors.Join's) must lead to one. follow, when it
// says so, names the one error to follow instead of unwrapping (a retry's
// error inside the attempt: its last attempt's error, not its reason).
// ours reports whether an error is a wrapper of dbop's own (a mark, a
// verdict, a deadline's), which says nothing of what it wraps.
//
// A scope's error that is not a value of its return's own ([distinct]:
// context.DeadlineExceeded, which a function returning ctx.Err() hands the
// scope, and the scope returns as it is where no classifier wraps it) is
// held by the errors of any work the same deadline ended, an Op of your
// own cut in its COMMIT included, under the wrappers of its driver or of
// its own code: it counts only where it is the attempt's error itself, or
// under wrappers of dbop's alone.
func (w *OwnerWatch) Owns(err error, follow func(error) (error, bool), ours func(error) bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.errs)+len(w.shared) > 0 && w.owns(err, true, follow, ours)
}

// owns is Owns for err, reached from the attempt's error through wrappers
// of dbop's alone when top is true.
func (w *OwnerWatch) owns(err error, top bool, follow func(error) (error, bool), ours func(error) bool) bool {
	for err != nil {
		if slices.ContainsFunc(w.errs, func(e error) bool { return same(e, err) }) ||
			top && slices.ContainsFunc(w.shared, func(e error) bool { return same(e, err) }) {
			return true
		}
		if next, ok := follow(err); ok {
			err = next
			continue
		}
		switch err.(type) {
		case *Mark, *After:
		default:
			top = top && ours(err)
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
				if !w.owns(inner, top, follow, ours) {
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

// distinct reports whether err, the error a scope returns, is a value of
// that return's own, which no other error holds unless it wraps this one:
// an error made for it (a pointer, a slice, a map), not a value that every
// error of its kind equals (context.DeadlineExceeded, a syscall.Errno),
// not context.Canceled, and not a context's cause (a dbop.TimeoutError,
// which matches context.DeadlineExceeded itself), which every attempt it
// ended holds.
func distinct(err error) bool {
	if err == context.Canceled {
		return false
	}
	if is, ok := err.(interface{ Is(error) bool }); ok && (is.Is(context.DeadlineExceeded) || is.Is(context.Canceled)) {
		return false
	}
	switch reflect.TypeOf(err).Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return true
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
