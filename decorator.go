package dbop

import (
	"context"
	"fmt"
	"reflect"

	"github.com/dbop-go/dbop/internal/txmark"
)

// A Decorator adds behaviour to an [Op] of any result type. The built-in
// decorators ([WithRetry], [WithTimeout], [ClassifyBy], [Before], [Bulkhead],
// [HotSpot], [Flight.Share], [Around], [AroundTx], [Chain]) are plain values that need
// no type arguments; a decorator for one result type only is a
// [DecoratorFunc].
//
// Decorators are immutable once built and safe for concurrent use.
type Decorator interface {
	// decorator is unexported so that every Decorator is one the With
	// machinery knows how to compile into a typed closure at build time.
	decorator()
}

// DecoratorFunc is a typed decorator: a function from an Op[T] to an Op[T],
// as http.HandlerFunc is a function used as a handler. It is how a
// decorator that needs the result type takes part in [Op.With]; one that
// works for every result type is an [Around]. Applying a DecoratorFunc[T]
// to an Op of another result type panics at build time.
type DecoratorFunc[T any] func(Op[T]) Op[T]

func (DecoratorFunc[T]) decorator() {}

// pipeline is the Decorator Chain builds.
type pipeline []Decorator

func (pipeline) decorator() {}

// Chain returns a Decorator made of ds: a reusable pipeline. It is not tied
// to a result type, so one Chain can be stored in a package variable and
// applied to an Op[int] and an Op[[]Order] alike. As with [Op.With], the
// first listed is the outermost: op.With(Chain(A, B), C) behaves as
// A(B(C(op))). Chain panics if one of ds is nil.
func Chain(ds ...Decorator) Decorator {
	for i, d := range ds {
		if isNilDecorator(d) {
			panic(fmt.Sprintf("dbop: decorator %d of %d passed to Chain is nil%s", i+1, len(ds), nilKind(d)))
		}
	}
	return append(pipeline(nil), ds...)
}

// Around returns a Decorator from a function that runs next, possibly more
// than once or with a derived context. It is the way to write a decorator
// that works for every result type; next runs the decorated Op and keeps its
// result. Unlike the built-in decorators, an Around costs an allocation per
// call. Around panics if fn is nil.
func Around(fn func(ctx context.Context, next func(context.Context) error) error) Decorator {
	if fn == nil {
		panic("dbop: Around(nil)")
	}
	return around(fn)
}

type around func(ctx context.Context, next func(context.Context) error) error

func (around) decorator() {}

// AroundTx is [Around] for a decorator that runs each attempt inside a
// transaction the caller owns, such as a savepoint scope
// (github.com/dbop-go/dbop/scopes.InSavepoint is one): tx is the
// decorator's handle on that transaction, and must be comparable. Declaring
// the transaction is what lets dbop keep invariant 1 around the decorator:
//
//   - a [WithRetry] listed before it in the same pipeline runs all of its
//     attempts inside tx, so it never retries an error that doomed tx;
//   - once a retry above it has run again after an error that doomed tx,
//     it returns that error without calling fn, so nothing runs in the
//     doomed transaction again;
//   - listing it before a WithRetry that has no transaction scope inside
//     it panics when the pipeline is built: every attempt of that retry
//     would run inside one savepoint, which cannot undo a failed attempt.
//
// AroundTx panics if tx is nil or not comparable, or fn is nil.
func AroundTx(tx any, fn func(ctx context.Context, next func(context.Context) error) error) Decorator {
	if tx == nil {
		panic("dbop: AroundTx: the transaction is nil")
	}
	if !txmark.Comparable(tx) {
		panic(fmt.Sprintf("dbop: AroundTx: the transaction handle %T is not comparable: pass a pointer", tx))
	}
	if fn == nil {
		panic("dbop: AroundTx: fn is nil")
	}
	return &aroundTx{key: tx, fn: fn}
}

type aroundTx struct {
	key any
	fn  func(ctx context.Context, next func(context.Context) error) error
	// certifies: built by a savepoint scope of the library's (scopes,
	// through txmark.Certify), whose Undone marks a retry or fallback
	// listed around it may trust; an AroundTx of the caller's is the
	// caller's code.
	certifies bool
}

func init() {
	txmark.Certify = func(d any) {
		if a, ok := d.(*aroundTx); ok {
			a.certifies = true
		}
	}
}

func (*aroundTx) decorator() {}

