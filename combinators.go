package dbop

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop/internal/txmark"
	"golang.org/x/sync/errgroup"
)

// Then returns an Op that runs op and, if it succeeds, f with the same
// context and op's value: a sequence of two steps where the second needs
// the first's result. When op fails, f is not called and its error is
// returned as it is.
//
// f has the shape of an Op with one argument, rather than returning an Op to
// run, for three reasons: a repository method such as
// func (r *Repo) OrdersOf(ctx context.Context, u User) ([]Order, error) fits
// as it is (dbop.Then(getUser, repo.OrdersOf)); the context travels to the
// second step without being captured; and nothing is built per call but the
// count of the transactions its steps commit (one allocation). A second step
// that is itself a decorated Op is run from f: return
// ordersOf(u).With(p).Run(ctx).
//
// A second step that cannot fail converts the value: Then(getUser,
// func(_ context.Context, u User) (string, error) { return u.Name, nil }).
//
// Decorators applied to the result wrap both steps: a [WithRetry] around a
// Then runs the whole sequence again, as long as no transaction of its steps
// (a transaction scope's: the adapters' InTx and Do) has committed. Once one
// has, running the sequence again would apply it twice: the error Then
// returns says so, whatever its verdict (a [ClassifyBy] or [WithTimeout]
// between the Then and the retry may make it one the retry acts on), and
// the retry returns it with [ErrAlreadyCommitted] instead, unless it is
// [Idempotent]. errors.Is and errors.As reach the step's error through the
// mark; when no step had taken effect the error is returned as it is. A read-only transaction does not
// count (the adapters' ReadOnly; pgxdb's, a pgx access mode, counts) — but
// PostgreSQL sends a NOTIFY even from a READ ONLY transaction, at its
// COMMIT: do not notify from a read-only step that a retry may run again. An [OrDefault] or [Fallback] passes such an error through unless
// it has [AcceptAmbiguous]. Inside a transaction, a step in a savepoint
// scope (the adapters' InSavepoint) whose savepoint was released counts the
// same way: its work is in the transaction, and a retry there around the
// Then does not run it again — unless a savepoint or transaction scope
// between the step and the retry rolled back, which undoes the release, and
// then the retry runs it all again (so step.With(WithRetry(…),
// InSavepoint(tx)) around a Then of savepoint steps retries the whole, so
// does a retry around the transaction's owner once it rolled back, and a
// fallback there gives its default). A savepoint step that
// only reads counts too: mark that retry Idempotent. Work the scopes do not
// see is not counted: a transaction or savepoint your own code begins and
// ends inside a step. Inside a transaction, a first step that succeeded
// counts too, whatever it ran: its statements are in the transaction. And
// inside a transaction a retry around a Then runs
// it again only when a savepoint scope listed inside that retry, in the
// same pipeline, rolled the whole Then back (invariant 2): a step's own
// savepoint undoes that step only, and the steps before it stand. To retry
// one step alone, decorate that step: step.With(WithRetry(…),
// InSavepoint(tx)). Then
// panics if op or f is nil.
func Then[A, B any](op Op[A], f func(ctx context.Context, a A) (B, error)) Op[B] {
	if op == nil {
		panic("dbop: Then: op is nil")
	}
	if f == nil {
		panic("dbop: Then: f is nil")
	}
	return func(ctx context.Context) (B, error) {
		ctx, commits := txmark.WithCommits(ctx)
		a, err := op(ctx)
		if err != nil {
			var zero B
			return zero, markCommitted(err, commits)
		}
		if isWithinTx(ctx) {
			// Inside a transaction the first step's statements stand,
			// whether or not a scope counted them: a retry there must not
			// run them again after f fails.
			commits.TookEffect()
		}
		b, err := f(ctx, a)
		if err != nil {
			return b, markCommitted(err, commits)
		}
		return b, nil
	}
}

