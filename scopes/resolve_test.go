package scopes_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
)

// resolvingTx is a fake transaction whose COMMIT fails with commitErr each
// time until the list runs out, and which answers ResolveCommit with the
// next of resolutions.
type resolvingTx struct {
	commits     *[]error
	resolutions *[]scopes.Resolution
	resolveErr  error
	resolved    *int
	commitCtx   *context.Context
	resolveCtx  *context.Context
}

func (t resolvingTx) Commit(ctx context.Context) error {
	*t.commitCtx = ctx
	if len(*t.commits) == 0 {
		return nil
	}
	err := (*t.commits)[0]
	*t.commits = (*t.commits)[1:]
	return err
}

func (t resolvingTx) Rollback(context.Context) error { return nil }

func (t resolvingTx) ResolveCommit(ctx context.Context, _ error) (scopes.Resolution, error) {
	*t.resolveCtx = ctx
	*t.resolved++
	r := (*t.resolutions)[0]
	*t.resolutions = (*t.resolutions)[1:]
	return r, t.resolveErr
}

// resolutionLog records what OnCommitResolved reports.
type resolutionLog struct {
	mu  sync.Mutex
	got []scopes.ResolvedCommit
}

func (l *resolutionLog) record(_ context.Context, r scopes.ResolvedCommit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r)
}

// ResolveCommit turns each resolution of a lost COMMIT answer into what
// the caller is told: committed and not-written return fn's value,
// aborted is retried like a deadlock without Idempotent, unresolved stays
// ambiguous with the reason attached. Every resolution is reported to
// OnCommitResolved's function; the failed ones are in the attempt's error
// too, which an Observer sees.
func TestResolveCommitOutcomes(t *testing.T) {
	errLost := errors.New("connection lost after COMMIT was sent")
	errUnreachable := errors.New("dial: connection refused")
	tests := []struct {
		name        string
		resolutions []scopes.Resolution
		resolveErr  error
		wantValue   int
		wantRuns    int
		check       func(t *testing.T, err error)
	}{
		{
			name:        "committed",
			resolutions: []scopes.Resolution{scopes.Committed},
			wantValue:   7, wantRuns: 1,
		},
		{
			name:        "not written",
			resolutions: []scopes.Resolution{scopes.NotWritten},
			wantValue:   7, wantRuns: 1,
		},
		{
			name:        "aborted is retried without Idempotent",
			resolutions: []scopes.Resolution{scopes.Aborted},
			wantValue:   7, wantRuns: 2,
		},
		{
			name:        "unresolved stays ambiguous",
			resolutions: []scopes.Resolution{scopes.Unresolved},
			resolveErr:  errUnreachable,
			wantRuns:    1,
			check: func(t *testing.T, err error) {
				var ace *scopes.AmbiguousCommitError
				if !errors.As(err, &ace) || !errors.Is(ace.Resolve, errUnreachable) {
					t.Fatalf("error %v is not an *AmbiguousCommitError with the resolver's reason", err)
				}
				if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
					t.Errorf("verdict = %v, want ambiguous", v)
				}
				if !errors.Is(err, errLost) {
					t.Errorf("error %v does not reach the COMMIT error", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			commits := []error{errLost}
			resolutions := tt.resolutions
			var resolved, runs int
			var commitCtx, resolveCtx context.Context
			begin := func(context.Context, scopes.BeginOptions) (resolvingTx, error) {
				return resolvingTx{&commits, &resolutions, tt.resolveErr, &resolved, &commitCtx, &resolveCtx}, nil
			}
			op := scopes.InTx(begin, func(context.Context, resolvingTx) (int, error) {
				runs++
				return 7, nil
			}, scopes.ResolveCommit())

			var log resolutionLog
			var attempts []dbop.AttemptEvent
			ctx := scopes.OnCommitResolved(t.Context(), log.record)
			got, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
				dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { attempts = append(attempts, e) }),
			)).Run(ctx)

			if tt.check != nil {
				tt.check(t, err)
			} else if err != nil || got != tt.wantValue {
				t.Fatalf("Run = %v, %v; want %v, nil", got, err, tt.wantValue)
			}
			if runs != tt.wantRuns || resolved != 1 {
				t.Errorf("fn ran %d times, resolved %d times; want %d and 1", runs, resolved, tt.wantRuns)
			}
			if len(log.got) != 1 || log.got[0].Resolution != tt.resolutions[0] || !errors.Is(log.got[0].CommitErr, errLost) {
				t.Fatalf("OnCommitResolved saw %+v, want one %v of the lost COMMIT", log.got, tt.resolutions[0])
			}
			if (log.got[0].Err != nil) != (tt.resolutions[0] == scopes.Unresolved) {
				t.Errorf("reported Err = %v; want one only when unresolved", log.got[0].Err)
			}
			if tt.resolutions[0] == scopes.Aborted {
				if len(attempts) != 1 || !errors.Is(attempts[0].Err, scopes.ErrCommitAborted) ||
					attempts[0].Verdict != dbop.RetryTransaction || !errors.Is(attempts[0].Err, errLost) {
					t.Errorf("retried attempts %+v, want one aborted commit, retry-transaction, reaching the COMMIT error", attempts)
				}
				var ace *scopes.AbortedCommitError
				if errors.As(attempts[0].Err, &ace); ace == nil || ace.ErrorType() != "dbop.commit_aborted" {
					t.Errorf("attempt error %v: no *AbortedCommitError named dbop.commit_aborted", attempts[0].Err)
				}
			}
			if resolveCtx.Err() == nil {
				t.Error("the resolver's context was not cancelled once resolution returned")
			}
			if _, ok := resolveCtx.Deadline(); !ok {
				t.Error("the resolver's context has no deadline: resolution is unbounded")
			}
		})
	}
}

