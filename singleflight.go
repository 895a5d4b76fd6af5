package dbop

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dbop-go/dbop/internal/attempt"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// A Flight collapses identical concurrent reads: while one run of an Op
// shared through it under a key is in flight, other runs under the same key
// wait for it and receive its value and error instead of querying the
// database again. Once the shared run returns, or every caller waiting for
// it has gone, the key is free: a Flight remembers nothing, it is not a
// cache.
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
	mu    sync.Mutex
	calls map[string]*flightCall // the runs in flight, by key
}

// flightCall is one shared run and the callers waiting for it.
type flightCall struct {
	done   chan struct{} // closed once val and err are set
	val    any
	err    error
	cancel context.CancelCauseFunc // ends the run's context

	waiters int // callers waiting for done; guarded by the Flight's mu
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
// ([context.WithoutCancel]), and so sees the first caller's context values
// (a trace span, for instance) — but not those of that caller's attempt
// (its retry's state, a HotSpot's admission and bounds), since the run
// serves every caller joined to it. When every caller waiting for the run has
// gone, nobody wants its result: its context is cancelled, and the key is
// forgotten at once, so the next caller starts a fresh run instead of
// joining one that nobody waits for. Nothing the run started outlives its
// last caller by more than the time the run takes to return once
// cancelled. A caller that waits forever keeps the run going: list a
// [WithTimeout] after Share to bound it:
//
//	op.With(users.Share(key), dbop.WithTimeout(5*time.Second), dbop.WithRetry(backoff))
//
// Here the retry, listed inside the sharing, is shared as a whole. A panic
// in the shared run cannot be recovered by any caller and ends the program.
// Inside the shared run of a key, the same Flight and key run as they are
// (the Share listed twice, or an Op that runs another shared under its
// key): joining the run would wait for itself. So does every Share inside
// a [HotSpot]'s attempt: a run in flight may be waiting for the slot the
// attempt holds.
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

// errAbandoned is the cause of a shared run's context once every caller
// waiting for it has gone.
var errAbandoned = errors.New("dbop: every caller sharing the run has gone")

// errGoexit is what the callers of a shared run receive when it called
// runtime.Goexit instead of returning.
var errGoexit = errors.New("dbop: the shared run exited without returning")

// run runs call, or joins the run of call in flight under the same key.
func (s *shared) run(ctx context.Context, call func(context.Context) (any, error)) (any, error) {
	key, ok := s.key, true
	if s.keyOf != nil {
		key, ok = s.keyOf(ctx)
	}
	if _, inSpot := hotlock.Spot(ctx); !ok || isWithinTx(ctx) || inSpot || inFlightRun(ctx, s.flight, key) {
		// Inside the shared run of the same key (the same Share listed
		// twice, or an Op that runs another sharing its key): joining it
		// would wait for itself for ever. Inside a HotSpot's attempt: the
		// run in flight may be waiting for the slot this attempt holds.
		return call(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f := s.flight
	f.mu.Lock()
	c := f.calls[key]
	if c == nil {
		runCtx, cancel := context.WithCancelCause(flightContext{context.WithoutCancel(ctx)})
		runCtx = context.WithValue(runCtx, flightRunKey{}, &flightRun{flight: f, key: key, outer: flightRunOf(ctx)})
		c = &flightCall{done: make(chan struct{}), cancel: cancel}
		if f.calls == nil {
			f.calls = make(map[string]*flightCall)
		}
		f.calls[key] = c
		go f.do(runCtx, key, c, call)
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		f.leave(key, c)
		return nil, ctx.Err()
	}
}

// flightContext is the context a shared run starts from: the values of
// the context of the caller that started it, minus those that belong to
// that caller's attempt (package attempt: its retry's state, its
// HotSpot's request and bounds, the connection mysqldb's Failover pinned
// for it) — which would otherwise be read by the run on another goroutine
// while the caller's retry goes on, and would bound, admit or pin the run,
// which serves every caller joined to it, as that one caller's attempt.
type flightContext struct{ context.Context }

func (c flightContext) Value(k any) any {
	if _, ok := k.(attempt.Scoped); ok {
		return nil
	}
	return c.Context.Value(k)
}

// flightRun marks the context of a shared run: the Flight and key it runs
// under, and the run it runs inside, if any.
type flightRun struct {
	flight *Flight
	key    string
	outer  *flightRun
}

type flightRunKey struct{}

func flightRunOf(ctx context.Context) *flightRun {
	r, _ := ctx.Value(flightRunKey{}).(*flightRun)
	return r
}

// inFlightRun reports whether ctx is the context of a run shared under key
// on f, or of work inside one.
func inFlightRun(ctx context.Context, f *Flight, key string) bool {
	for r := flightRunOf(ctx); r != nil; r = r.outer {
		if r.flight == f && r.key == key {
			return true
		}
	}
	return false
}

// do runs the shared call c under key and hands its outcome to the
// callers waiting for it.
func (f *Flight) do(ctx context.Context, key string, c *flightCall, call func(context.Context) (any, error)) {
	returned := false
	defer func() {
		if !returned {
			// runtime.Goexit, or a panic, which goes on and ends the
			// program: either way the callers must not wait forever.
			c.err = errGoexit
		}
		f.mu.Lock()
		f.forget(key, c)
		f.mu.Unlock()
		c.cancel(nil)
		close(c.done)
	}()
	c.val, c.err = call(ctx)
	returned = true
}

// leave records that a caller waiting for c has gone. The last one to go
// cancels the run and frees the key, so that the next caller starts afresh.
func (f *Flight) leave(key string, c *flightCall) {
	f.mu.Lock()
	c.waiters--
	last := c.waiters == 0
	if last {
		f.forget(key, c)
	}
	f.mu.Unlock()
	if last {
		c.cancel(errAbandoned)
	}
}

// forget frees key if c is still the run in flight under it. f.mu is held.
func (f *Flight) forget(key string, c *flightCall) {
	if f.calls[key] == c {
		delete(f.calls, key)
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
