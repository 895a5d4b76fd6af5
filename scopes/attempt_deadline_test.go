package scopes_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/scopes"
)

// Which pipeline shapes mark a step attempt's deadline, in a transaction
// the caller began (dbop.WithinTx), as resolve.StepLimit sees it inside the
// savepoint scope: a WithTimeout listed before the scope in the same
// pipeline (a Chain expanded), whatever else lies between; not one listed
// after the scope (it starts inside the savepoint, too late), nor one in
// another With, which the pipeline compiler does not see.
func TestAttemptDeadlineShapes(t *testing.T) {
	sp := &markSp{}
	retry := dbop.WithRetry(dbop.Constant(0))
	var got time.Duration
	var ok bool
	probe := dbop.Op[int](func(ctx context.Context) (int, error) {
		got, ok = resolve.StepLimit(ctx)
		return 0, nil
	})
	inner := func(ds ...dbop.Decorator) dbop.Op[int] { // a nested step without a WithTimeout of its own
		return dbop.Op[int](func(ctx context.Context) (int, error) { return probe.With(retry, scopes.InSavepoint(sp)).Run(ctx) }).With(ds...)
	}
	cases := []struct {
		name string
		op   dbop.Op[int]
		want bool
	}{
		{"retry, WithTimeout, scope", probe.With(retry, dbop.WithTimeout(time.Second), scopes.InSavepoint(sp)), true},
		{"Chain(retry, WithTimeout), scope", probe.With(dbop.Chain(retry, dbop.WithTimeout(time.Second)), scopes.InSavepoint(sp)), true},
		{"WithTimeout, retry, scope (whole step)", probe.With(dbop.WithTimeout(time.Second), retry, scopes.InSavepoint(sp)), true},
		{"retry, WithTimeout(1s), WithTimeout(5s), scope", probe.With(retry, dbop.WithTimeout(time.Second), dbop.WithTimeout(5*time.Second), scopes.InSavepoint(sp)), true},
		{"retry, WithTimeout(5s), WithTimeout(1s), scope", probe.With(retry, dbop.WithTimeout(5*time.Second), dbop.WithTimeout(time.Second), scopes.InSavepoint(sp)), true},
		{"retry, scope, WithTimeout (inside)", probe.With(retry, scopes.InSavepoint(sp), dbop.WithTimeout(time.Second)), false},
		{"With(scope).With(retry, WithTimeout)", probe.With(scopes.InSavepoint(sp)).With(retry, dbop.WithTimeout(time.Second)), false},
		{"outer step marked, nested step without WithTimeout", inner(retry, dbop.WithTimeout(time.Second), scopes.InSavepoint(sp)), true},
		{"WithTimeout, Around(no-op), scope", probe.With(retry, dbop.WithTimeout(time.Second), dbop.Around(func(ctx context.Context, next func(context.Context) error) error { return next(ctx) }), scopes.InSavepoint(sp)), true},
	}
	for _, c := range cases {
		got, ok = 0, false
		if _, err := c.op.Run(dbop.WithinTx(context.Background())); err != nil {
			t.Fatal(err)
		}
		if ok != c.want || (ok && (got < 900*time.Millisecond || got > time.Second)) {
			t.Errorf("%s: StepLimit = %v, %v; want ok %v (a limit under the 1 s WithTimeout)", c.name, got, ok, c.want)
		}
	}
}

// markSp is a Savepointer that sends nothing.
type markSp struct{ _ int }

func (*markSp) Savepoint(context.Context, string) error  { return nil }
func (*markSp) RollbackTo(context.Context, string) error { return nil }
func (*markSp) Release(context.Context, string) error    { return nil }
