package sqldb_test

// Review B: live compositions on MariaDB through database/sql that the
// compose_mariadb_live_test.go scenes do not cover. Every fault is a real
// 1213 (the heavyLocker of mariadb_deadlock_test.go) or a real 1205.

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/google/go-cmp/cmp"
)

// rbHot is a one-row table another connection holds FOR UPDATE until
// released: a statement on that row inside the operation fails with a real
// 1205 after innodb_lock_wait_timeout (1 s, from sqldb.LockTimeout).
type rbHot struct {
	tbl     string
	blocker *sql.Conn
	once    sync.Once
}

func newRBHot(t *testing.T, db *sql.DB, name string) *rbHot {
	t.Helper()
	h := &rbHot{tbl: table(t, db, mdbTable(name), "(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")}
	mustExec(t, db, "INSERT INTO "+h.tbl+" VALUES (1, 0)")
	h.blocker = conn(t, db)
	mustExec(t, h.blocker, "BEGIN")
	_ = scalar[int](t, h.blocker, "SELECT n FROM "+h.tbl+" WHERE id = 1 FOR UPDATE")
	t.Cleanup(h.release)
	return h
}

func (h *rbHot) release() {
	h.once.Do(func() { _, _ = h.blocker.ExecContext(context.Background(), "ROLLBACK") })
}

// TestMariaDBSwallowedDeadlockThenAnotherError: InTx's function
// swallows the 1213 of a "best effort" savepoint step (as S5b does), goes
// on writing C, and then a later statement fails with a real, retryable
// 1205, which it returns. InTx turned only "returned nil after the doom"
// into an Ambiguous error; a review found that with another error
// returned, InTx rolled back, marked it released, and the retry around it
// ran the whole function again: C, which MariaDB committed on its own after
// the 1213 (docs/backends.md §3.2), was applied twice, and Run reported
// success. An error other than the doom's own, after the doom, is now
// Ambiguous too.
func TestMariaDBSwallowedDeadlockThenAnotherError(t *testing.T) {
	t.Run("swallow, write, later 1205", func(t *testing.T) {
		s := newMDBScene(t, "rb_swr", mdbDeadlock)
		hot := newRBHot(t, s.db, "rb_swr_hot")
		var swallowed []error
		var outer recorder
		attempts := 0
		op := sqldb.InTx(s.db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			attempts++
			if err := s.write(ctx, tx, "A"); err != nil {
				return 0, err
			}
			if _, err := s.step(tx).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx); err != nil {
				swallowed = append(swallowed, err) // a best-effort step
			}
			if err := s.write(ctx, tx, "C"); err != nil {
				return 0, err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE "+hot.tbl+" SET n = n + 1 WHERE id = 1"); err != nil {
				return 0, err // 1205 on the first attempt
			}
			return attempts, nil
		}, sqldb.LockTimeout(time.Second))
		var n int
		err := s.run(t, func(ctx context.Context) (err error) {
			n, err = op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
				dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { outer.add(e.Err); s.look(); hot.release() }))).Run(ctx)
			return err
		})
		t.Logf("Run = %d, %v (verdict %v); attempts %d; swallowed %v; retried %v; seen between attempts %q",
			n, err, dbop.VerdictOf(err), attempts, swallowed, outer.all(), s.seen)
		if len(swallowed) != 1 || mysqlNumber(swallowed[0]) != 1213 {
			t.Fatalf("the function swallowed %v; want one 1213 (the fault did not fire)", swallowed)
		}
		if dbop.VerdictOf(err) != dbop.Ambiguous || len(outer.all()) != 0 {
			t.Errorf("Run = %v (verdict %v), retried %v; want Ambiguous, not retried: C was committed on its own after the swallowed 1213",
				err, dbop.VerdictOf(err), outer.all())
		}
		if got := s.logCounts(t); got["C"] != 1 {
			t.Errorf("log rows by kind %v: want C once (committed on its own), never twice", got)
		}
	})
}

