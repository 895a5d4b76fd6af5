package classifiers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

func TestContext(t *testing.T) {
	expired, cancel := context.WithTimeoutCause(context.Background(), -time.Second, errors.New("per-attempt timeout"))
	defer cancel()
	cancelled, cancel2 := context.WithCancelCause(context.Background())
	cancel2(errors.New("shutting down"))
	cases := []verdictCase{
		{"context.DeadlineExceeded", context.DeadlineExceeded, dbop.RetryTransaction},
		{"expired context's Err", expired.Err(), dbop.RetryTransaction},
		{"context.Canceled", context.Canceled, dbop.NotRetryable},
		{"cancelled context's Err", cancelled.Err(), dbop.NotRetryable},
		{"network error is Network's", dboptest.NetworkError(), dbop.Unclassified},
		{"plain error", errors.New("boom"), dbop.Unclassified},
	}
	checkVerdicts(t, "Context", classifiers.Context, cases)
}
