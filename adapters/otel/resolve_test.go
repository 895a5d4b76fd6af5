package otel_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	dbopotel "github.com/dbop-go/dbop/adapters/otel"
	"github.com/dbop-go/dbop/scopes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// lostTx is a transaction whose first COMMIT answer is lost, and which
// resolves it as resolution.
type lostTx struct {
	commits    *int
	resolution scopes.Resolution
}

func (t lostTx) Commit(context.Context) error {
	if *t.commits++; *t.commits == 1 {
		return errors.New("connection lost after COMMIT was sent")
	}
	return nil
}

func (lostTx) Rollback(context.Context) error { return nil }

func (t lostTx) ResolveCommit(context.Context, error) (scopes.Resolution, error) {
	if t.resolution == scopes.Unresolved {
		return scopes.Unresolved, errors.New("server unreachable")
	}
	return t.resolution, nil
}

// A lost COMMIT answer that ResolveCommit resolved appears as a
// dbop.commit_resolved event on the attempt span, with the resolution and
// its duration, next to a hook the caller set with
// scopes.OnCommitResolved, which still runs.
func TestResolvedCommitEvent(t *testing.T) {
	for _, res := range []scopes.Resolution{scopes.Committed, scopes.Aborted, scopes.Unresolved} {
		t.Run(res.String(), func(t *testing.T) {
			h := newHarness(t)
			var commits, callerSaw int
			begin := func(context.Context, scopes.BeginOptions) (lostTx, error) {
				return lostTx{&commits, res}, nil
			}
			op := scopes.InTx(begin, func(context.Context, lostTx) (int, error) { return 1, nil }, scopes.ResolveCommit())
			ctx := scopes.OnCommitResolved(context.Background(), func(context.Context, scopes.ResolvedCommit) { callerSaw++ })
			_, _ = op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), dbop.Observe(h.obs))).Run(ctx)
			if callerSaw != 1 {
				t.Errorf("the caller's OnCommitResolved ran %d times, want 1", callerSaw)
			}
			var events []sdktrace.Event
			for _, s := range h.spans.Ended() {
				for _, e := range s.Events() {
					if e.Name == dbopotel.CommitResolvedEvent {
						if s.Name() != "dbop.attempt" {
							t.Errorf("event on span %q, want the attempt span", s.Name())
						}
						events = append(events, e)
					}
				}
			}
			if len(events) != 1 {
				t.Fatalf("%d %s events, want 1", len(events), dbopotel.CommitResolvedEvent)
			}
			attrs := map[string]any{}
			for _, a := range events[0].Attributes {
				attrs[string(a.Key)] = a.Value.AsInterface()
			}
			if attrs[string(dbopotel.ResolutionKey)] != res.String() {
				t.Errorf("%s = %v, want %q", dbopotel.ResolutionKey, attrs[string(dbopotel.ResolutionKey)], res.String())
			}
			if _, ok := attrs[string(dbopotel.ResolutionDurationKey)].(float64); !ok {
				t.Errorf("%s missing: %v", dbopotel.ResolutionDurationKey, attrs)
			}
			if _, ok := attrs["exception.message"]; ok != (res == scopes.Unresolved) {
				t.Errorf("exception.message present = %v, want it only when unresolved: %v", ok, attrs)
			}
		})
	}
}
