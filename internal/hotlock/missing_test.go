package hotlock

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type codedErr struct{ code, msg string }

func (e *codedErr) Error() string    { return e.msg + " (SQLSTATE " + e.code + ")" }
func (e *codedErr) SQLState() string { return e.code }

// advisoryTx refuses LOCK TABLE with err and grants the advisory lock.
type advisoryTx struct{ lockErr error }

type okRow struct{}

func (okRow) Scan(dst ...any) error {
	*dst[0].(*bool) = true
	*dst[1].(*string) = "read committed"
	return nil
}

func (a *advisoryTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error } {
	return okRow{}
}

func (a *advisoryTx) Exec(ctx context.Context, query string, args ...any) error {
	if strings.HasPrefix(query, "LOCK TABLE") {
		return a.lockErr
	}
	return nil
}

// TestLockTableNotSupportedFallsBackToAdvisory: a PostgreSQL-wire
// server that does not support LOCK TABLE at all (CockroachDB answers
// "unimplemented", SQLSTATE 0A000 — not checked live here) or refuses the
// mode used (a syntax/feature error, class 42 or 0A) has no lock tables
// to offer. Before b351d84 that non-retryable answer switched the
// operation to the advisory lock; now only 42P01/42501 do, so every
// coordinated attempt fails with "waiting for the hot spot's lock"
// (NotRetryable) for ever — while the advisory branch of missing() accepts
// exactly those classes.
func TestLockTableNotSupportedFallsBackToAdvisory(t *testing.T) {
	for _, code := range []string{"0A000", "42601"} {
		t.Run(code, func(t *testing.T) {
			tx := &advisoryTx{lockErr: &codedErr{code, "unimplemented: LOCK TABLE"}}
			state := &State{}
			s := Scope[*advisoryTx]{
				Begin:    func() (*advisoryTx, error) { return tx, nil },
				Tx:       func(tx *advisoryTx) Tx { return tx },
				Rollback: func(context.Context, *advisoryTx) error { return nil },
				State:    state,
				Postgres: true,
				Name:     "test",
			}
			for i := range 3 {
				req := &Request{Key: 7}
				_, err := Begin(With(t.Context(), req), s)
				if err != nil {
					var ce *codedErr
					t.Fatalf("attempt %d: %v (coded %v): a server without LOCK TABLE fails every coordinated attempt", i, err, errors.As(err, &ce))
				}
				if took, _, _ := req.Outcome(); !took {
					t.Errorf("attempt %d took no lock", i)
				}
			}
			if !state.noTables.Load() {
				t.Error("the scope did not remember that the server has no lock tables")
			}
		})
	}
}
