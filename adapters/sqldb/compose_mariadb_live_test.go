package sqldb_test

// Live compositions on MariaDB through database/sql: the shapes of
// scopes/compose_test.go (the invariants of the package documentation of
// github.com/dbop-go/dbop), run against the server's own errors instead of
// a model. Every fault is real and forced with channels or a lock another
// connection holds, never with a sleep:
//
//   - 1213, a deadlock: the heavyLocker of mariadb_deadlock_test.go holds
//     row 2, the step holds row 1, the locker asks for row 1 and the step
//     for row 2. MariaDB rolls the step's whole transaction back, and a
//     statement run afterwards on that connection autocommits
//     (TestMariaDBDeadlockEndsTransaction): a retry in the wrong place
//     commits part of the work on its own.
//   - 1205, a lock wait timeout: another connection holds row 1 with
//     SELECT … FOR UPDATE while the step updates it, with
//     innodb_lock_wait_timeout = 1. MariaDB rolls back the statement only.
//
// Each test checks that its fault fired (the step's error numbers), what
// another connection could see while the operation was between attempts
// (nothing: no autocommitted row), and that every write landed exactly once.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
)

// mdbTable names a table of this file: sqldb_cmp<pid>_<name>. The process
// id keeps two runs of this package on one server (a developer's and an
// editor's, say) off each other's tables.
func mdbTable(name string) string {
	return fmt.Sprintf("sqldb_cmp%x_%s", os.Getpid(), name)
}

// mdbFault is the server error a scene's step runs into.
type mdbFault struct {
	name    string
	number  uint16
	verdict dbop.Verdict // what mysqldb.Classifier says of it
}

var (
	mdbDeadlock = mdbFault{"1213", 1213, dbop.RetryTransaction}
	mdbLockWait = mdbFault{"1205", 1205, dbop.RetryStatement}
)

// mdbScene is one test's tables, its fault and what the operation did.
// items holds rows 1 and 2; log gets one row per write the test makes
// ('A' before the step, 'step' in it, 'C' after it), so that counting them
// shows a write lost, doubled, or committed on its own.
type mdbScene struct {
	db         *sql.DB
	fault      mdbFault
	items, log string

	// 1213: the heavy transaction, and the step's first run telling the
	// test that it holds row 1.
	heavy     *heavyLocker
	heavyID   int64
	heavyDone bool
	holdsRow1 chan struct{}
	proceed   chan struct{}

	// 1205: the connection holding row 1, released once.
	blocker    *sql.Conn
	release    sync.Once
	releaseErr error

	mu       sync.Mutex
	stepRuns int
	stepErrs []error
	seen     [][]string // what another connection saw at each look
}

// newMDBScene creates the tables <name>_items and _log (see mdbTable) and arms
// the fault: for 1213 a heavy transaction already holds row 2, for 1205
// another connection holds row 1.
func newMDBScene(t *testing.T, name string, fault mdbFault) *mdbScene {
	t.Helper()
	db := openMariaDB(t)
	s := &mdbScene{
		db:        db,
		fault:     fault,
		items:     table(t, db, mdbTable(name+"_items"), "(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB"),
		log:       table(t, db, mdbTable(name+"_log"), "(id INT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(20) NOT NULL) ENGINE=InnoDB"),
		holdsRow1: make(chan struct{}),
		proceed:   make(chan struct{}),
	}
	mustExec(t, db, "INSERT INTO "+s.items+" VALUES (1, 0), (2, 0)")
	switch fault {
	case mdbDeadlock:
		s.heavy = startHeavyLocker(t, db, s.items)
		s.heavyID = scalar[int64](t, s.heavy.c, "SELECT CONNECTION_ID()")
		t.Cleanup(func() {
			if !s.heavyDone {
				// A failed test left the heavy transaction open; its locks
				// would block the DROP TABLE forever.
				_, _ = db.ExecContext(context.Background(), fmt.Sprintf("KILL %d", s.heavyID))
			}
		})
	case mdbLockWait:
		s.blocker = conn(t, db)
		mustExec(t, s.blocker, "BEGIN")
		_ = scalar[int](t, s.blocker, "SELECT n FROM "+s.items+" WHERE id = 1 FOR UPDATE")
		t.Cleanup(func() { s.releaseBlocker() })
	}
	return s
}

