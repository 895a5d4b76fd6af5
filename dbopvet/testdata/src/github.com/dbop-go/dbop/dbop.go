// Package dbop is a stub of github.com/dbop-go/dbop for the analyzer's
// tests: the exact shapes of the API dbopvet knows, with no behaviour.
package dbop

import (
	"context"
	"time"
)

type Op[T any] func(ctx context.Context) (T, error)

func (op Op[T]) Run(ctx context.Context) (T, error) { return op(ctx) }
func (op Op[T]) With(ds ...Decorator) Op[T]         { return op }

type Decorator interface{ decorator() }

type DecoratorFunc[T any] func(Op[T]) Op[T]

func (DecoratorFunc[T]) decorator() {}

type stub struct{}

func (stub) decorator() {}

func Chain(ds ...Decorator) Decorator { return stub{} }
func Around(fn func(ctx context.Context, next func(context.Context) error) error) Decorator {
	return stub{}
}
func AroundTx(tx any, fn func(ctx context.Context, next func(context.Context) error) error) Decorator {
	return stub{}
}
func Before(fn func(ctx context.Context) error) Decorator { return stub{} }
func Bulkhead(n int64) Decorator                          { return stub{} }
func ClassifyBy(cs ...Classifier) Decorator               { return stub{} }
func WithTimeout(d time.Duration) Decorator               { return stub{} }
func WithRetry(b Backoff, opts ...RetryOption) Decorator  { return stub{} }

type Backoff interface {
	Delay(n int, prev time.Duration, random uint64) time.Duration
}

func Constant(d time.Duration) Backoff            { return nil }
func Exponential(base, max time.Duration) Backoff { return nil }
func FullJitter(b Backoff) Backoff                { return b }

type retrier struct{}

type RetryOption func(*retrier)

func Idempotent() RetryOption                { return nil }
func MaxAttempts(n int) RetryOption          { return nil }
func MaxElapsed(d time.Duration) RetryOption { return nil }
func Named(name string) RetryOption          { return nil }

type Verdict uint8

const (
	Unclassified Verdict = iota
	NotRetryable
	RetryStatement
	RetryTransaction
	Ambiguous
)

type Classifier func(error) Verdict

func Classify(err error, v Verdict) error { return err }

func WithinTx(ctx context.Context) context.Context { return ctx }

func Then[A, B any](op Op[A], f func(ctx context.Context, a A) (B, error)) Op[B] { return nil }

func All[T any](limit int, ops ...Op[T]) Op[[]T] { return nil }

type fallbackConfig struct{}

type FallbackOption func(*fallbackConfig)

func OrDefault[T any](v T, opts ...FallbackOption) Decorator { return stub{} }
