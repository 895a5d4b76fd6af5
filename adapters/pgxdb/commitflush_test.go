package pgxdb_test

import (
	"context"
	"testing"
	"time"
)

// TestLocksAreHeldThroughTheCommitFlush shows docs/backends.md §1.20: a
// transaction keeps its row locks and its table locks until its commit
// record is flushed, so a transaction waiting for one starts only after the
// holder's flush. commit_delay, which makes the flushing backend sleep
// before the flush (commit_siblings 0: whatever else runs), stands in for a
// slow disk. Were the locks released before the flush, the waiter would go
// on while the holder's COMMIT still slept.
func TestLocksAreHeldThroughTheCommitFlush(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_flushlocks", "id int PRIMARY KEY, v int",
		"INSERT INTO pgxdb_flushlocks VALUES (1, 0)")
	const delay = 100 * time.Millisecond // commit_delay's maximum, 100000 µs
	for _, tc := range []struct{ name, hold, wait string }{
		{"row lock",
			"UPDATE pgxdb_flushlocks SET v = v + 1 WHERE id = 1",
			"UPDATE pgxdb_flushlocks SET v = v + 1 WHERE id = 1"},
		{"table lock",
			"LOCK TABLE pgxdb_flushlocks IN EXCLUSIVE MODE; UPDATE pgxdb_flushlocks SET v = v + 1 WHERE id = 1",
			"LOCK TABLE pgxdb_flushlocks IN EXCLUSIVE MODE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			holder, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(context.Background())
			if _, err := holder.Exec(ctx, tc.hold); err != nil {
				t.Fatalf("holder: %v", err)
			}
			// Superuser settings: the test role must be allowed to set them
			// (CI's is postgres); a 42501 here says it is not.
			// synchronous_commit on: the commit waits for its flush
			// whatever the server's default.
			if _, err := holder.Exec(ctx, "SET LOCAL synchronous_commit = on; SET LOCAL commit_delay = 100000; SET LOCAL commit_siblings = 0"); err != nil {
				t.Fatalf("set commit_delay: %v", err)
			}

			waiter, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer waiter.Release()
			waiterPID := waiter.Conn().PgConn().PID()
			type result struct {
				at  time.Time
				err error
			}
			done := make(chan result, 1)
			go func() {
				tx, err := waiter.Begin(ctx)
				if err == nil {
					_, err = tx.Exec(ctx, tc.wait)
					at := time.Now()
					if rerr := tx.Rollback(context.Background()); err == nil {
						err = rerr
					}
					done <- result{at, err}
					return
				}
				done <- result{time.Now(), err}
			}()
			waitForLockWait(t, pool, waiterPID)

			sent := time.Now()
			if err := holder.Commit(ctx); err != nil {
				t.Fatalf("holder's COMMIT: %v", err)
			}
			commit := time.Since(sent)
			r := <-done
			if r.err != nil {
				t.Fatalf("waiter: %v", r.err)
			}
			released := r.at.Sub(sent)
			t.Logf("COMMIT took %v; the waiter went on %v after it was sent", commit, released)
			// The fault fired: with fsync off the server skips commit_delay,
			// and this test then shows nothing.
			if commit < delay*9/10 {
				t.Fatalf("COMMIT took %v, less than commit_delay %v: the delay did not apply (is fsync off?)", commit, delay)
			}
			if released < delay*9/10 {
				t.Errorf("the waiter went on %v after the COMMIT was sent, before the %v delay before the flush ended: locks released before the flush", released, delay)
			}
		})
	}
}
