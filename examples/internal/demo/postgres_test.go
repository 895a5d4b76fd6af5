package demo

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop/dboptest"
)

func TestPostgresCause(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"serialization failure", dboptest.PgError("40001", "could not serialize access due to concurrent update"), "40001 serialization_failure"},
		{"deadlock", dboptest.PgError("40P01", "deadlock detected"), "40P01 deadlock_detected"},
		{"lock timeout", dboptest.PgError("55P03", "canceling statement due to lock timeout"), "55P03 lock_not_available"},
		{"wrapped", fmt.Errorf("reserve: %w", dboptest.PgError("40P01", "deadlock detected")), "40P01 deadlock_detected"},
		{"other code", dboptest.PgError("23505", "duplicate key value violates unique constraint"), "23505 duplicate key value violates unique constraint"},
		{"no SQLSTATE", errors.New("connection reset"), "connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PostgresCause(tt.err); got != tt.want {
				t.Errorf("PostgresCause = %q, want %q", got, tt.want)
			}
		})
	}
}
