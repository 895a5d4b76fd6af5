package otel

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
)

type sqlStateError struct{ code string }

func (e sqlStateError) Error() string    { return "sqlstate " + e.code }
func (e sqlStateError) SQLState() string { return e.code }

type typedError struct{ sqlStateError }

func (typedError) ErrorType() string { return "pool.exhausted" }

type plainError struct{}

func (plainError) Error() string { return "plain" }

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
		{"SQLSTATE classified and exhausted", exhausted(dbop.Transient(sqlStateError{"40001"})), "40001"},
		{"empty SQLSTATE falls through", sqlStateError{}, "github.com/dbop-go/dbop/adapters/otel.sqlStateError"},
		{"ErrorType method first", typedError{sqlStateError{"53300"}}, "pool.exhausted"},
		{"deadline", dbop.Transient(context.DeadlineExceeded), "context.DeadlineExceeded"},
		{"deadline wrapped", exhausted(fmt.Errorf("attempt: %w", context.DeadlineExceeded)), "context.DeadlineExceeded"},
		{"canceled", context.Canceled, "context.Canceled"},
		{"type name", dbop.Permanent(plainError{}), "github.com/dbop-go/dbop/adapters/otel.plainError"},
		{"type name through fmt", exhausted(fmt.Errorf("x: %w", plainError{})), "github.com/dbop-go/dbop/adapters/otel.plainError"},
		{"unnamed type", errors.New("boom"), "*errors.errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorType(tt.err); got != tt.want {
				t.Errorf("errorType(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