// releaseBlocker ends the transaction holding row 1, once. It is called
// from OnRetry hooks, on the operation's goroutine.
func (s *mdbScene) releaseBlocker() {
	if s.blocker == nil {
		return
	}
	s.release.Do(func() {
		_, s.releaseErr = s.blocker.ExecContext(context.Background(), "ROLLBACK")
	})
}

// write inserts one log row k in tx.
func (s *mdbScene) write(ctx context.Context, tx *sql.Tx, k string) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO "+s.log+" (k) VALUES (?)", k)
	return err
}

// step returns the step: it logs 'step' and increments row 1, and for
// 1213 then row 2. Its first run is the one that meets the fault; for 1213
// it tells the test it holds row 1 and waits until the heavy transaction
// has asked for it.
func (s *mdbScene) step(tx *sql.Tx) dbop.Op[int] {
	return func(ctx context.Context) (int, error) {
		s.mu.Lock()
		s.stepRuns++
		run := s.stepRuns
		s.mu.Unlock()
		err := s.stepBody(ctx, tx, run)
		if err != nil {
			s.mu.Lock()
			s.stepErrs = append(s.stepErrs, err)
			s.mu.Unlock()
		}
		return run, err
	}
}

func (s *mdbScene) stepBody(ctx context.Context, tx *sql.Tx, run int) error {
	if err := s.write(ctx, tx, "step"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE "+s.items+" SET n = n + 1 WHERE id = 1"); err != nil {
		return err
	}
	if s.fault != mdbDeadlock {
		return nil
	}
	if run == 1 {
		s.holdsRow1 <- struct{}{}
		<-s.proceed
	}
	_, err := tx.ExecContext(ctx, "UPDATE "+s.items+" SET n = n + 1 WHERE id = 2")
	return err
}

// look records what another connection sees now: every log row, and every
// item the operation changed (the heavy transaction adds 10). Between the
// attempts of a correct composition it sees nothing. It runs on the
// operation's goroutine, so it reports errors instead of failing the test.
func (s *mdbScene) look() {
	var got []string
	rows, err := s.db.QueryContext(context.Background(),
		"SELECT CONCAT('log ', k) FROM "+s.log+" UNION ALL SELECT CONCAT('item ', id, ': ', n) FROM "+s.items+" WHERE n % 10 <> 0")
	if err == nil {
		for rows.Next() {
			var r string
			if err = rows.Scan(&r); err != nil {
				break
			}
			got = append(got, r)
		}
		err = errors.Join(err, rows.Err(), rows.Close())
	}
	if err != nil {
		got = append(got, "error: "+err.Error())
	}
	s.mu.Lock()
	s.seen = append(s.seen, got)
	s.mu.Unlock()
}

// onRetry returns an OnRetry option that records the retried error in r,
// looks at the tables from another connection, and releases the 1205
// blocker, so that the next attempt can take row 1.
func (s *mdbScene) onRetry(r *recorder) dbop.RetryOption {
	return dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		r.add(e.Err)
		s.look()
		s.releaseBlocker()
	})
}

// run runs op on a goroutine of its own and, for 1213, closes the cycle:
// once the step holds row 1, the heavy transaction asks for it, the step
// asks for row 2, and the lighter step's transaction is the victim. The
// heavy transaction then gets row 1 and commits.
func (s *mdbScene) run(t *testing.T, op func(context.Context) error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op(t.Context()) }()
	if s.fault != mdbDeadlock {
		return <-done
	}
	select {
	case <-s.holdsRow1:
	case err := <-done:
		t.Fatalf("the operation ended (%v) before its step held row 1", err)
	}
	s.heavy.requestRow1()
	close(s.proceed)
	s.heavy.commit(t)
	s.heavyDone = true
	return <-done
}

