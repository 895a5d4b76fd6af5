package dbop

import "context"

// OrDefault returns a typed Decorator that turns any error of the decorated
// Op into the value v and a nil error: dbop-core's raises=False, default=v.
// Listed before [WithRetry], it applies once retries are over. T is inferred
// from v: dbop.OrDefault(0) decorates an Op[int].
func OrDefault[T any](v T) Func[T] {
	return func(op Op[T]) Op[T] {
		return func(ctx context.Context) (T, error) {
			got, err := op(ctx)
			if err != nil {
				return v, nil
			}
			return got, nil
		}
	}
}

// Fallback returns a typed Decorator that calls fn with the decorated Op's
// error, when there is one, and returns what fn returns: a cached value, a
// read from a replica, or a translated error. Fallback panics if fn is nil.
func Fallback[T any](fn func(ctx context.Context, err error) (T, error)) Func[T] {
	if fn == nil {
		panic("dbop: Fallback(nil)")
	}
	return func(op Op[T]) Op[T] {
		return func(ctx context.Context) (T, error) {
			got, err := op(ctx)
			if err != nil {
				return fn(ctx, err)
			}
			return got, nil
		}
	}
}
