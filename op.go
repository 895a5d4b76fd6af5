package dbop

import "context"

// Op is one logical database step: a function of a context that yields a
// value of type T or an error. An Op is a value; behaviour such as retries,
// timeouts and classification is added with [Op.With], which returns a new Op
// and leaves the original untouched.
//
// An Op built once may be run by many goroutines at once, provided the
// function it wraps is safe for that.
type Op[T any] func(ctx context.Context) (T, error)

// Run runs the operation with ctx. Running a nil Op is a programmer error
// and panics with a message saying so.
func (op Op[T]) Run(ctx context.Context) (T, error) {
	if op == nil {
		panic("dbop: Run called on a nil Op[" + typeName[T]() + "]")
	}
	return op(ctx)
}

// With returns op decorated by ds. The first decorator listed is the
// outermost: op.With(A, B) behaves as A(B(op)). Placement is meaning: a
// [WithTimeout] listed before [WithRetry] bounds the whole operation, one
// listed after it bounds each attempt.
//
// With does all of its work at build time: the returned Op runs the
// decorators without re-assembling them on each call. It panics if op or one
// of ds is nil, or if a typed decorator ([DecoratorFunc]) was written for another
// result type: those are programmer errors. It also panics on a decorator
// placed where it cannot act (a ClassifyBy or a HotSpot before WithRetry,
// an OrDefault after it, a savepoint scope before it), as far as it can see:
// within the decorators of one call, Pipelines expanded. A second call wraps
// an Op whose decorators it no longer sees: op.With(OrDefault(v)).With(
// WithRetry(…)) is not refused, and its retry never runs again. List a
// pipeline in one call, or build it with [Chain].
func (op Op[T]) With(ds ...Decorator) Op[T] {
	if op == nil {
		panic("dbop: With called on a nil Op")
	}
	return decorateAll(op, ds, "With")
}