// TestMariaDBHandBegunRetryAroundThen: a transaction begun by hand, its
// context marked with dbop.WithinTx, and a retry around a Then whose first
// step writes B with a plain statement and whose second is a savepoint
// step that meets a 1213: the retry inside refuses, the caller rolls back,
// and its own retry runs everything again, each row once. (Unmarked, the
// retry cannot tell that it runs inside the transaction, which doc.go
// names as the exception: it ran the Then again in the transaction
// MariaDB had rolled back, and B was committed on its own.)
func TestMariaDBHandBegunRetryAroundThen(t *testing.T) {
	for _, marked := range []bool{true} {
		t.Run(fmt.Sprintf("WithinTx=%v", marked), func(t *testing.T) {
			s := newMDBScene(t, fmt.Sprintf("rb_hand_then_%v", marked), mdbDeadlock)
			var inner, outer recorder
			callerRuns, bRuns := 0, 0
			caller := dbop.Op[int](func(ctx context.Context) (int, error) {
				callerRuns++
				tx, err := s.db.BeginTx(ctx, nil)
				if err != nil {
					return 0, err
				}
				tctx := ctx
				if marked {
					tctx = dbop.WithinTx(ctx)
				}
				seq := dbop.Then(dbop.Op[int](func(ctx context.Context) (int, error) {
					bRuns++
					return 0, s.write(ctx, tx, "B")
				}), func(ctx context.Context, _ int) (int, error) {
					return s.step(tx).With(sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
				})
				if _, err := seq.With(s.retry(&inner)).Run(tctx); err != nil {
					s.look()
					_ = tx.Rollback()
					return 0, err
				}
				if err := s.write(ctx, tx, "C"); err != nil {
					_ = tx.Rollback()
					return 0, err
				}
				return callerRuns, tx.Commit()
			})
			err := s.run(t, func(ctx context.Context) error {
				_, err := caller.With(s.retry(&outer), dbop.ClassifyBy(mysqldb.Classifier)).Run(ctx)
				return err
			})
			t.Logf("Run: %v; caller ran %d, B written %d times; inner retried %v; outer retried %v; seen %q",
				err, callerRuns, bRuns, inner.all(), outer.all(), s.seen)
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			if got := inner.all(); len(got) != 0 {
				t.Errorf("the retry inside the caller's transaction retried %v after the 1213 (the transaction MariaDB had rolled back)", got)
			}
			if diff := cmp.Diff(map[string]int{"B": 1, "step": 1, "C": 1}, s.logCounts(t)); diff != "" {
				t.Errorf("log rows by kind (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMariaDBRetryAroundAThenOfAPlainAndASavepointStep: inside sqldb.InTx,
// with the context it handed over, a retry around a Then whose first step
// writes a log row with a plain statement and whose second is a savepoint
// step that meets a real 1205 once. A review found that the retry took the
// savepoint scope's certificate, which covers the step alone, for the whole
// Then, and ran the plain first step again in the same transaction, which
// committed its row twice (invariants 2 and 8; see the pgxdb test of the
// same name). The retry now returns the error to InTx's function, which
// returns it: InTx rolls back.
func TestMariaDBRetryAroundAThenOfAPlainAndASavepointStep(t *testing.T) {
	db := openMariaDB(t)
	log := table(t, db, mdbTable("rb_plain_log"), "(id INT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(20) NOT NULL) ENGINE=InnoDB")
	hot := newRBHot(t, db, "rb_plain_hot")
	aRuns, bRuns := 0, 0
	op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		a := dbop.Op[int](func(ctx context.Context) (int, error) {
			aRuns++
			_, err := tx.ExecContext(ctx, "INSERT INTO "+log+" (k) VALUES ('A')")
			return 1, err
		})
		b := dbop.Op[int](func(ctx context.Context) (int, error) {
			bRuns++
			_, err := tx.ExecContext(ctx, "UPDATE "+hot.tbl+" SET n = n + 1 WHERE id = 1")
			if bRuns == 1 {
				hot.release()
			}
			return 2, err
		}).With(sqldb.InSavepoint(tx, mysqldb.MariaDB))
		return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) }).
			With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
	}, sqldb.LockTimeout(time.Second))
	v, err := op.Run(t.Context())
	nA := scalar[int](t, db, "SELECT COUNT(*) FROM "+log+" WHERE k = 'A'")
	t.Logf("Run = %d, %v; A ran %d times, B %d; committed A rows: %d", v, err, aRuns, bRuns, nA)
	if bRuns != 1 || aRuns != 1 || mysqlNumber(err) != 1205 {
		t.Fatalf("Run = %v; A ran %d times, B %d; want the 1205 returned to InTx after one run of each (the fault did not fire, or the retry ran the Then again)", err, aRuns, bRuns)
	}
	if nA != 0 {
		t.Errorf("%d 'A' rows committed; want none: InTx rolled back", nA)
	}
}

// TestMariaDBSwallowedDeadlockUnderADeadline is S5b
// (TestLiveComposeMariaDBSwallowedRetriedDeadlock) with a per-attempt
// WithTimeout after the retry inside InTx's function, whose deadline fires
// after the server answered the step with 1213 and before the step
// returned (modelled by a step that returns its error once its context is
// done). The retry refuses, as in S5b, but a review found that it left a
// *TimeoutError alone, so the transaction was not marked doomed: the
// function swallowed the error and wrote C (autocommitted: MariaDB ended
// the transaction at the 1213), returned nil, and InTx "committed" and
// reported success, A and the step lost. A deadline's error that wraps the
// server's answer now dooms the transaction as the answer would, and InTx
// returns the Ambiguous error S5b promises.
func TestMariaDBSwallowedDeadlockUnderADeadline(t *testing.T) {
	s := newMDBScene(t, "rb_swdl", mdbDeadlock)
	var inner, outer recorder
	var swallowed []error
	attempts := 0
	op := sqldb.InTx(s.db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		attempts++
		if err := s.write(ctx, tx, "A"); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			n, err := s.step(tx)(ctx)
			if err != nil {
				<-ctx.Done() // the deadline fires before the error is returned
			}
			return n, err
		})
		if _, err := step.With(s.retry(&inner), dbop.WithTimeout(2*time.Second)).Run(ctx); err != nil {
			swallowed = append(swallowed, err) // a "best effort" step
		}
		return attempts, s.write(ctx, tx, "C")
	})
	err := s.run(t, func(ctx context.Context) (err error) {
		_, err = op.With(s.retry(&outer)).Run(ctx)
		return err
	})
	counts := s.logCounts(t)
	t.Logf("Run: %v (verdict %v); attempts %d; swallowed %v; retried inside %v, around %v; log %v",
		err, dbop.VerdictOf(err), attempts, swallowed, inner.all(), outer.all(), counts)
	if len(swallowed) != 1 || mysqlNumber(swallowed[0]) != 1213 {
		t.Fatalf("the function swallowed %v; want one 1213", swallowed)
	}
	if err == nil {
		t.Errorf("Run returned success; log %v: A and the step were rolled back by the 1213, C committed on its own (S5b returns Ambiguous)", counts)
	}
}

