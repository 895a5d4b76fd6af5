package scopes_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/scopes"
)

type waTx struct{}

func (waTx) Commit(context.Context) error   { return nil }
func (waTx) Rollback(context.Context) error { return nil }

// Which step deadlines count inside an InTx, with and
// without a deadline of its own.
func TestStepDeadlineShapesInTx(t *testing.T) {
	begin := func(context.Context, scopes.BeginOptions) (waTx, error) { return waTx{}, nil }
	sp := &markSp{}
	retry := dbop.WithRetry(dbop.Constant(0))
	var ok bool
	probe := dbop.Op[int](func(ctx context.Context) (int, error) { _, ok = resolve.StepLimit(ctx); return 0, nil })
	cases := []struct {
		name   string
		intxTO time.Duration // 0: none
		step   func(ctx context.Context) error
		want   bool
	}{
		{"no InTx deadline, WithTimeout in fn", 0, func(ctx context.Context) error {
			c, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := probe.With(retry, scopes.InSavepoint(sp)).Run(c)
			return err
		}, true},
		{"no InTx deadline, WithTimeout in a second With", 0, func(ctx context.Context) error {
			_, err := probe.With(scopes.InSavepoint(sp)).With(retry, dbop.WithTimeout(time.Second)).Run(ctx)
			return err
		}, true},
		{"no InTx deadline, WithTimeout around a Then", 0, func(ctx context.Context) error {
			_, err := dbop.Then(probe.With(retry, scopes.InSavepoint(sp)), func(ctx context.Context, _ int) (int, error) { return probe.Run(ctx) }).With(dbop.WithTimeout(time.Second)).Run(ctx)
			return err
		}, true},
		{"no InTx deadline, no step deadline", 0, func(ctx context.Context) error {
			_, err := probe.With(retry, scopes.InSavepoint(sp)).Run(ctx)
			return err
		}, false},
		{"InTx deadline (request's), step inherits it", 5 * time.Second, func(ctx context.Context) error {
			_, err := probe.With(retry, scopes.InSavepoint(sp)).Run(ctx)
			return err
		}, false},
		{"InTx deadline, step WithTimeout longer", 5 * time.Second, func(ctx context.Context) error {
			_, err := probe.With(retry, dbop.WithTimeout(time.Minute), scopes.InSavepoint(sp)).Run(ctx)
			return err
		}, false},
		{"InTx deadline, step WithTimeout shorter", 5 * time.Second, func(ctx context.Context) error {
			_, err := probe.With(retry, dbop.WithTimeout(time.Second), scopes.InSavepoint(sp)).Run(ctx)
			return err
		}, true},
	}
	for _, c := range cases {
		ok = false
		ctx := context.Background()
		if c.intxTO > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.intxTO)
			defer cancel()
		}
		_, err := scopes.Do(begin, func(ctx context.Context, _ waTx) error { return c.step(ctx) }).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok != c.want {
			t.Errorf("%s: StepLimit ok %v, want %v", c.name, ok, c.want)
		}
	}
}
