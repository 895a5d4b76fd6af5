package classifiers_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
)

// Errors of a bug in the program, or of a server that lacks what the
// program asks for, fail the same way on every attempt: no classifier lets
// a retry run them again, and the caller gets the very error the operation
// returned.
func TestBugsAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"pgconn conn busy", pgxConnBusy(t)},
		{"pgx.ErrTxClosed", pgx.ErrTxClosed},
		{"sql.ErrTxDone", sql.ErrTxDone},
		{"MySQL 1193 unknown system variable", dboptest.MySQLError(1193, "Unknown system variable 'max_execution_time'")},
	} {
		for _, c := range allClassifiers() {
			t.Run(tc.name+"/"+c.name, func(t *testing.T) {
				if v := c.classify(tc.err); v != dbop.NotRetryable && v != dbop.Unclassified {
					t.Errorf("%s(%v) = %v, want not-retryable or unclassified", c.name, tc.err, v)
				}
				var calls int
				op := dbop.Op[int](func(context.Context) (int, error) {
					calls++
					return 0, tc.err
				})
				_, err := op.With(
					dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)),
					dbop.ClassifyBy(c.classify),
				).Run(t.Context())
				if calls != 1 || !errors.Is(err, tc.err) || dbop.VerdictOf(err).Retryable() {
					t.Errorf("ran %d times, returned %v (verdict %v); want one run, the operation's error, not retryable",
						calls, err, dbop.VerdictOf(err))
				}
			})
		}
	}
}
