package otel

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

type sqlStateError struct{ code string }

func (e sqlStateError) Error() string    { return "sqlstate " + e.code }
func (e sqlStateError) SQLState() string { return e.code }

type typedError struct{ sqlStateError }

func (typedError) ErrorType() string { return "pool.exhausted" }

type plainError struct{}

func (plainError) Error() string { return "plain" }

// sameText wraps an error and says only what it says.
type sameText struct{ err error }

func (e sameText) Error() string { return e.err.Error() }
func (e sameText) Unwrap() error { return e.err }

// namedWrapper is a wrapper of the same text that names its own class.
type namedWrapper struct{ sameText }

func (namedWrapper) ErrorType() string { return "app.conflict" }

// annotated wraps an error with text of its own.
type annotated struct{ err error }

func (e annotated) Error() string { return "annotated: " + e.err.Error() }
func (e annotated) Unwrap() error { return e.err }

func TestErrorType(t *testing.T) {
	exhausted := func(err error) error {
		return &dbop.RetryError{Attempts: 3, Reason: dbop.ErrRetriesExhausted, Err: err}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"SQLSTATE", sqlStateError{"40001"}, "40001"},
		{"SQLSTATE wrapped", fmt.Errorf("transfer: %w", sqlStateError{"40P01"}), "40P01"},
		{"SQLSTATE classified and exhausted", exhausted(dbop.Classify(sqlStateError{"40001"}, dbop.RetryTransaction)), "40001"},
		{"empty SQLSTATE falls through", sqlStateError{}, "github.com/dbop-go/dbop/adapters/otel.sqlStateError"},
		{"ErrorType method first", typedError{sqlStateError{"53300"}}, "pool.exhausted"},
		{"deadline", dbop.Classify(context.DeadlineExceeded, dbop.RetryTransaction), "context.DeadlineExceeded"},
		{"deadline wrapped", exhausted(fmt.Errorf("attempt: %w", context.DeadlineExceeded)), "context.DeadlineExceeded"},
		{"canceled", context.Canceled, "context.Canceled"},
		{"type name", dbop.Classify(plainError{}, dbop.NotRetryable), "github.com/dbop-go/dbop/adapters/otel.plainError"},
		{"type name through fmt", exhausted(fmt.Errorf("x: %w", plainError{})), "github.com/dbop-go/dbop/adapters/otel.plainError"},
		{"unnamed type", errors.New("boom"), "*errors.errorString"},
		{"doomed mark", &txmark.Mark{Kind: txmark.Doomed, Err: dbop.Classify(plainError{}, dbop.RetryTransaction)}, "github.com/dbop-go/dbop/adapters/otel.plainError"},
		{"released mark, exhausted", exhausted(&txmark.Mark{Kind: txmark.Released, Err: plainError{}}), "github.com/dbop-go/dbop/adapters/otel.plainError"},
		{"wrapper of the same text", sameText{plainError{}}, "github.com/dbop-go/dbop/adapters/otel.plainError"},
		{"wrapper of the same text with ErrorType", namedWrapper{sameText{plainError{}}}, "app.conflict"},
		{"wrapper with text of its own", dbop.Classify(annotated{plainError{}}, dbop.RetryTransaction), "github.com/dbop-go/dbop/adapters/otel.annotated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorType(tt.err); got != tt.want {
				t.Errorf("errorType(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
