package classifiers_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/google/go-cmp/cmp"
)

// verdictCase is one row of a classifier's table: an error and the verdict
// the classifier must give it.
type verdictCase struct {
	name string
	err  error
	want dbop.Verdict
}

// unrelated returns an error that no classifier has an opinion on.
func unrelated() error { return errors.New("audit log: write failed") }

// checkVerdicts runs each case as a named subtest, three times: the bare
// error, the error wrapped with fmt.Errorf("%w"), and the error joined after
// an unrelated one with errors.Join. The verdict must be the same each time.
func checkVerdicts(t *testing.T, name string, classify dbop.Classifier, cases []verdictCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, form := range []struct {
				name string
				err  error
			}{
				{"bare", tc.err},
				{"wrapped", fmt.Errorf("transfer %d: %w", 42, tc.err)},
				{"joined", errors.Join(unrelated(), tc.err)},
			} {
				t.Run(form.name, func(t *testing.T) {
					got := classify(form.err)
					if diff := cmp.Diff(tc.want, got); diff != "" {
						t.Errorf("%s(%v) = %v, want %v (-want +got):\n%s", name, form.err, got, tc.want, diff)
					}
				})
			}
		})
	}
}

// sqlStateError is an error with a SQLSTATE that is not pgx's, as lib/pq's
// *pq.Error is: its Error() is "pq: " + the server's message.
type sqlStateError struct{ code, message string }

func (e *sqlStateError) Error() string    { return "pq: " + e.message }
func (e *sqlStateError) SQLState() string { return e.code }

// safeToRetryError has pgconn's SafeToRetry capability.
type safeToRetryError struct{ safe bool }

func (e *safeToRetryError) Error() string {
	return fmt.Sprintf("write failed (safe to retry: %v)", e.safe)
}
func (e *safeToRetryError) SafeToRetry() bool { return e.safe }

func TestNil(t *testing.T) {
	for _, c := range allClassifiers() {
		t.Run(c.name, func(t *testing.T) {
			if got := c.classify(nil); got != dbop.Unclassified {
				t.Errorf("%s(nil) = %v, want unclassified", c.name, got)
			}
		})
	}
}

type namedClassifier struct {
	name     string
	classify dbop.Classifier
}

// allClassifiers lists every exported classifier of the package.
func allClassifiers() []namedClassifier {
	return []namedClassifier{
		{"Postgres", classifiers.Postgres},
		{"CockroachDB", classifiers.CockroachDB},
		{"SQLite", classifiers.SQLite},
		{"Network", classifiers.Network},
		{"Context", classifiers.Context},
		{"Default", classifiers.Default},
	}
}
