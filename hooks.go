package dbop

import "context"

// Before returns a Decorator that calls fn before the decorated Op; an error
// from fn fails the Op without running it, and is classified and retried like
// any other. Listed after [WithRetry], it runs before every attempt:
// dbop-core's pre_attempt, the place to apply per-attempt settings. Between
// a WithRetry and a savepoint scope, fn runs outside the savepoint: it must
// not write to the transaction (the retry trusts the savepoint to have
// undone the whole attempt). Before panics if fn is nil.
func Before(fn func(ctx context.Context) error) Decorator {
	if fn == nil {
		panic("dbop: Before(nil)")
	}
	return before(fn)
}

type before func(ctx context.Context) error

func (before) decorator() {}
