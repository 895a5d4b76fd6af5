package dbop_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
)

// A verdict that is none of the five — a classifier's arithmetic, a value
// read from configuration — names no retry: WithRetry does not retry it
// (invariant 3: what no rule recognises is not run again). It was retried
// as RetryTransaction is.
func TestUnknownVerdictIsNotRetried(t *testing.T) {
	bogus := dbop.Verdict(7)
	if bogus.Retryable() {
		t.Fatal("Verdict(7).Retryable() = true")
	}
	drv := errors.New("driver error")
	for name, d := range map[string]dbop.Decorator{
		"Classify": dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
			return dbop.Classify(next(ctx), bogus)
		}),
		"ClassifyBy": dbop.ClassifyBy(func(error) dbop.Verdict { return bogus }),
	} {
		t.Run(name, func(t *testing.T) {
			op, calls := counted(drv, drv, drv)
			_, err := op.With(dbop.WithRetry(dbop.Constant(0)), d).Run(context.Background())
			if *calls != 1 || !errors.Is(err, drv) || dbop.VerdictOf(err) != bogus {
				t.Errorf("%d calls, err = %v (%v); want one call and the error as classified", *calls, err, dbop.VerdictOf(err))
			}
		})
	}
}
