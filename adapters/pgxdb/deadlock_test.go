package pgxdb_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// Two transactions lock rows A and B in opposite orders. The server
// detects the deadlock and fails one of them with 40P01; InTx under
// WithRetry runs that one again, and each transaction's increments land
// exactly once.
func TestDeadlockIsRetried(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_deadlock", "id text PRIMARY KEY, n int NOT NULL",
		"INSERT INTO pgxdb_deadlock VALUES ('A', 0), ('B', 0)")

	type txSide struct {
		first, second string
		runs          atomic.Int32
		locked        chan uint32   // the first attempt sends its backend pid once it holds its first row
		proceed       chan struct{} // closed by the test: take the second row
		done          chan struct{} // closed when the side's Run returns
		other         *txSide
	}
	newSide := func(first, second string) *txSide {
		return &txSide{first: first, second: second, locked: make(chan uint32, 1), proceed: make(chan struct{}), done: make(chan struct{})}
	}
	t1, t2 := newSide("A", "B"), newSide("B", "A")
	t1.other, t2.other = t2, t1

	var rec retries
	run := func(s *txSide) error {
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (struct{}, error) {
			run := s.runs.Add(1)
			if _, err := tx.Exec(ctx, "UPDATE pgxdb_deadlock SET n = n + 1 WHERE id = $1", s.first); err != nil {
				return struct{}{}, err
			}
			if run == 1 {
				s.locked <- pid(tx)
				<-s.proceed
			}
			_, err := tx.Exec(ctx, "UPDATE pgxdb_deadlock SET n = n + 1 WHERE id = $1", s.second)
			return struct{}{}, err
		})
		// The victim retries once the winner has finished. Retrying at once,
		// it could take its first row again before the winner, woken by the
		// victim's rollback, does, and deadlock a second time: correct
		// behaviour, but not what this test counts.
		afterWinner := dbop.OnRetry(func(ctx context.Context, e dbop.AttemptEvent) {
			rec.record(ctx, e)
			select {
			case <-s.other.done:
			case <-ctx.Done():
			}
		})
		defer close(s.done)
		_, err := op.With(dbop.WithRetry(retryAtOnce, afterWinner)).Run(t.Context())
		return err
	}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*txSide{t1, t2} {
		wg.Go(func() { errs[i] = run(s) })
	}
	pid1 := <-t1.locked // T1 holds A
	<-t2.locked         // T2 holds B
	close(t1.proceed)   // T1 asks for B and waits for T2
	waitForLockWait(t, pool, pid1)
	close(t2.proceed) // T2 asks for A: a cycle, which the deadlock detector breaks
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("transaction %d: %v", i+1, err)
		}
	}
	checkLog(t, []string{"40P01"}, rec.codes())
	if got := t1.runs.Load() + t2.runs.Load(); got != 3 {
		t.Errorf("fn ran %d times in all, want 3 (one deadlock victim ran twice)", got)
	}
	for _, id := range []string{"A", "B"} {
		if n := queryInt(t, pool, "SELECT n FROM pgxdb_deadlock WHERE id = $1", id); n != 2 {
			t.Errorf("row %s: n = %d, want 2 (one increment from each transaction)", id, n)
		}
	}
}
