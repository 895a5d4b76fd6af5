package dbop_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// An op of All that calls runtime.Goexit (t.FailNow, or a helper that
// ends its goroutine) neither returned a value nor an error: its
// transaction scope rolled back on the way out. All used to take it for a
// success, with the zero value in its place, so the caller read "done"
// for work the database had undone, and a fallback or a retry around All
// had nothing to act on. It fails instead, with an error no retry acts on.
func TestAllOpThatExitsIsNoSuccess(t *testing.T) {
	for _, limit := range []int{0, 1} {
		var rec dboptest.Recorder
		exits := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			if err := tx.Exec(ctx, "INSERT INTO ledger"); err != nil {
				return 0, err
			}
			runtime.Goexit()
			return 1, nil
		})
		ok := dbop.Op[int](func(context.Context) (int, error) { return 2, nil })
		vs, err := dbop.All(limit, ok, exits).Run(context.Background())
		if err == nil {
			t.Errorf("limit %d: All = %v, nil after an op exited without returning, its transaction rolled back (%q)", limit, vs, rec.Log())
			continue
		}
		if v := dbop.VerdictOf(err); v.Retryable() || v == dbop.Ambiguous {
			t.Errorf("limit %d: verdict %v, want one no retry acts on: %v", limit, v, err)
		}
	}
}