// check checks that the fault fired once, in the step, that another
// connection never saw a write between attempts (and looked at least
// once), and that the log holds each of want exactly once, nothing else.
func (s *mdbScene) check(t *testing.T, want ...string) {
	t.Helper()
	if s.releaseErr != nil {
		t.Errorf("releasing row 1: %v", s.releaseErr)
	}
	s.mu.Lock()
	stepErrs, seen := s.stepErrs, s.seen
	s.mu.Unlock()
	if len(stepErrs) != 1 {
		t.Errorf("the step failed %d times (%v), want once", len(stepErrs), stepErrs)
	}
	for _, err := range stepErrs {
		if mysqlNumber(err) != s.fault.number {
			t.Errorf("the step failed with %v, want server error %d", err, s.fault.number)
		}
	}
	if len(seen) == 0 {
		t.Errorf("nobody looked at the tables between attempts")
	}
	for i, got := range seen {
		if len(got) != 0 {
			t.Errorf("look %d from another connection, between attempts: %q; want nothing (committed on its own)", i+1, got)
		}
	}
	counts := s.logCounts(t)
	wantCounts := map[string]int{}
	for _, k := range want {
		wantCounts[k] = 1
	}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("log rows by kind (-want +got):\n%s", diff)
	}
	wantItems := [2]int{1, 0}
	if s.fault == mdbDeadlock {
		wantItems = [2]int{11, 11} // the heavy transaction's 10, the step's 1
	}
	for i, w := range wantItems {
		if n := scalar[int](t, s.db, "SELECT n FROM "+s.items+" WHERE id = ?", i+1); n != w {
			t.Errorf("item %d: n = %d, want %d", i+1, n, w)
		}
	}
}

// logCounts returns the log's rows by kind.
func (s *mdbScene) logCounts(t *testing.T) map[string]int {
	t.Helper()
	counts := map[string]int{}
	rows, err := s.db.QueryContext(t.Context(), "SELECT k, COUNT(*) FROM "+s.log+" GROUP BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		counts[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// retry is the retry every test uses, recording into r.
func (s *mdbScene) retry(r *recorder) dbop.Decorator {
	return dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), s.onRetry(r))
}

// inTxOpts returns InTx's options: for 1205, innodb_lock_wait_timeout = 1.
func (s *mdbScene) inTxOpts() []sqldb.TxOption {
	if s.fault == mdbLockWait {
		return []sqldb.TxOption{sqldb.LockTimeout(time.Second)}
	}
	return nil
}

// S1, S2: a retry inside InTx's function, with InTx's context, around a
// step with no savepoint, with and without ClassifyBy. The step's error is
// not retried there (after 1213 the transaction is gone, after 1205 no
// savepoint undid the statement); InTx rolls back and the retry around it
// runs the whole transaction again. The bug this guards against: row A
// lost, the step applied in autocommit, and a nil error.
func TestLiveComposeMariaDBRetryInsideInTx(t *testing.T) {
	for _, fault := range []mdbFault{mdbDeadlock, mdbLockWait} {
		for _, classify := range []bool{false, true} {
			name := fmt.Sprintf("%s/classify=%v", fault.name, classify)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := newMDBScene(t, fmt.Sprintf("inner_%s_%v", fault.name, classify), fault)
				var inner, outer recorder
				attempts := 0
				op := sqldb.InTx(s.db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
					attempts++
					if err := s.write(ctx, tx, "A"); err != nil {
						return 0, err
					}
					ds := []dbop.Decorator{s.retry(&inner)}
					if classify {
						ds = append(ds, dbop.ClassifyBy(mysqldb.Classifier))
					}
					if _, err := s.step(tx).With(ds...).Run(ctx); err != nil {
						return 0, err
					}
					return attempts, s.write(ctx, tx, "C")
				}, s.inTxOpts()...)
				var n int
				err := s.run(t, func(ctx context.Context) (err error) {
					n, err = op.With(s.retry(&outer)).Run(ctx)
					return err
				})
				if err != nil || n != 2 {
					t.Errorf("Run = %d, %v; want 2, nil (the whole transaction run again)", n, err)
				}
				s.check(t, "A", "step", "C")
				if got := inner.all(); len(got) != 0 {
					t.Errorf("the retry inside the transaction retried %v", got)
				}
				wantMySQLErrors(t, outer.all(), 1, fault.number, fault.verdict)
			})
		}
	}
}

