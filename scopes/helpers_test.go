package scopes_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/google/go-cmp/cmp"
)

// The errors a fake backend raises, and a classifier for them such as an
// adapter would pass with scopes.ClassifyBy.
var (
	errLockTimeout = errors.New("lock timeout")             // statement-level
	errDeadlock    = errors.New("deadlock detected")        // transaction-level
	errNetwork     = errors.New("connection reset by peer") // after the send
	errUnique      = errors.New("duplicate key")            // permanent
)

func classifier(err error) dbop.Verdict {
	switch {
	case errors.Is(err, errLockTimeout):
		return dbop.RetryStatement
	case errors.Is(err, errDeadlock), errors.Is(err, errNetwork):
		return dbop.RetryTransaction
	case errors.Is(err, errUnique):
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}

// retry retries at once, up to the default attempt limit.
var retry = dbop.WithRetry(dbop.Constant(0))

func checkLog(t *testing.T, want, got []string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statement log mismatch (-want +got):\n%s", diff)
	}
}

// mustPanic runs f and returns the value it panicked with, failing the test
// if it did not panic.
func mustPanic(t *testing.T, f func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	f()
	t.Fatal("did not panic")
	return nil
}

// isWithinTx reports whether ctx is marked as inside a transaction
// (dbop.WithinTx), as a retry run with it sees: it does not run again after
// an error that no savepoint undid. The probe's error is a statement's
// (RetryStatement), which leaves the transaction as it is: a
// RetryTransaction error the retry refuses there dooms the transaction.
// ctx must not be done.
func isWithinTx(ctx context.Context) bool {
	calls := 0
	probe := dbop.Op[struct{}](func(context.Context) (struct{}, error) {
		calls++
		return struct{}{}, dbop.Classify(errors.New("probe"), dbop.RetryStatement)
	})
	_, _ = probe.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))).Run(ctx)
	return calls == 1
}