// Without ResolveCommit, a CommitResolver is never asked; a COMMIT error
// judged not ambiguous is never resolved either.
func TestResolveCommitOnlyWhenAskedAndAmbiguous(t *testing.T) {
	errLost := errors.New("lost")
	tests := []struct {
		name    string
		opts    []scopes.TxOption
		verdict dbop.Verdict
	}{
		{name: "option not given", verdict: dbop.Ambiguous},
		{name: "not ambiguous", opts: []scopes.TxOption{scopes.ResolveCommit(),
			scopes.CommitOutcome(func(error) dbop.Verdict { return dbop.RetryTransaction })}, verdict: dbop.RetryTransaction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			commits := []error{errLost}
			resolutions := []scopes.Resolution{scopes.Committed}
			var resolved int
			var commitCtx, resolveCtx context.Context
			begin := func(context.Context, scopes.BeginOptions) (resolvingTx, error) {
				return resolvingTx{&commits, &resolutions, nil, &resolved, &commitCtx, &resolveCtx}, nil
			}
			_, err := scopes.InTx(begin, func(context.Context, resolvingTx) (int, error) { return 1, nil }, tt.opts...).Run(t.Context())
			if resolved != 0 {
				t.Errorf("resolved %d times, want 0", resolved)
			}
			if v := dbop.VerdictOf(err); v != tt.verdict {
				t.Errorf("verdict = %v, want %v", v, tt.verdict)
			}
		})
	}
}

// commitProbe is a fake transaction whose COMMIT cancels the caller's
// context, as a deadline expiring while COMMIT is on the wire would, and
// records what its own context says then.
type commitProbe struct {
	cancelCaller    context.CancelFunc
	errDuringCommit *error
	value           *any
	deadline        *time.Time
}

type probeKey struct{}

func (p commitProbe) Commit(ctx context.Context) error {
	p.cancelCaller()
	*p.errDuringCommit = ctx.Err()
	*p.value = ctx.Value(probeKey{})
	*p.deadline, _ = ctx.Deadline()
	return nil
}

func (commitProbe) Rollback(context.Context) error { return nil }

// COMMIT runs with the caller's values but not its cancellation, and with
// a deadline of its own: a caller's deadline that expires while COMMIT is
// on the wire must not make the driver cut the connection.
func TestInTxCommitsWithoutTheCallersCancellation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), probeKey{}, "v"), time.Hour)
	defer cancel()
	var errDuring error
	var value any
	var deadline time.Time
	begin := func(context.Context, scopes.BeginOptions) (commitProbe, error) {
		return commitProbe{cancel, &errDuring, &value, &deadline}, nil
	}
	op := scopes.InTx(begin, func(context.Context, commitProbe) (int, error) { return 1, nil }, scopes.RollbackTimeout(time.Minute))
	if _, err := op.Run(ctx); err != nil {
		t.Fatalf("Run = %v; want the commit to succeed although the caller's context ended during it", err)
	}
	if errDuring != nil {
		t.Errorf("the caller's cancellation reached the COMMIT's context: %v", errDuring)
	}
	if value != "v" {
		t.Error("the COMMIT's context lost the caller's values")
	}
	if deadline.IsZero() || time.Until(deadline) > time.Minute {
		t.Errorf("the COMMIT's deadline is %v, want one within the rollback timeout", deadline)
	}
}

func TestResolutionString(t *testing.T) {
	for r, want := range map[scopes.Resolution]string{
		scopes.Unresolved: "unresolved", scopes.Committed: "committed", scopes.NotWritten: "not-written",
		scopes.Aborted: "aborted", scopes.Resolution(9): "Resolution(9)",
	} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint8(r), got, want)
		}
	}
}

// OnCommitResolved on a context that has a function already adds the new
// one after it: an observer's hook does not displace the caller's.
func TestOnCommitResolvedChains(t *testing.T) {
	commits := []error{errors.New("lost")}
	resolutions := []scopes.Resolution{scopes.Committed}
	var resolved int
	var commitCtx, resolveCtx context.Context
	begin := func(context.Context, scopes.BeginOptions) (resolvingTx, error) {
		return resolvingTx{&commits, &resolutions, nil, &resolved, &commitCtx, &resolveCtx}, nil
	}
	var order []string
	ctx := scopes.OnCommitResolved(t.Context(), func(_ context.Context, r scopes.ResolvedCommit) {
		order = append(order, "outer "+r.Resolution.String())
	})
	ctx = scopes.OnCommitResolved(ctx, func(_ context.Context, r scopes.ResolvedCommit) {
		order = append(order, "inner "+r.Resolution.String())
	})
	if _, err := scopes.InTx(begin, func(context.Context, resolvingTx) (int, error) { return 1, nil }, scopes.ResolveCommit()).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"outer committed", "inner committed"}; !slices.Equal(order, want) {
		t.Errorf("hooks ran %q, want %q", order, want)
	}
}
