package pgxdb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// A per-attempt dbop.WithTimeout between the retry and InSavepoint, while
// a rival transaction holds the step's row for longer than the timeout:
// InSavepoint sets statement_timeout and lock_timeout from the attempt's
// deadline, so the server ends the lock wait (55P03), the step is rolled
// back to its savepoint and retried in place once the rival lets go, the
// caller's connection stays open and the transaction runs once. Without
// the limits the deadline fired during the lock wait, pgx closed the
// connection, and the whole transaction ran again (found by a review). A
// LockTimeout longer than the deadline makes no difference: it is lowered.
func TestSavepointStepDeadlineBecomesServerLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []pgxdb.SavepointOption
	}{
		{"InSavepoint(tx)", nil},
		{"InSavepoint(tx,LockTimeout(10s))", []pgxdb.SavepointOption{pgxdb.LockTimeout(10 * time.Second)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pool := newPool(t, 4)
			admin := newPool(t, 2)
			tbl := "pgxdb_sp_deadline"
			createTable(t, admin, tbl, "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")

			// The rival holds row 2 for 900 ms, several attempts' timeouts.
			rival, err := admin.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			exec(t, rival, "UPDATE "+tbl+" SET v = v + 100 WHERE id = 2")
			released := make(chan struct{})
			go func() {
				defer close(released)
				time.Sleep(900 * time.Millisecond)
				_ = rival.Rollback(context.Background())
			}()

			var owners, steps atomic.Int32
			var codes []string
			var closed bool
			var limitsBefore, limitsAfter string
			op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				owners.Add(1)
				limitsBefore = showLimits(ctx, t, tx)
				if _, err := tx.Exec(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1"); err != nil {
					return err
				}
				step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
					steps.Add(1)
					tag, err := tx.Exec(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 2")
					return tag.RowsAffected(), err
				})
				n, err := step.With(
					dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(20),
						dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { codes = append(codes, pgCode(e.Err)) })),
					dbop.WithTimeout(150*time.Millisecond),
					pgxdb.InSavepoint(tx, c.opts...),
				).Run(ctx)
				closed = tx.Conn().IsClosed()
				if err != nil {
					return err
				}
				if n != 1 {
					return fmt.Errorf("the step updated %d rows", n)
				}
				// The step's limits were set back, and the transaction is usable.
				limitsAfter = showLimits(ctx, t, tx)
				return nil
			})
			_, err = op.With(dbop.WithRetry(dbop.Constant(10*time.Millisecond), dbop.MaxAttempts(3))).Run(t.Context())
			<-released
			if err != nil {
				t.Fatalf("Run: %v (owners %d, steps %d, retried on %v, connection closed: %v)", err, owners.Load(), steps.Load(), codes, closed)
			}
			if owners.Load() != 1 || closed {
				t.Errorf("the owner ran %d times, the connection closed: %v; want once, open", owners.Load(), closed)
			}
			// The fault fired: the first attempt waited for the rival's lock
			// and the server ended the wait before the deadline.
			if len(codes) == 0 || slices.ContainsFunc(codes, func(c string) bool { return c != "55P03" && c != "57014" }) {
				t.Errorf("retried on %v; want server timeouts (55P03) while the rival held the row", codes)
			}
			if int(steps.Load()) != len(codes)+1 {
				t.Errorf("the step ran %d times for %d retries", steps.Load(), len(codes))
			}
			if limitsAfter != limitsBefore {
				t.Errorf("after the step %s, before it %s", limitsAfter, limitsBefore)
			}
			if v1, v2 := queryInt(t, admin, "SELECT v FROM "+tbl+" WHERE id = 1"), queryInt(t, admin, "SELECT v FROM "+tbl+" WHERE id = 2"); v1 != 1 || v2 != 1 {
				t.Errorf("v1 = %d, v2 = %d; want 1, 1", v1, v2)
			}
		})
	}
}

// With no deadline and no settings, InSavepoint sends nothing but the
// savepoint statements.
func TestSavepointWithoutDeadlineSendsNoSettings(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 1, traced(&log))
	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		log.Reset()
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			_, err := tx.Exec(ctx, "SELECT 1")
			return 0, err
		}).With(dbop.WithRetry(retryAtOnce), pgxdb.InSavepoint(tx)).Run(ctx)
		return err
	})
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := log.Log()
	checkLog(t, []string{`SAVEPOINT "dbop_sp_1"`, "SELECT 1", `RELEASE SAVEPOINT "dbop_sp_1"`, "commit"}, got)
	for _, s := range got {
		if strings.Contains(s, "set_config") {
			t.Errorf("sent %q", s)
		}
	}
}