// S3: the README's pattern on a transaction begun by hand: WithRetry around
// InSavepoint, run with a plain context. A 1213 is not retried at the
// savepoint: the caller gets it, reachable with errors.As, and nothing was
// committed on its own (another connection looks before the caller rolls
// back); the caller's own retry around its whole begin…commit then commits
// everything once. A 1205 is rolled back to the savepoint and retried in
// place: the caller's earlier row is kept and the transaction runs once.
func TestLiveComposeMariaDBByHandSavepoint(t *testing.T) {
	for _, fault := range []mdbFault{mdbDeadlock, mdbLockWait} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			s := newMDBScene(t, "byhand_"+fault.name, fault)
			var src sqldb.Beginner = s.db
			if fault == mdbLockWait {
				// A transaction begun by hand gets no LockTimeout: the
				// caller sets the session's own, on a connection it pins.
				c := conn(t, s.db)
				mustExec(t, c, "SET SESSION innodb_lock_wait_timeout = 1")
				src = c
			}
			var inner, outer recorder
			var callerErrs []error
			attempts := 0
			caller := dbop.Op[int](func(ctx context.Context) (int, error) {
				attempts++
				tx, err := src.BeginTx(ctx, nil)
				if err != nil {
					return 0, err
				}
				if err := s.write(ctx, tx, "A"); err != nil {
					_ = tx.Rollback()
					return 0, err
				}
				_, err = s.step(tx).With(s.retry(&inner), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(context.Background())
				if err != nil {
					callerErrs = append(callerErrs, err)
					s.look() // before the rollback: nothing may be committed already
					_ = tx.Rollback()
					return 0, err
				}
				if err := s.write(ctx, tx, "C"); err != nil {
					_ = tx.Rollback()
					return 0, err
				}
				return attempts, tx.Commit()
			})
			var n int
			err := s.run(t, func(ctx context.Context) (err error) {
				n, err = caller.With(s.retry(&outer), dbop.ClassifyBy(mysqldb.Classifier)).Run(ctx)
				return err
			})
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			s.check(t, "A", "step", "C")
			switch fault {
			case mdbDeadlock:
				if n != 2 {
					t.Errorf("the caller's transaction ran %d times, want 2", n)
				}
				if got := inner.all(); len(got) != 0 {
					t.Errorf("the retry around the savepoint retried %v; a deadlock must reach the caller", got)
				}
				if len(callerErrs) != 1 {
					t.Fatalf("the caller got %d errors (%v), want 1", len(callerErrs), callerErrs)
				}
				var me *mysql.MySQLError
				if !errors.As(callerErrs[0], &me) || me.Number != 1213 {
					t.Errorf("the caller got %v; want an error reaching *mysql.MySQLError 1213", callerErrs[0])
				}
				wantMySQLErrors(t, outer.all(), 1, 1213, dbop.RetryTransaction)
			case mdbLockWait:
				if n != 1 {
					t.Errorf("the caller's transaction ran %d times, want 1", n)
				}
				if len(callerErrs) != 0 || len(outer.all()) != 0 {
					t.Errorf("the caller got %v and retried %v; want nothing", callerErrs, outer.all())
				}
				wantMySQLErrors(t, inner.all(), 1, 1205, dbop.RetryStatement)
			}
		})
	}
}

