package dbop

import (
	"context"

	"github.com/dbop-go/dbop/internal/txmark"
)

// A FallbackOption configures [OrDefault] and [Fallback].
type FallbackOption func(*fallbackConfig)

type fallbackConfig struct{ ambiguous bool }

// AcceptAmbiguous lets [OrDefault] or [Fallback] replace an [Ambiguous]
// outcome too: a COMMIT whose answer was lost, so the work may have been
// applied; and a failure of a [Then] or [All] after one of its steps took
// effect (its transaction committed, or, inside a transaction, its
// savepoint was released), so part of it was; and inside a transaction a
// failure that a savepoint scope undid for part of the Op only (a scope
// not listed after the fallback in its pipeline). Without it such an outcome
// passes through, so that the caller never reads "failed, here is the
// default" for work that may have taken effect.
func AcceptAmbiguous() FallbackOption {
	return func(c *fallbackConfig) { c.ambiguous = true }
}

// OrDefault returns a typed Decorator that turns an error of the decorated
// Op into the value v and a nil error: dbop-core's raises=False, default=v.
// List it before [WithRetry], so that it applies once retries are over;
// listing it after a WithRetry in the same pipeline panics when the
// pipeline is built, since the retry would never see a failure. T is
// inferred from v: dbop.OrDefault(0) decorates an Op[int].
//
// Some errors pass through unchanged, so that the caller never reads
// "failed, here is the default" where the work may have been done, and a
// transaction is never committed in half:
//
//   - an [Ambiguous] outcome, unless [AcceptAmbiguous] is given;
//   - the failure of a [Then] or [All] after one of its steps took effect
//     (its transaction committed, or inside a transaction its savepoint
//     was released), unless AcceptAmbiguous is given;
//   - an error that doomed a transaction, which must reach the
//     transaction's owner;
//   - inside a transaction (a context marked [WithinTx], as the
//     transaction scopes hand out), any error that a savepoint scope did
//     not undo: the transaction may be rolled back or aborted; and,
//     unless AcceptAmbiguous is given, any error that a savepoint scope
//     listed elsewhere undid — a step of a Then, a savepoint your own Op
//     ran — since what the Op ran before it stands. List the savepoint
//     scope after OrDefault, in the same pipeline, to give a step a
//     default inside a transaction.
//
// OrDefault panics if an option is nil.
func OrDefault[T any](v T, opts ...FallbackOption) Decorator {
	return fallback[T]{value: v, cfg: fallbackOptions("OrDefault", opts)}
}

// Fallback returns a typed Decorator that calls fn with the decorated Op's
// error, when there is one, and returns what fn returns: a cached value, a
// read from a replica, or a translated error. Listed before [WithRetry], it
// applies once retries are over; listed after it, to each attempt.
//
// fn is not called for the errors that pass [OrDefault] unchanged: an
// [Ambiguous] outcome and a Then's or All's failure after a step took
// effect unless [AcceptAmbiguous] is given, an error that doomed a
// transaction, and inside a transaction an error no savepoint scope
// listed after the Fallback in its pipeline undid. Fallback panics if fn or an
// option is nil.
func Fallback[T any](fn func(ctx context.Context, err error) (T, error), opts ...FallbackOption) Decorator {
	if fn == nil {
		panic("dbop: Fallback(nil)")
	}
	return fallback[T]{fn: fn, cfg: fallbackOptions("Fallback", opts)}
}

func fallbackOptions(caller string, opts []FallbackOption) fallbackConfig {
	var c fallbackConfig
	for _, o := range opts {
		if o == nil {
			panic("dbop: " + caller + ": an option is nil")
		}
		o(&c)
	}
	return c
}

// fallback is the Decorator OrDefault and Fallback build: fn when set,
// otherwise the value.
type fallback[T any] struct {
	fn    func(ctx context.Context, err error) (T, error)
	value T
	cfg   fallbackConfig
}

func (fallback[T]) decorator() {}

// fallbackDecorator is how validate recognises a fallback of any type.
type fallbackDecorator interface{ replacesErrors() bool }

// replacesErrors reports whether the fallback turns every error into a
// success (OrDefault); a Fallback's fn may return an error instead.
func (f fallback[T]) replacesErrors() bool { return f.fn == nil }

func (f fallback[T]) wrap(op Op[T], covers []any) Op[T] {
	return func(ctx context.Context) (T, error) {
		v, err := op(ctx)
		if err == nil || !f.handles(ctx, err, covers) {
			return v, err
		}
		if f.fn != nil {
			return f.fn(ctx, err)
		}
		return f.value, nil
	}
}

// handles reports whether the fallback may replace err, returned by an Op
// run with ctx; covers are the transactions of the scopes listed inside it
// (inner.covers).
func (f fallback[T]) handles(ctx context.Context, err error, covers []any) bool {
	m := txmark.Of(err)
	switch {
	case m != nil && m.Kind == txmark.Doomed:
		return false
	case isWithinTx(ctx) && (m == nil || m.Kind == txmark.None):
		// Inside a transaction an error nobody undid may have rolled the
		// transaction back (a MySQL deadlock) or aborted it: going on as
		// if the Op had succeeded would commit half of it.
		return false
	case !f.cfg.ambiguous && !coveredHere(ctx, m, covers):
		// A scope inside the Op undid its own part, but what the Op ran
		// in the transaction before it stands: going on would commit
		// half of the Op.
		return false
	}
	// A Then or All that failed after a step committed (ErrAlreadyCommitted)
	// took effect in part: it is no more a plain failure than an unknown
	// outcome is.
	return f.cfg.ambiguous || (VerdictOf(err) != Ambiguous && !committedBefore(ctx, err))
}
