package dbop

import (
	"context"
	"fmt"
)

// A Decorator adds behaviour to an [Op] of any result type. The built-in
// decorators ([WithRetry], [WithTimeout], [ClassifyBy], [Before], [After],
// [Bulkhead], [Flight.Share], [Around], [Chain]) are plain values that need
// no type arguments; a decorator for one result type only is a [Func].
//
// Decorators are immutable once built and safe for concurrent use.
type Decorator interface {
	// decorator is unexported so that every Decorator is one the With
	// machinery knows how to compile into a typed closure at build time.
	decorator()
}

// Func is a typed decorator: a function from an Op[T] to an Op[T]. It is how
// decorators that need the result type ([OrDefault], [Fallback]) and
// user-written typed decorators take part in [Op.With]. Applying a Func[T] to
// an Op of another result type panics at build time.
type Func[T any] func(Op[T]) Op[T]

func (Func[T]) decorator() {}

// Pipeline is a reusable sequence of decorators built by [Chain]. It is
// itself a Decorator and is not tied to a result type, so one Pipeline can be
// stored in a package variable and applied to an Op[int] and an Op[[]Order]
// alike.
type Pipeline []Decorator

func (Pipeline) decorator() {}

// Chain returns a Pipeline of ds. As with [Op.With], the first listed is the
// outermost: op.With(Chain(A, B), C) behaves as A(B(C(op))). Chain panics if
// one of ds is nil.
func Chain(ds ...Decorator) Pipeline {
	for i, d := range ds {
		if d == nil {
			panic(fmt.Sprintf("dbop: decorator %d of %d passed to Chain is nil", i+1, len(ds)))
		}
	}
	return append(Pipeline(nil), ds...)
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

// decorateAll applies ds to op, the first listed outermost.
func decorateAll[T any](op Op[T], ds []Decorator, caller string) Op[T] {
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i] == nil {
			panic(fmt.Sprintf("dbop: decorator %d of %d passed to %s is nil", i+1, len(ds), caller))
		}
		op = decorate(op, ds[i])
	}
	return op
}

// decorate compiles one decorator into a typed closure. The built-in
// decorators are matched by their concrete types so that the closures call
// them statically: the compiler then keeps the per-call state on the stack,
// which is what makes a built pipeline free of allocations on its success
// path.
func decorate[T any](op Op[T], d Decorator) Op[T] {
	switch d := d.(type) {
	case Pipeline:
		return decorateAll(op, d, "Chain")
	case Func[T]:
		out := d(op)
		if out == nil {
			panic(fmt.Sprintf("dbop: %T returned a nil Op", d))
		}
		return out
	case *retrier:
		if d.direct() {
			return func(ctx context.Context) (T, error) {
				v, err := op(ctx)
				if err == nil {
					return v, nil
				}
				err = d.loop(ctx, func(ctx context.Context) error {
					var err error
					v, err = op(ctx)
					return err
				}, err)
				return v, err
			}
		}
		return func(ctx context.Context) (T, error) {
			var v T
			err := d.run(ctx, func(ctx context.Context) error {
				var err error
				v, err = op(ctx)
				return err
			})
			return v, err
		}
	case *timeout:
		return func(ctx context.Context) (T, error) {
			var v T
			err := d.run(ctx, func(ctx context.Context) error {
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
	case after:
		return func(ctx context.Context) (T, error) {
			v, err := op(ctx)
			d(ctx, err)
			return v, err
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
	case *bulkhead:
		return func(ctx context.Context) (T, error) {
			if err := d.acquire(ctx); err != nil {
				var zero T
				return zero, err
			}
			defer d.release()
			return op(ctx)
		}
	case *shared:
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