// decorateAll applies ds to op, the first listed outermost. It flattens the
// pipelines in ds, refuses a decorator placed where it cannot do what it
// says (invariant 4), and compiles the rest from the innermost out.
func decorateAll[T any](op Op[T], ds []Decorator, caller string) Op[T] {
	flat := flatten(nil, ds, caller)
	validate(flat)
	var in inner
	for i := len(flat) - 1; i >= 0; i-- {
		op = decorate(op, flat[i], in)
		switch d := flat[i].(type) {
		case *aroundTx:
			in.txKeys = append(in.txKeys[:len(in.txKeys):len(in.txKeys)], d.key)
			if d.certifies {
				in.covers = append(in.covers[:len(in.covers):len(in.covers)], d.key)
			} else {
				in.covers = nil // the caller's scope: its function is the caller's code
			}
		case DecoratorFunc[T], around:
			// Code of the caller's runs around the attempt here, outside
			// the scopes inside, and may run statements no savepoint
			// undoes. (Hooks — Before, a Fallback's function — are
			// documented as not running statements on the transaction.)
			in.covers = nil
		case *hotSpot:
			if len(in.txKeys) == 0 { // else it lets every attempt through (decorate)
				in.hotSpot = d // the nearest one to a retry listed before it
			}
		}
	}
	return op
}

// inner is what a decorator is told, when it is compiled, about the
// decorators listed after it in the same pipeline.
type inner struct {
	txKeys []any // the transactions of the scopes inside it
	// covers are the transactions of the library's savepoint scopes
	// inside it with none of the caller's code that wraps the attempt
	// between (Around, a DecoratorFunc, an AroundTx of the caller's): such a
	// scope's savepoint covers all an attempt runs on its transaction, so
	// when the scope certifies that it rolled the attempt back
	// (txmark.Undone), nothing of it is left there.
	covers  []any
	hotSpot *hotSpot // the HotSpot nearest inside it, which paces its retries after conflicts
}

// isNilDecorator reports whether d is nil, or a nil function of a
// Decorator type (a DecoratorFunc), which would fail only when run.
func isNilDecorator(d Decorator) bool {
	if d == nil {
		return true
	}
	v := reflect.ValueOf(d)
	return v.Kind() == reflect.Func && v.IsNil()
}

// nilKind names the type of a nil decorator that is not a nil interface.
func nilKind(d Decorator) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf(" (a nil %T)", d)
}

// flatten appends ds to out with every Pipeline expanded in place.
func flatten(out, ds []Decorator, caller string) []Decorator {
	for i, d := range ds {
		if isNilDecorator(d) {
			panic(fmt.Sprintf("dbop: decorator %d of %d passed to %s is nil%s", i+1, len(ds), caller, nilKind(d)))
		}
		switch d := d.(type) {
		case pipeline:
			out = flatten(out, d, "Chain")
		default:
			out = append(out, d)
		}
	}
	return out
}

// validate panics when a decorator of flat, outermost first, is placed
// where it cannot act: a ClassifyBy whose verdicts no retry sees, an
// OrDefault that hides every attempt's failure from the retry around it,
// and a transaction scope around a retry that could then never retry.
func validate(flat []Decorator) {
	retryAt := func(from, to int) int { // the first WithRetry in flat[from:to], or -1
		for i := from; i < to; i++ {
			if _, ok := flat[i].(*retrier); ok {
				return i
			}
		}
		return -1
	}
	for i, d := range flat {
		switch d := d.(type) {
		case classify:
			if retryAt(0, i) < 0 && retryAt(i+1, len(flat)) >= 0 {
				panic(fmt.Sprintf("dbop: ClassifyBy (decorator %d) is listed before WithRetry (decorator %d): "+
					"the retry never sees its verdicts, which only label the final error; list ClassifyBy after WithRetry",
					i+1, retryAt(i+1, len(flat))+1))
			}
		case fallbackDecorator:
			if j := retryAt(0, i); j >= 0 && d.replacesErrors() {
				panic(fmt.Sprintf("dbop: OrDefault (decorator %d) is listed after WithRetry (decorator %d): "+
					"it turns every failed attempt into a success, so the retry never runs again; list OrDefault before WithRetry",
					i+1, j+1))
			}
		case *hotSpot:
			if j := retryAt(i+1, len(flat)); j >= 0 {
				panic(fmt.Sprintf("dbop: HotSpot (decorator %d) is listed before WithRetry (decorator %d): "+
					"it would hold its slot across the retry's waits and could not tell retries from newcomers; list HotSpot after every WithRetry",
					i+1, j+1))
			}
		case *bulkhead:
			for j := i + 1; j < len(flat); j++ {
				if flat[j] == Decorator(d) {
					panic(fmt.Sprintf("dbop: the same Bulkhead is listed twice (decorators %d and %d): "+
						"the inner one would wait for a slot the outer one holds, for ever with a limit of one; list it once",
						i+1, j+1))
				}
			}
		case *aroundTx:
			j := retryAt(i+1, len(flat))
			if j < 0 {
				continue
			}
			inner := false
			for _, e := range flat[j+1:] {
				if _, ok := e.(*aroundTx); ok {
					inner = true
				}
			}
			if !inner {
				panic(fmt.Sprintf("dbop: a transaction scope such as InSavepoint (decorator %d) is listed before WithRetry (decorator %d): "+
					"every attempt would run inside the same savepoint, which cannot undo a failed attempt; list WithRetry first",
					i+1, j+1))
			}
		}
	}
}

