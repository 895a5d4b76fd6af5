package dbop

import (
	"context"
	"fmt"

	"golang.org/x/sync/singleflight"
)

// A Flight collapses identical concurrent reads: while one run of an Op
// shared through it under a key is in flight, other runs under the same key
// wait for it and receive its value and error instead of querying the
// database again. Once the shared run returns, the key is free: a Flight
// remembers nothing, it is not a cache.
//
// The Flight is what the sharing callers have in common, so it must outlive
// them: keep one per kind of read, typically in a struct field or package
// variable next to the pool, and build decorators from it with
// [Flight.Share] and [Flight.ShareBy]. Those decorators need no type
// argument; every Op sharing a key must have the same result type.
//
// The zero value is ready to use. A Flight is safe for concurrent use and
// must not be copied after first use.
//
// Only share reads. A write shared by N callers is applied once and reported
// N times, so each caller believes its own write happened. Runs whose
// context is marked [WithinTx] are never shared: a read inside a transaction
// must see that transaction's own writes, not another caller's snapshot.
//
// All callers receive the same value: when it is a slice, map or pointer,
// they share what it refers to and must treat it as read-only.
type Flight struct {
	group singleflight.Group
}

// Share returns a Decorator that shares runs of the decorated Op through f
// under key. It suits an Op built per request, whose parameters are captured
// in the Op and so are part of the key:
//
//	user, err := getUser(id).With(users.Share("user:"+id), resilient).Run(ctx)
//
// or a parameterless Op stored once, under a fixed key.
//
// Each caller waits until the shared run returns or its own context ends;
// in the latter case it returns its context's error and the others go on
// waiting. So that one impatient caller cannot fail the others, the shared
// run inherits no caller's cancellation: it runs with the context of the
// caller that started it, minus that caller's cancellation and deadline
// ([context.WithoutCancel]). The price is that the shared run goes on after
// every waiter has left, and that it sees the first caller's context values
// (a trace span, for instance). List a [WithTimeout] after Share to bound
// it:
//
//	op.With(users.Share(key), dbop.WithTimeout(5*time.Second), dbop.WithRetry(backoff))
//
// Here the retry, listed inside the sharing, is shared as a whole. A panic
// in the shared run cannot be recovered by any caller and ends the program.
//
// Sharing costs a goroutine and a handful of small allocations per run (the
// value is boxed in an interface, since a Flight serves every result type):
// it pays where it saves a round trip to the database, not on reads that
// never overlap.
func (f *Flight) Share(key string) Decorator {
	if f == nil {
		panic("dbop: Share called on a nil *Flight")
	}
	return &shared{flight: f, key: key}
}

// ShareBy is [Flight.Share] with the key taken from each run's context, for
// an Op stored once whose parameters come from the context (a tenant, for
// instance). When key reports false the run is not shared. ShareBy panics
// if key is nil.
//
// Share and ShareBy panic when called on a nil *Flight. Running Ops of
// different result types under one key of a Flight is a programmer error
// and panics in the caller that receives a value of the wrong type.
func (f *Flight) ShareBy(key func(ctx context.Context) (string, bool)) Decorator {
	if f == nil {
		panic("dbop: ShareBy called on a nil *Flight")
	}
	if key == nil {
		panic("dbop: Flight.ShareBy(nil)")
	}
	return &shared{flight: f, keyOf: key}
}

// shared is the Decorator built by Flight.Share and Flight.ShareBy.
type shared struct {
	flight *Flight
	key    string
	keyOf  func(context.Context) (string, bool) // nil for a fixed key
}

func (*shared) decorator() {}

// run runs call, or joins the run of call in flight under the same key.
func (s *shared) run(ctx context.Context, call func(context.Context) (any, error)) (any, error) {
	key, ok := s.key, true
	if s.keyOf != nil {
		key, ok = s.keyOf(ctx)
	}
	if !ok || IsWithinTx(ctx) {
		return call(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	detached := context.WithoutCancel(ctx)
	ch := s.flight.group.DoChan(key, func() (any, error) { return call(detached) })
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sharedValue returns v, a value shared through a Flight, as a T.
func sharedValue[T any](v any) T {
	t, ok := v.(T)
	if !ok && v != nil {
		panic(fmt.Sprintf("dbop: a Flight shared a %T with an Op[%s]: Ops sharing a key must have the same result type", v, typeName[T]()))
	}
	return t
}
