package gormdb_test

// A function that goes on after MariaDB ended its transaction at a
// deadlock, and then returns the deadlock: the statements it ran after the
// 1213 were committed on their own (docs/backends.md §3.2), so running the
// transaction again would apply them twice. InTx's pool sees them go out
// after the doom and returns an Ambiguous error instead of the 1213 the
// function returned. Live, on the heavy-transaction deadlock of gcmpScene.

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// The function's step meets a 1213, in GORM's nested tx.Transaction (whose
// ROLLBACK TO SAVEPOINT then fails) or on tx itself. The function then
// writes C ("record the outcome, then report the step's error"), which
// MariaDB commits at once, and returns the 1213 it got. The retry around
// InTx must not run the function again: Run is Ambiguous, with the 1213 in
// it, after one attempt, and C is committed once, A and the step not at
// all.
func TestMariaDBDeadlockReturnedAfterGoingOnIsAmbiguous(t *testing.T) {
	for _, tc := range []struct {
		name   string
		table  string // the scene's
		nested bool   // the step runs in tx.Transaction
	}{
		{"nested tx.Transaction", "wenton_nested", true},
		{"on tx", "wenton_tx", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newGcmpSceneWith(t, tc.table, gcmpDeadlock, nil)
			var outer gcmpRecorder
			attempts := 0
			op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				attempts++
				if err := s.write(ctx, tx, "A"); err != nil {
					return 0, err
				}
				var err error
				if tc.nested {
					err = tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
						_, err := s.step(tx2).Run(ctx)
						return err
					})
				} else {
					_, err = s.step(tx).Run(ctx)
				}
				if werr := s.write(ctx, tx, "C"); werr != nil {
					return 0, werr
				}
				return attempts, err
			}, mariadb)
			err := s.run(t, func(ctx context.Context) (err error) {
				_, err = op.With(s.retry(&outer)).Run(ctx)
				return err
			})
			counts := rbLogCounts(t, s)
			t.Logf("Run = %v (%v), %d attempts, log rows %v", err, dbop.VerdictOf(err), attempts, counts)
			s.mu.Lock()
			stepErrs := s.stepErrs
			s.mu.Unlock()
			if len(stepErrs) != 1 || !isMySQL(stepErrs[0], 1213) {
				t.Fatalf("the step failed with %v, want one 1213: the fault did not fire", stepErrs)
			}
			if v := dbop.VerdictOf(err); v != dbop.Ambiguous || !isMySQL(err, 1213) {
				t.Errorf("Run = %v (%v), want ambiguous, with the 1213 in it", err, v)
			}
			if attempts != 1 || len(outer.all()) != 0 {
				t.Errorf("the function ran %d times, the retry around InTx retried %v; want once, nothing", attempts, outer.all())
			}
			if want := map[string]int{"C": 1}; len(counts) != len(want) || counts["C"] != 1 {
				t.Errorf("log rows %v, want %v: A and the step rolled back by the 1213, C committed on its own once", counts, want)
			}
		})
	}
}

// The control: the function returns the nested transaction's 1213 at
// once. GORM sent ROLLBACK TO SAVEPOINT after the 1213, which writes
// nothing and does not count as going on: the retry around InTx runs the
// transaction again, which commits A and the step once each.
func TestMariaDBDeadlockReturnedFromNestedTransactionIsRetried(t *testing.T) {
	s := newGcmpSceneWith(t, "wenton_control", gcmpDeadlock, nil)
	var outer gcmpRecorder
	attempts := 0
	op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		attempts++
		if err := s.write(ctx, tx, "A"); err != nil {
			return 0, err
		}
		return attempts, tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
			_, err := s.step(tx2).Run(ctx)
			return err
		})
	}, mariadb)
	err := s.run(t, func(ctx context.Context) (err error) {
		_, err = op.With(s.retry(&outer)).Run(ctx)
		return err
	})
	if err != nil || attempts != 2 {
		t.Errorf("Run = %v after %d attempts, want success after 2", err, attempts)
	}
	outer.want(t, 1, 1213, dbop.RetryTransaction)
	s.check(t, "A", "step")
}