// decorate compiles one decorator into a typed closure. The built-in
// decorators are matched by their concrete types so that the closures call
// them statically: the compiler then keeps the per-call state on the stack,
// which is what makes a built pipeline free of allocations on its success
// path. A central switch is the price of that: a decorator known only
// through an interface method would have to box its result, one allocation
// per call, and validate needs to know each decorator's kind anyway. Users
// extend the set with Around and DecoratorFunc.
func decorate[T any](op Op[T], d Decorator, in inner) Op[T] {
	switch d := d.(type) {
	case DecoratorFunc[T]:
		out := d(op)
		if out == nil {
			panic(fmt.Sprintf("dbop: %T returned a nil Op", d))
		}
		return out
	case fallback[T]:
		return d.wrap(op, in.covers)
	case *retrier:
		if d.direct() {
			hs := in.hotSpot
			return func(ctx context.Context) (T, error) {
				var mark uint64
				if hs != nil {
					mark = hs.progress.Load()
				}
				v, err := op(ctx)
				if err == nil {
					return v, nil
				}
				err = d.loop(ctx, in, func(ctx context.Context) error {
					var err error
					v, err = op(ctx)
					return err
				}, err, mark)
				return v, err
			}
		}
		return func(ctx context.Context) (T, error) {
			var v T
			err := d.loop(ctx, in, func(ctx context.Context) error {
				var err error
				v, err = op(ctx)
				return err
			}, nil, 0)
			return v, err
		}
	case *timeout:
		// A scope listed after it runs inside the deadline: the attempt's
		// context is marked as carrying an attempt's deadline, which a
		// savepoint step in a transaction the caller began turns into
		// server limits (resolve.StepLimit).
		mark := len(in.txKeys) > 0
		return func(ctx context.Context) (T, error) {
			var v T
			err := d.run(ctx, mark, func(ctx context.Context) error {
				var err error
				v, err = op(ctx)
				return err
			})
			return v, err
		}
	case classify:
		return func(ctx context.Context) (T, error) {
			v, err := op(ctx)
			if err != nil {
				err = d.apply(err)
			}
			return v, err
		}
	case before:
		return func(ctx context.Context) (T, error) {
			if err := d(ctx); err != nil {
				var zero T
				return zero, err
			}
			return op(ctx)
		}
	case around:
		return func(ctx context.Context) (T, error) {
			var v T
			err := d(ctx, func(ctx context.Context) error {
				var err error
				v, err = op(ctx)
				return err
			})
			return v, err
		}
	case *aroundTx:
		return func(ctx context.Context) (T, error) {
			var v T
			if err := txmark.RetriedErr(ctx, d.key); err != nil {
				// A retry above ran again after err doomed this
				// transaction: nothing may run in it, and its owner, if
				// the context names one, must not commit it.
				if s := txmark.StateOf(ctx); s != nil {
					s.Doom(err)
				}
				return v, err
			}
			err := d.fn(ctx, func(ctx context.Context) error {
				var err error
				v, err = op(ctx)
				return err
			})
			return v, err
		}
	case *bulkhead:
		return func(ctx context.Context) (T, error) {
			if err := d.acquire(ctx); err != nil {
				var zero T
				return zero, err
			}
			defer d.release()
			return op(ctx)
		}
	case *hotSpot:
		if len(in.txKeys) > 0 {
			// A transaction scope listed inside it (InSavepoint) runs
			// each attempt inside a transaction the caller owns, which
			// holds its locks while it waits: it lets them through, as
			// it does inside a transaction (hotSpot.run).
			return op
		}
		return func(ctx context.Context) (T, error) {
			if d.open() {
				v, err := op(ctx)
				if err != nil {
					d.settle(ticket{}, outcomeOf(err, false), 0)
				}
				return v, err
			}
			var v T
			err := d.run(ctx, func(ctx context.Context) error {
				var err error
				v, err = op(ctx)
				return err
			})
			return v, err
		}
	case *shared:
		if len(in.txKeys) > 0 {
			// A transaction scope listed inside it runs each attempt in
			// a transaction the caller owns: a run shared with another
			// caller would run in one caller's transaction only.
			return op
		}
		return func(ctx context.Context) (T, error) {
			v, err := d.run(ctx, func(ctx context.Context) (any, error) { return op(ctx) })
			return sharedValue[T](v), err
		}
	default:
		panic(fmt.Sprintf("dbop: decorator %T cannot decorate an Op[%s]", d, typeName[T]()))
	}
}

func typeName[T any]() string {
	var p *T
	return fmt.Sprintf("%T", p)[1:]
}
