package pgxdb_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// showLimits returns statement_timeout and lock_timeout as SHOW gives them.
func showLimits(ctx context.Context, t *testing.T, tx pgx.Tx) string {
	t.Helper()
	var stmt, lock string
	if err := tx.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')").Scan(&stmt, &lock); err != nil {
		t.Fatal(err)
	}
	return "statement_timeout=" + stmt + " lock_timeout=" + lock
}

// A step's derived limit never raises a lower one in force: InTx's
// LockTimeout(100ms), or a session's statement_timeout of 200ms, stays in
// force inside a step whose WithTimeout(10s) derives about 9 s, while a
// parameter with none in force (0) gets the derived limit. The server
// computes the smaller in the statement that sets it (docs/backends.md
// §1.19). The reverted change set the derived ~9 s over both (found by a
// review).
func TestSavepointStepLimitNeverRaisesTheOneInForce(t *testing.T) {
	pool := newPool(t, 1, func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["statement_timeout"] = "200ms" })
	var before, inside, after string
	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		before = showLimits(ctx, t, tx)
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			inside = showLimits(ctx, t, tx)
			return 0, nil
		}).With(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(10*time.Second), pgxdb.InSavepoint(tx)).Run(ctx)
		after = showLimits(ctx, t, tx)
		return err
	}, pgxdb.LockTimeout(100*time.Millisecond))
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := "statement_timeout=200ms lock_timeout=100ms"; before != want || inside != want || after != want {
		t.Errorf("before, inside and after the step:\n%s\n%s\n%s\nwant %s each", before, inside, after, want)
	}

	// With none in force, the step's deadline becomes the limit.
	pool = newPool(t, 1)
	op = pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		before = showLimits(ctx, t, tx)
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			inside = showLimits(ctx, t, tx)
			return 0, nil
		}).With(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(10*time.Second), pgxdb.InSavepoint(tx)).Run(ctx)
		after = showLimits(ctx, t, tx)
		return err
	}, pgxdb.LockTimeout(100*time.Millisecond))
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := "statement_timeout=0 lock_timeout=100ms"; before != want || after != want {
		t.Errorf("before and after the step: %s, %s; want %s", before, after, want)
	}
	if !strings.HasPrefix(inside, "statement_timeout=9") || !strings.HasSuffix(inside, " lock_timeout=100ms") {
		t.Errorf("inside the step: %s; want statement_timeout of about 9 s, lock_timeout 100ms", inside)
	}
}

// A step acts only on a deadline earlier than the one InTx derived the
// transaction's limits from. Under a dbop.HotSpot's server deadline
// (hotlock.WithServerDeadline), which late in the attempt leaves about
// nothing, a step with a WithTimeout no earlier than InTx's deadline, or
// with no deadline at all, sends no statement but its savepoint's: the
// limits in force are InTx's. The reverted change derived a 1 ms limit
// from the server deadline (found by a review). A step with a deadline of
// its own, earlier, does set limits.
func TestSavepointStepUnderHotSpotDeadlineSetsNothing(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 1, traced(&log))
	for _, c := range []struct {
		name     string
		deadline time.Duration // on InTx's context; 0 for none
		step     []dbop.Decorator
		sets     bool
	}{
		{"InTx 30s, step 1min", 30 * time.Second, []dbop.Decorator{dbop.WithTimeout(time.Minute)}, false},
		{"InTx 30s, step none", 30 * time.Second, nil, false},
		{"InTx none, step none", 0, nil, false},
		{"InTx 30s, step 5s", 30 * time.Second, []dbop.Decorator{dbop.WithTimeout(5 * time.Second)}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			if c.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.deadline)
				defer cancel()
			}
			ctx = hotlock.WithServerDeadline(ctx, time.Now().Add(50*time.Millisecond))
			var got []string
			op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				time.Sleep(60 * time.Millisecond) // late in the attempt: the server deadline has passed
				log.Reset()
				_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
					_, err := tx.Exec(ctx, "SELECT 1")
					return 0, err
				}).With(append(append([]dbop.Decorator{dbop.WithRetry(retryAtOnce)}, c.step...), pgxdb.InSavepoint(tx))...).Run(ctx)
				got = log.Log()
				return err
			})
			if _, err := op.Run(ctx); err != nil {
				t.Fatalf("Run: %v (%v)", err, got)
			}
			sets := slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "set_config") })
			if sets != c.sets {
				t.Errorf("sent %q; want set_config: %v", got, c.sets)
			}
			if !c.sets {
				checkLog(t, []string{`SAVEPOINT "dbop_sp_1"`, "SELECT 1", `RELEASE SAVEPOINT "dbop_sp_1"`}, got)
			}
		})
	}
}

// A failed attempt's limits are undone by its ROLLBACK TO SAVEPOINT: no
// restore goes out on the aborted transaction; a panicking step's are too,
// and after the recovered panic the caller's transaction has the limits it
// had before.
func TestSavepointStepLimitsAfterAFailedOrPanickingAttempt(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 1, traced(&log))
	var before, afterFail, afterPanic string
	var failLog []string
	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		before = showLimits(ctx, t, tx)
		log.Reset()
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			_, err := tx.Exec(ctx, "SELECT 1/0")
			return 0, err
		}).With(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(5*time.Second), pgxdb.InSavepoint(tx)).Run(ctx)
		if pgCode(err) != "22012" {
			t.Errorf("the step returned %v, want 22012", err)
		}
		failLog = log.Log()
		afterFail = showLimits(ctx, t, tx)
		func() {
			defer func() {
				if r := recover(); r != "step" {
					t.Errorf("recovered %v", r)
				}
			}()
			_, _ = dbop.Op[int](func(ctx context.Context) (int, error) {
				if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
					return 0, err
				}
				panic("step")
			}).With(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(5*time.Second), pgxdb.InSavepoint(tx)).Run(ctx)
		}()
		afterPanic = showLimits(ctx, t, tx)
		return nil
	})
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if afterFail != before || afterPanic != before {
		t.Errorf("limits before %s, after the failed step %s, after the panic %s", before, afterFail, afterPanic)
	}
	for _, s := range failLog {
		if strings.Contains(s, "25P02") {
			t.Errorf("sent on the aborted transaction: %q (log %q)", s, failLog)
		}
	}
	if i := slices.Index(failLog, "SELECT 1/0 -> 22012"); i < 0 || i+1 >= len(failLog) || failLog[i+1] != `ROLLBACK TO SAVEPOINT "dbop_sp_1"` {
		t.Errorf("sent %q; want the failed statement followed by the ROLLBACK TO alone", failLog)
	}
	if !slices.ContainsFunc(failLog, func(s string) bool { return strings.Contains(s, "set_config") }) {
		t.Errorf("sent %q: the step's limits were not set", failLog)
	}
}
