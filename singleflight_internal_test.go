package dbop

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
)

// TestSharedRunCarriesNoAttemptValues: a shared run starts from the
// context of the caller that started it, keeping its values but none of
// that caller's attempt: its retry's state, its HotSpot's request, hot spot
// and server deadline. The run serves every caller joined to it and may
// outlive the starter's attempt.
func TestSharedRunCarriesNoAttemptValues(t *testing.T) {
	type userKey struct{}
	ctx := context.WithValue(t.Context(), userKey{}, "span")
	ctx = context.WithValue(ctx, retryStateKey{}, &retryState{attempt: 2})
	ctx = hotlock.WithServerDeadline(ctx, time.Now().Add(time.Second))
	ctx = hotlock.WithSpot(ctx, 7)
	ctx = hotlock.With(ctx, &hotlock.Request{Key: 7})
	var f Flight
	var inRun context.Context
	s := f.Share("k").(*shared)
	// Not inside an attempt (no Spot): the Share shares, and the run's
	// context is checked.
	plain := context.WithValue(context.WithValue(t.Context(), userKey{}, "span"), retryStateKey{}, &retryState{attempt: 2})
	plain = hotlock.WithServerDeadline(plain, time.Now().Add(time.Second))
	if _, err := s.run(plain, func(ctx context.Context) (any, error) { inRun = ctx; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if inRun.Value(userKey{}) != "span" {
		t.Error("the run lost the starter's own values")
	}
	if inRun.Value(retryStateKey{}) != nil {
		t.Error("the run carries the starter's retry state")
	}
	if _, ok := hotlock.ServerDeadline(inRun); ok {
		t.Error("the run carries the starter's server deadline")
	}
	// Inside a HotSpot's attempt the Share runs the Op itself, on the
	// attempt's own context.
	if _, err := s.run(ctx, func(c context.Context) (any, error) { inRun = c; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if inRun != ctx {
		t.Error("inside a HotSpot's attempt the Op ran on another context (shared)")
	}
	masked := flightContext{ctx}
	if masked.Value(retryStateKey{}) != nil || hotlock.From(masked) != nil {
		t.Error("flightContext passes the attempt's retry state or request through")
	}
	if _, ok := hotlock.Spot(masked); ok {
		t.Error("flightContext passes the attempt's hot spot through")
	}
}
