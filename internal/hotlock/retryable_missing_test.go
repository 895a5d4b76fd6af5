package hotlock

import (
	"context"
	"testing"
)

// A scope whose classifier retries every error (a caller's
// ClassifyBy(func(error) dbop.Verdict { return dbop.RetryTransaction })
// on the transaction) must still learn from 42P01 that the server has no
// lock tables and take the advisory lock: the LOCK TABLE is the HotSpot's
// own statement, not the caller's. Begin consulted missing only for an
// error the scope's classifier refused, so the probe's 42P01 became the
// attempt's retryable error, every attempt probed again and failed the
// same way, and the operation never ran until its retry gave up. Found by the generated pipelines of
// internal/faulttest on PostgreSQL (HotSpot beside InTx with a classifier
// that retries everything: thousands of "retry-transaction (pg 42P01)"
// per run, transfers exhausted on 42P01); see also
// adapters/sqldb's TestHotSpotWithARetryEverythingClassifierWithoutLockTablesPostgres.
func TestNoLockTablesFallsBackToAdvisoryWhateverTheClassifierRetries(t *testing.T) {
	tx := &advisoryTx{lockErr: &codedErr{"42P01", `relation "dbop_hotspot_lock_0" does not exist`}}
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
		if _, err := Begin(With(t.Context(), req), s); err != nil {
			t.Fatalf("attempt %d: %v: with a classifier that retries everything, a server without lock tables fails every coordinated attempt", i, err)
		}
		if took, _, _ := req.Outcome(); !took {
			t.Errorf("attempt %d took no lock", i)
		}
	}
	if !state.noTables.Load() {
		t.Error("the scope did not remember that the server has no lock tables")
	}
}