// S4: nested savepoints with a retry between them. A 1213 in the inner
// statement is retried by neither retry inside the transaction; the retry
// around InTx runs it all again. A 1205 is retried at the inner savepoint
// only, and the outer step's row 'B' is kept.
func TestLiveComposeMariaDBNestedSavepoints(t *testing.T) {
	for _, fault := range []mdbFault{mdbDeadlock, mdbLockWait} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			s := newMDBScene(t, "nested_"+fault.name, fault)
			var innermost, middle, outer recorder
			attempts, outerStepRuns := 0, 0
			op := sqldb.InTx(s.db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
				attempts++
				if err := s.write(ctx, tx, "A"); err != nil {
					return 0, err
				}
				outerStep := dbop.Op[int](func(ctx context.Context) (int, error) {
					outerStepRuns++
					if err := s.write(ctx, tx, "B"); err != nil {
						return 0, err
					}
					return s.step(tx).With(s.retry(&innermost), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
				})
				if _, err := outerStep.With(s.retry(&middle), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx); err != nil {
					return 0, err
				}
				return attempts, s.write(ctx, tx, "C")
			}, s.inTxOpts()...)
			var n int
			err := s.run(t, func(ctx context.Context) (err error) {
				n, err = op.With(s.retry(&outer)).Run(ctx)
				return err
			})
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			s.check(t, "A", "B", "step", "C")
			if got := middle.all(); len(got) != 0 {
				t.Errorf("the retry between the savepoints retried %v", got)
			}
			switch fault {
			case mdbDeadlock:
				if n != 2 || outerStepRuns != 2 {
					t.Errorf("transaction ran %d times, outer step %d; want 2 and 2", n, outerStepRuns)
				}
				if got := innermost.all(); len(got) != 0 {
					t.Errorf("the innermost retry retried %v; a deadlock must reach InTx", got)
				}
				wantMySQLErrors(t, outer.all(), 1, 1213, dbop.RetryTransaction)
			case mdbLockWait:
				if n != 1 || outerStepRuns != 1 {
					t.Errorf("transaction ran %d times, outer step %d; want 1 and 1", n, outerStepRuns)
				}
				if got := outer.all(); len(got) != 0 {
					t.Errorf("the retry around InTx retried %v", got)
				}
				wantMySQLErrors(t, innermost.all(), 1, 1205, dbop.RetryStatement)
			}
		})
	}
}

// S5: InTx's function swallows the 1213 of a step in a savepoint and
// returns nil. A later step in a savepoint of the same transaction refuses
// to run (it would autocommit), and InTx does not commit: it rolls back and
// returns an Ambiguous error naming the 1213. MariaDB ended the
// transaction at the 1213 and runs whatever the function sent afterwards
// on its own (docs/backends.md §3.2); the function went on, so InTx cannot
// know what it applied, and the retry around it, not Idempotent, does not
// run it again. Here nothing was applied.
func TestLiveComposeMariaDBSwallowedDeadlock(t *testing.T) {
	s := newMDBScene(t, "swallowed", mdbDeadlock)
	var inner, outer recorder
	var swallowed, refused []error
	attempts, laterRuns := 0, 0
	op := sqldb.InTx(s.db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		attempts++
		if err := s.write(ctx, tx, "A"); err != nil {
			return 0, err
		}
		if _, err := s.step(tx).With(s.retry(&inner), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx); err != nil {
			swallowed = append(swallowed, err)
		}
		later := dbop.Op[int](func(ctx context.Context) (int, error) {
			laterRuns++
			return 0, s.write(ctx, tx, "later")
		})
		if _, err := later.With(s.retry(&inner), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx); err != nil {
			refused = append(refused, err)
		}
		return attempts, nil // whatever happened
	})
	err := s.run(t, func(ctx context.Context) (err error) {
		_, err = op.With(s.retry(&outer)).Run(ctx)
		return err
	})
	wantSwallowed(t, s, err, attempts, map[string]int{})
	if len(swallowed) != 1 || mysqlNumber(swallowed[0]) != 1213 {
		t.Errorf("the function swallowed %v; want one 1213", swallowed)
	}
	if len(refused) != 1 || mysqlNumber(refused[0]) != 1213 || laterRuns != 0 {
		t.Errorf("the later step ran %d times and returned %v; want it refused with the 1213, never run", laterRuns, refused)
	}
	if got := append(inner.all(), outer.all()...); len(got) != 0 {
		t.Errorf("a retry retried %v", got)
	}
}

// wantSwallowed checks the outcome of a transaction whose function went on
// after MariaDB rolled it back: an Ambiguous error that names the 1213 and
// says so, one attempt, and the log rows want (what ran after the 1213,
// committed on its own, once).
func wantSwallowed(t *testing.T, s *mdbScene, err error, attempts int, want map[string]int) {
	t.Helper()
	if v := dbop.VerdictOf(err); v != dbop.Ambiguous || mysqlNumber(err) != 1213 || !strings.Contains(err.Error(), "returned nil after the server had rolled the transaction back") {
		t.Errorf("Run: %v (verdict %v); want an Ambiguous error naming the 1213 and the function that went on", err, v)
	}
	if attempts != 1 {
		t.Errorf("%d attempts, want 1: the retry must not run the function again", attempts)
	}
	if diff := cmp.Diff(want, s.logCounts(t)); diff != "" {
		t.Errorf("log rows by kind (-want +got):\n%s", diff)
	}
}

