package otel_test

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop"
	dbopotel "github.com/dbop-go/dbop/adapters/otel"
	"github.com/dbop-go/dbop/scopes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// One resolution is one dbop.commit_resolved event, on the span the
// transaction ran under, however many observed retries are around it: a
// step retried by the same pipeline as the whole (a package-level chain
// with Observe, used for a Then and for its steps), or a retry observed
// twice. Each attempt span's hook used to add the event again, to that
// same innermost span, so one lost COMMIT was counted as two or three.
func TestResolvedCommitEventOnceWhenNested(t *testing.T) {
	h := newHarness(t)
	other := dbopotel.NewObserver(dbopotel.WithTracerProvider(h.tp))
	var commits int
	begin := func(context.Context, scopes.BeginOptions) (lostTx, error) {
		return lostTx{&commits, scopes.Committed}, nil
	}
	step := scopes.InTx(begin, func(context.Context, lostTx) (int, error) { return 1, nil }, scopes.ResolveCommit())
	retried := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), dbop.Observe(h.obs))
	whole := dbop.Then(step.With(retried), func(_ context.Context, v int) (int, error) { return v, nil })
	if _, err := whole.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), dbop.Observe(h.obs), dbop.Observe(other))).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, s := range h.spans.Ended() {
		for _, e := range s.Events() {
			if e.Name == dbopotel.CommitResolvedEvent {
				events = append(events, spanPath(h.spans, s))
			}
		}
	}
	if len(events) != 1 {
		t.Errorf("%d %s events (on %q), want 1", len(events), dbopotel.CommitResolvedEvent, events)
	}
}

// spanPath names s by its ancestors' names, outermost first.
func spanPath(rec *tracetest.SpanRecorder, s sdktrace.ReadOnlySpan) string {
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, e := range rec.Ended() {
		byID[e.SpanContext().SpanID().String()] = e
	}
	path := s.Name()
	for p, ok := byID[s.Parent().SpanID().String()]; ok; p, ok = byID[p.Parent().SpanID().String()] {
		path = p.Name() + "/" + path
	}
	return path
}
