package dbop_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dbop-go/dbop"
)

// An Op that panics (or calls runtime.Goexit) under an observed retry: the
// observer is told that the attempt and the operation ended, in failure,
// before the panic goes on with its own value; an observer's span would
// otherwise stay open for ever (see adapters/otel TestPanicEndsTheSpans).
func TestObserverToldOfAPanic(t *testing.T) {
	for _, exit := range []struct {
		name string
		do   func()
	}{
		{"panic", func() { panic("boom") }},
		{"Goexit", runtime.Goexit},
	} {
		t.Run(exit.name, func(t *testing.T) {
			var ended []string
			calls := 0
			op := dbop.Op[int](func(context.Context) (int, error) {
				calls++
				if calls == 1 {
					return 0, errRetryable
				}
				exit.do()
				return 1, nil
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(spanObserver{"a", &ended})))
			var wg sync.WaitGroup
			wg.Go(func() {
				defer func() { _ = recover() }()
				_, _ = op.Run(context.Background())
			})
			wg.Wait()
			want := []string{"a ends a/attempt1", "a ends a/attempt2", "a ends a/op"}
			if diff := cmp.Diff(want, ended); diff != "" {
				t.Errorf("ends (-want +got):\n%s", diff)
			}
		})
	}
}