// S5b: the same without a savepoint: the step runs through a retry (and a
// classifier) with InTx's context, and its 1213 is refused there (the
// transaction is one MariaDB rolled back). The function swallows the error
// and writes once more, which MariaDB commits on its own at once. The
// retry dooms the transaction as it refuses, so InTx returns the Ambiguous
// error instead of reporting success with A and the step lost, and the
// retry around it does not write C a second time.
func TestLiveComposeMariaDBSwallowedRetriedDeadlock(t *testing.T) {
	s := newMDBScene(t, "swallowed_retried", mdbDeadlock)
	var inner, outer recorder
	var swallowed []error
	attempts := 0
	op := sqldb.InTx(s.db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		attempts++
		if err := s.write(ctx, tx, "A"); err != nil {
			return 0, err
		}
		if _, err := s.step(tx).With(s.retry(&inner), dbop.ClassifyBy(mysqldb.Classifier)).Run(ctx); err != nil {
			swallowed = append(swallowed, err) // a "best effort" step
		}
		return attempts, s.write(ctx, tx, "C")
	})
	err := s.run(t, func(ctx context.Context) (err error) {
		_, err = op.With(s.retry(&outer)).Run(ctx)
		return err
	})
	wantSwallowed(t, s, err, attempts, map[string]int{"C": 1})
	if len(swallowed) != 1 || mysqlNumber(swallowed[0]) != 1213 {
		t.Errorf("the function swallowed %v; want one 1213", swallowed)
	}
	if got := append(inner.all(), outer.all()...); len(got) != 0 {
		t.Errorf("a retry retried %v", got)
	}
}

// S6: errors dbop does not act on reach the caller unchanged (invariant 7)
// and are not retried (invariant 3): sql.ErrNoRows, a real duplicate key
// (1062) and a real unknown system variable (1193: MariaDB has no
// max_execution_time), returned by InTx's function directly or through a
// retry inside it, with and without ClassifyBy around InTx.
func TestLiveComposeMariaDBFinalErrorsUnchanged(t *testing.T) {
	db := openMariaDB(t)
	tbl := table(t, db, mdbTable("final"), "(k VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES ('taken')")

	faults := []struct {
		name   string
		number uint16 // 0 for sql.ErrNoRows
		run    func(ctx context.Context, tx *sql.Tx) error
	}{
		{"ErrNoRows", 0, func(ctx context.Context, tx *sql.Tx) error {
			var k string
			return tx.QueryRowContext(ctx, "SELECT k FROM "+tbl+" WHERE k = 'missing'").Scan(&k)
		}},
		{"1062", 1062, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES ('taken')")
			return err
		}},
		{"1193", 1193, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "SET SESSION max_execution_time = 1")
			return err
		}},
	}
	shapes := []struct {
		name     string
		classify bool // ClassifyBy(mysqldb.Classifier) after the retry around InTx
		inside   bool // the fault runs through a retry inside the function
	}{
		{"InTx", false, false},
		{"InTx+ClassifyBy", true, false},
		{"retry inside fn", false, true},
	}
	for _, f := range faults {
		for _, sh := range shapes {
			t.Run(f.name+"/"+sh.name, func(t *testing.T) {
				mustExec(t, db, "DELETE FROM "+tbl+" WHERE k <> 'taken'")
				var retried recorder
				var orig error
				runs := 0
				op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
					runs++
					if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES ('A')"); err != nil {
						return 0, err
					}
					fault := dbop.Op[int](func(ctx context.Context) (int, error) {
						orig = f.run(ctx, tx)
						return 0, orig
					})
					if sh.inside {
						fault = fault.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), retried.option()))
					}
					return fault.Run(ctx)
				})
				ds := []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), retried.option())}
				if sh.classify {
					ds = append(ds, dbop.ClassifyBy(mysqldb.Classifier))
				}
				_, err := op.With(ds...).Run(t.Context())
				if f.number == 0 && orig != sql.ErrNoRows {
					t.Fatalf("the function got %v, want sql.ErrNoRows", orig)
				}
				if f.number != 0 && mysqlNumber(orig) != f.number {
					t.Fatalf("the function got %v, want server error %d", orig, f.number)
				}
				if err != orig {
					t.Errorf("Run returned %#v, want the very error the function returned, %#v", err, orig)
				}
				if runs != 1 || len(retried.all()) != 0 {
					t.Errorf("the function ran %d times, retried %v; want once, never retried", runs, retried.all())
				}
				if n := scalar[int](t, db, "SELECT COUNT(*) FROM "+tbl+" WHERE k = 'A'"); n != 0 {
					t.Errorf("row A committed %d times; InTx must roll back", n)
				}
			})
		}
	}
}

