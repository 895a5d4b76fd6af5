package dbop

import (
	"context"
	"time"
)

// An Observer is told about an operation run by [WithRetry] and each of its
// attempts; attach one with [Observe]. The context an Observer returns from
// OperationStart is the parent of every attempt's context, and the one from
// AttemptStart is the context that attempt runs with and is handed back to
// AttemptEnd, so a tracer can open a span per operation with a child span
// per attempt. Methods are called on the goroutine running the operation and
// must be safe for concurrent use by many operations. With several
// observers attached, each one's AttemptEnd and OperationEnd receive the
// context it returned itself.
//
// Implementations: [SlogObserver] here, and an OpenTelemetry observer in
// github.com/dbop-go/dbop/adapters/otel. With no observer attached nothing
// is reported and nothing is spent.
type Observer interface {
	OperationStart(ctx context.Context, name string) context.Context
	AttemptStart(ctx context.Context, attempt int) context.Context
	AttemptEnd(ctx context.Context, e AttemptEvent)
	OperationEnd(ctx context.Context, e OperationEvent)
}

// AttemptEvent describes the end of one attempt.
type AttemptEvent struct {
	Attempt int     // from 1
	Err     error   // nil when the attempt succeeded
	Verdict Verdict // the verdict attached to Err
	// Retry reports whether the retry decided to run another attempt
	// after Delay. A caller's context that ends during the wait still
	// stops it; the OperationEnd that follows then says so.
	Retry bool
	Delay time.Duration // the wait before it, when Retry is true
}

// OperationEvent describes the end of an operation.
type OperationEvent struct {
	Name     string        // from [Named], or ""
	Attempts int           // attempts made
	Err      error         // nil on success
	Duration time.Duration // from the first attempt's start to the end
}

// multiObserver reports to two observers in order. Each observer's End
// methods receive the context that observer's Start method returned, even
// though the operation runs with the context both built: two tracers that
// keep their spans under the same context key each end their own span.
type multiObserver struct{ first, second Observer }

// firstCtx is the key under which multiObserver keeps first's context.
type firstCtx struct{ m *multiObserver }

func (m *multiObserver) OperationStart(ctx context.Context, name string) context.Context {
	c := m.first.OperationStart(ctx, name)
	return context.WithValue(m.second.OperationStart(c, name), firstCtx{m}, c)
}

func (m *multiObserver) AttemptStart(ctx context.Context, attempt int) context.Context {
	c := m.first.AttemptStart(ctx, attempt)
	return context.WithValue(m.second.AttemptStart(c, attempt), firstCtx{m}, c)
}

func (m *multiObserver) AttemptEnd(ctx context.Context, e AttemptEvent) {
	m.second.AttemptEnd(ctx, e)
	m.first.AttemptEnd(m.own(ctx), e)
}

func (m *multiObserver) OperationEnd(ctx context.Context, e OperationEvent) {
	m.second.OperationEnd(ctx, e)
	m.first.OperationEnd(m.own(ctx), e)
}

func (m *multiObserver) own(ctx context.Context) context.Context {
	if c, ok := ctx.Value(firstCtx{m}).(context.Context); ok {
		return c
	}
	return ctx
}