// TestMariaDBKilledInAThenStep: inside sqldb.InTx, a retry around a
// Then of two savepoint steps; the second step's connection is KILLed
// from another connection on its first run. The function returns the
// error ("return") or swallows it and writes once more ("swallow"). No
// retry inside runs again on the dead transaction, nothing is committed
// on its own, and the row lands once (return) or the error is Ambiguous
// (swallow).
func TestMariaDBKilledInAThenStep(t *testing.T) {
	for _, swallow := range []bool{false, true} {
		t.Run(fmt.Sprintf("swallow=%v", swallow), func(t *testing.T) {
			db := openMariaDB(t)
			log := table(t, db, mdbTable(fmt.Sprintf("rb_kill_%v", swallow)), "(id INT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(20) NOT NULL) ENGINE=InnoDB")
			killed := false
			var inner, outer recorder
			attempts := 0
			write := func(ctx context.Context, tx *sql.Tx, k string) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO "+log+" (k) VALUES (?)", k)
				return err
			}
			op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
				attempts++
				if err := write(ctx, tx, "A"); err != nil {
					return 0, err
				}
				c := dbop.Op[int](func(ctx context.Context) (int, error) { return 0, write(ctx, tx, "C") }).With(sqldb.InSavepoint(tx, mysqldb.MariaDB))
				b := dbop.Op[int](func(ctx context.Context) (int, error) {
					if !killed {
						killed = true
						var id int64
						if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
							return 0, err
						}
						if _, err := db.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil { //dbopvet:ignore the fault: another connection kills the transaction's
							return 0, err
						}
					}
					return 0, write(ctx, tx, "B")
				}).With(sqldb.InSavepoint(tx, mysqldb.MariaDB))
				_, err := dbop.Then(c, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) }).
					With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), inner.option())).Run(ctx)
				if err != nil && !swallow {
					return 0, err
				}
				return attempts, write(ctx, tx, "D")
			})
			v, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), outer.option()), dbop.ClassifyBy(mysqldb.Classifier)).Run(t.Context())
			rows := map[string]int{}
			r, qerr := db.QueryContext(t.Context(), "SELECT k, COUNT(*) FROM "+log+" GROUP BY k")
			if qerr != nil {
				t.Fatal(qerr)
			}
			for r.Next() {
				var k string
				var n int
				if err := r.Scan(&k, &n); err != nil {
					t.Fatal(err)
				}
				rows[k] = n
			}
			r.Close()
			t.Logf("Run = %d, %v (verdict %v); attempts %d; inner retried %v; outer retried %v; rows %v", v, err, dbop.VerdictOf(err), attempts, inner.all(), outer.all(), rows)
			if len(inner.all()) != 0 {
				t.Errorf("the retry inside the transaction retried %v", inner.all())
			}
			if !swallow && (err != nil || !cmp.Equal(rows, map[string]int{"A": 1, "B": 1, "C": 1, "D": 1})) {
				t.Errorf("want success with A, B, C, D once")
			}
			if swallow && err == nil && !cmp.Equal(rows, map[string]int{"A": 1, "B": 1, "C": 1, "D": 1}) {
				t.Errorf("success with rows %v; want A, B, C, D once", rows)
			}
		})
	}
}