// S7: the connection is cut right after COMMIT was forwarded: the server
// committed, the client cannot know. The error is ambiguous
// (scopes.ErrAmbiguousCommit, reaching mysql.ErrInvalidConn), not retried
// without Idempotent, passed through by OrDefault, and replaced only by
// OrDefault with AcceptAmbiguous. The row lands once in every case.
func TestLiveComposeMariaDBAmbiguousCommit(t *testing.T) {
	direct := openMariaDB(t)
	tbl := table(t, direct, mdbTable("ambiguous"), "(k VARCHAR(20) PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
	p := faultproxy.Start(t, mysqlAddr(t))
	db := openSQL(t, "mysql", mariaDBVia(t, p.Addr()))

	retry := func(r *recorder, opts ...dbop.RetryOption) dbop.Decorator {
		return dbop.WithRetry(dbop.Constant(0), append([]dbop.RetryOption{dbop.MaxAttempts(3), r.option()}, opts...)...)
	}
	tests := []struct {
		name      string
		decorate  func(r *recorder) []dbop.Decorator
		wantN     int
		ambiguous bool // the caller gets the ambiguous error
		wantRuns  int
	}{
		{"WithRetry", func(r *recorder) []dbop.Decorator { return []dbop.Decorator{retry(r)} }, 0, true, 1},
		{"OrDefault passes it through", func(r *recorder) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(-1), retry(r)}
		}, 0, true, 1},
		{"OrDefault with AcceptAmbiguous", func(r *recorder) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(-1, dbop.AcceptAmbiguous()), retry(r)}
		}, -1, false, 1},
		{"Idempotent", func(r *recorder) []dbop.Decorator { return []dbop.Decorator{retry(r, dbop.Idempotent())} }, 2, false, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("k%d", i)
			cuts := p.Cuts()
			var retried recorder
			runs := 0
			op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (?, 1) ON DUPLICATE KEY UPDATE v = v", key); err != nil {
					return 0, err
				}
				if runs == 1 {
					p.CutAfter([]byte("COMMIT"))
				}
				return runs, nil
			})
			n, err := op.With(tt.decorate(&retried)...).Run(t.Context())
			if p.Cuts() != cuts+1 {
				t.Fatalf("the proxy cut %d connections, want 1", p.Cuts()-cuts)
			}
			if runs != tt.wantRuns || n != tt.wantN {
				t.Errorf("fn ran %d times, Run returned %d; want %d and %d", runs, n, tt.wantRuns, tt.wantN)
			}
			if tt.ambiguous {
				if !errors.Is(err, scopes.ErrAmbiguousCommit) || dbop.VerdictOf(err) != dbop.Ambiguous || !errors.Is(err, mysql.ErrInvalidConn) {
					t.Errorf("err = %v (verdict %v); want an ambiguous commit reaching mysql.ErrInvalidConn", err, dbop.VerdictOf(err))
				}
				if got := retried.all(); len(got) != 0 {
					t.Errorf("retried %v without Idempotent", got)
				}
			} else if err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if tt.wantRuns == 2 {
				if got := retried.all(); len(got) != 1 || !errors.Is(got[0], scopes.ErrAmbiguousCommit) {
					t.Errorf("retried %v, want the ambiguous commit once", got)
				}
			}
			eventually(t, "the cut COMMIT lands", func() bool {
				return scalar[int](t, direct, "SELECT COUNT(*) FROM "+tbl+" WHERE k = ?", key) == 1
			})
		})
	}
}
