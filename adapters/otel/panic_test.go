package otel_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"

	"github.com/dbop-go/dbop"
)

// TestPanicEndsTheSpans: an observed operation whose attempt panics (the
// panic going on to a recover of the caller's, as net/http's server does)
// ends its attempt and operation spans, as errors, before the panic leaves
// the retry; left open, they are never exported, and the spans the driver
// started under the attempt point at a parent no backend ever receives.
func TestPanicEndsTheSpans(t *testing.T) {
	h := newHarness(t)
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, dbop.Classify(errors.New("busy"), dbop.RetryTransaction)
		}
		panic("boom")
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(h.obs), dbop.Named("panicky")))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the op's own panic value", r)
			}
		}()
		_, _ = op.Run(context.Background())
	}()
	ended := h.spans.Ended()
	if len(ended) != 3 {
		t.Fatalf("%d spans ended (%d started), want 3: the operation and its two attempts", len(ended), len(h.spans.Started()))
	}
	for _, s := range ended[1:] {
		if s.Status().Code != codes.Error {
			t.Errorf("span %s ended with status %v, want Error", s.Name(), s.Status())
		}
	}
	if name := ended[2].Name(); name != "panicky" {
		t.Errorf("last span ended is %q, want the operation's", name)
	}
}
