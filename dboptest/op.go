package dboptest

import (
	"context"
	"sync/atomic"

	"github.com/dbop-go/dbop"
)

// Scripted is a fake operation that fails with a scripted list of errors and
// then succeeds. Build one with [Script]; it is safe for concurrent use.
type Scripted[T any] struct {
	value T
	errs  []error
	calls atomic.Int64
}

// Script returns a fake operation whose n-th call returns the n-th of errs,
// and whose calls after the last of errs return value and a nil error. A nil
// entry in errs is a call that succeeds, so Script(v, nil, err) succeeds,
// fails once, then succeeds for good. A failing call returns the zero T.
func Script[T any](value T, errs ...error) *Scripted[T] {
	return &Scripted[T]{value: value, errs: append([]error(nil), errs...)}
}

// Op returns the scripted operation. Every Op returned by one Scripted
// shares its script and its call count.
func (s *Scripted[T]) Op() dbop.Op[T] {
	return func(context.Context) (T, error) {
		n := s.calls.Add(1)
		if n <= int64(len(s.errs)) {
			if err := s.errs[n-1]; err != nil {
				var zero T
				return zero, err
			}
		}
		return s.value, nil
	}
}

// Calls returns how many times the operation has been called.
func (s *Scripted[T]) Calls() int { return int(s.calls.Load()) }