// All returns an Op that runs ops concurrently, each on its own goroutine,
// at most limit at a time; a limit of zero or less means no limit. The
// results are in the order of ops.
//
// The ops run with a context derived from the caller's that is cancelled as
// soon as one of them fails; ops not yet started are then skipped. All waits
// for every started op to return, then returns the first error: the one that
// caused the cancellation, not the context.Canceled its siblings return
// afterwards. On error the other results are discarded. When another op's
// outcome is unknown (its COMMIT's answer was lost, [Ambiguous]), the error
// All returns carries that verdict too and reaches both errors: some of the
// work may have been applied.
//
// Inside a transaction (a context from a transaction scope, or marked with
// [WithinTx]) All runs the ops one at a time, in order, whatever the limit:
// the ops share the transaction, which runs one statement at a time, and
// savepoints of ops run side by side would interleave.
//
// Each op is decorated on its own: decorate the ops to retry them one by
// one, the Op All returns to run the whole group again — which, as for
// [Then], a retry does only while none of the ops has committed a
// transaction (or, inside a transaction, released a savepoint that still
// stands), unless it is [Idempotent]. Only transaction scopes count their
// commits: an op of your own that commits by hand is invisible to that
// count, and a sibling's failure cancels it, in its COMMIT perhaps, whose
// error All then drops; a retry around All runs it again. Give such ops a
// transaction scope, or an idempotency key and an Idempotent retry. A
// panic in an op is
// not recovered: like any panic on a goroutine, it ends the program (a
// transaction scope inside the op still rolls back first). An op that
// calls runtime.Goexit (t.FailNow) has neither succeeded nor failed: All
// fails, with an error no retry acts on. All panics if one
// of ops is nil; it copies ops, so changing the slice afterwards has no
// effect.
func All[T any](limit int, ops ...Op[T]) Op[[]T] {
	for i, op := range ops {
		if op == nil {
			panic(fmt.Sprintf("dbop: All: op %d of %d is nil", i+1, len(ops)))
		}
	}
	ops = append([]Op[T](nil), ops...)
	if limit >= len(ops) {
		limit = 0 // the limit cannot bind: skip errgroup's semaphore
	}
	return func(ctx context.Context) ([]T, error) {
		results := make([]T, len(ops))
		wctx, commits := txmark.WithCommits(ctx)
		g, gctx := errgroup.WithContext(wctx)
		switch {
		case isWithinTx(ctx):
			// One transaction serves one statement at a time, and two
			// siblings' savepoint scopes at the same depth share a name:
			// run side by side, one's ROLLBACK TO would undo the other's
			// work and keep its own.
			g.SetLimit(1)
		case limit > 0:
			g.SetLimit(limit)
		}
		errs := make([]error, len(ops))
		started := 0
		for i, op := range ops {
			if gctx.Err() != nil {
				break // a sibling failed or the caller gave up: start no more
			}
			started++
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err // cancelled while Go waited for a slot
				}
				returned := false
				defer func() {
					if !returned {
						// runtime.Goexit: errgroup sees no error, and
						// the op's scopes rolled back on the way out.
						errs[i] = errExited
					}
				}()
				v, err := op(gctx)
				returned = true
				if err != nil {
					errs[i] = err
					return err
				}
				if isWithinTx(gctx) {
					commits.TookEffect() // as in Then
				}
				results[i] = v
				return nil
			})
		}
		err := g.Wait()
		if err == nil {
			// No op returned an error: an error recorded is that of an
			// op that exited without returning.
			for _, e := range errs {
				if e != nil {
					err = e
					break
				}
			}
		}
		if err == nil && started < len(ops) {
			// No op failed, yet some were skipped: the caller's context
			// ended before they could start, perhaps after one that
			// started had committed.
			err = ctx.Err()
		}
		if err != nil {
			// One exit for every failure, so that none loses the mark
			// of the ops that committed.
			return nil, markCommitted(withUnknown(err, errs), commits)
		}
		return results, nil
	}
}

// AllKeyed is [All] for a map of operations: it runs them concurrently, at
// most limit at a time (no limit when limit <= 0), and returns their results
// under the same keys. Failure and cancellation are as in All. The order in
// which the ops start is unspecified. AllKeyed panics if one of ops is nil;
// it copies ops, so changing the map afterwards has no effect.
func AllKeyed[K comparable, T any](limit int, ops map[K]Op[T]) Op[map[K]T] {
	keys := make([]K, 0, len(ops))
	list := make([]Op[T], 0, len(ops))
	for k, op := range ops {
		if op == nil {
			panic(fmt.Sprintf("dbop: AllKeyed: op for key %v is nil", k))
		}
		keys = append(keys, k)
		list = append(list, op)
	}
	all := All(limit, list...)
	return func(ctx context.Context) (map[K]T, error) {
		vs, err := all(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[K]T, len(vs))
		for i, v := range vs {
			out[keys[i]] = v
		}
		return out, nil
	}
}

// errExited is the error of an op of All that called runtime.Goexit
// instead of returning.
var errExited = errors.New("dbop: All: an op exited without returning (runtime.Goexit)")

// withUnknown returns first, the error All returns, joined with a
// sibling's error whose outcome is unknown ([Ambiguous]: a COMMIT that may
// have been applied), if first is not one itself: the first error alone
// would hide that some of the work may have taken effect, and a fallback
// or the caller would take the group for failed.
func withUnknown(first error, errs []error) error {
	if VerdictOf(first) == Ambiguous {
		return first
	}
	for _, err := range errs {
		if err != nil && VerdictOf(err) == Ambiguous {
			return &unknownSiblingError{first: first, unknown: err}
		}
	}
	return first
}

// unknownSiblingError is the error of an All whose first error is not
// Ambiguous while another op's is. It carries the Ambiguous verdict, and
// reaches both errors with errors.Is and errors.As.
type unknownSiblingError struct{ first, unknown error }

func (e *unknownSiblingError) Error() string {
	return fmt.Sprintf("%v (and another op's outcome is unknown: %v)", e.first, e.unknown)
}

func (e *unknownSiblingError) Unwrap() []error { return []error{e.unknown, e.first} }
