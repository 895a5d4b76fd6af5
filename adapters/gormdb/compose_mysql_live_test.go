package gormdb_test

// Live compositions on MariaDB through GORM's mysql dialector: the shapes
// of scopes/compose_test.go (the invariants of the package documentation
// of github.com/dbop-go/dbop), run against the server's own errors. Every
// fault is real and forced with channels or a lock another connection
// holds, never with a sleep:
//
//   - 1213, a deadlock: a heavy transaction (50 rows changed) holds row 2,
//     the step holds row 1, the heavy one asks for row 1 and the step for
//     row 2. InnoDB rolls back the lighter transaction, the step's,
//     whichever request closes the cycle (as in
//     adapters/sqldb/mariadb_deadlock_test.go), and MariaDB runs any
//     statement sent afterwards on that connection in autocommit.
//   - 1205, a lock wait timeout: another connection holds row 1 with
//     SELECT … FOR UPDATE while the step updates it; the connections of the
//     scene's pool have innodb_lock_wait_timeout = 1 (a DSN parameter:
//     gormdb.LockTimeout is PostgreSQL's only).
//
// Every scope is given gormdb.Dialect(mysqldb.MariaDB), the server CI runs.
//
// Each test checks that its fault fired, that another connection saw
// nothing between attempts (no row committed on its own), and that every
// write landed exactly once.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
)

// gcmpTable names a table of this file: gormdb_cmp<pid>_<name>. The
// process id keeps two runs of this package on one server off each
// other's tables.
func gcmpTable(name string) string {
	return fmt.Sprintf("gormdb_cmp%x_%s", os.Getpid(), name)
}

// gcmpFault is the server error a scene's step runs into.
type gcmpFault struct {
	name    string
	number  uint16
	verdict dbop.Verdict // what mysqldb.MariaDB's classifier says of it
}

var (
	gcmpDeadlock = gcmpFault{"1213", 1213, dbop.RetryTransaction}
	gcmpLockWait = gcmpFault{"1205", 1205, dbop.RetryStatement}
)

// gcmpRecorder collects the errors a retry retried.
type gcmpRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *gcmpRecorder) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *gcmpRecorder) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// want checks that r retried n errors, each server error number with
// verdict v.
func (r *gcmpRecorder) want(t *testing.T, n int, number uint16, v dbop.Verdict) {
	t.Helper()
	errs := r.all()
	if len(errs) != n {
		t.Fatalf("retried %d errors (%v), want %d", len(errs), errs, n)
	}
	for _, err := range errs {
		if !isMySQL(err, number) || dbop.VerdictOf(err) != v {
			t.Errorf("retried %v (verdict %v), want server error %d, %v", err, dbop.VerdictOf(err), number, v)
		}
	}
}

// gcmpScene is one test's tables, its fault and what the operation did.
// items holds rows 1 and 2; log gets one row per write ('A' before the
// step, 'step' in it, 'C' after it), so that counting them shows a write
// lost, doubled, or committed on its own.
type gcmpScene struct {
	db         *gorm.DB
	sqlDB      *sql.DB
	fault      gcmpFault
	items, log string

	// 1213: the heavy transaction, and the step's first run telling the
	// test that it holds row 1.
	heavy     *sql.Conn
	heavyID   int64
	heavyReq  chan error
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

// newGcmpScene creates <name>_items and _log (see gcmpTable) and arms the
// fault: for 1213 a heavy transaction already holds row 2, for 1205
// another connection holds row 1.
func newGcmpScene(t *testing.T, name string, fault gcmpFault) *gcmpScene {
	t.Helper()
	return newGcmpSceneWith(t, name, fault, nil)
}

// newGcmpSceneWith is newGcmpScene on a *gorm.DB opened with cfg (nil for
// GORM's defaults).
func newGcmpSceneWith(t *testing.T, name string, fault gcmpFault, cfg *gorm.Config) *gcmpScene {
	t.Helper()
	mc, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	if fault == gcmpLockWait {
		mc.Params = map[string]string{"innodb_lock_wait_timeout": "1"}
	}
	db := openMySQL(t, mc, cfg)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	s := &gcmpScene{
		db: db, sqlDB: sqlDB, fault: fault,
		items:     gcmpTable(name + "_items"),
		log:       gcmpTable(name + "_log"),
		holdsRow1: make(chan struct{}),
		proceed:   make(chan struct{}),
	}
	createTable(t, db, s.items, "id int PRIMARY KEY, n int NOT NULL")
	createTable(t, db, s.log, "id int AUTO_INCREMENT PRIMARY KEY, k varchar(20) NOT NULL")
	exec(t, db, "INSERT INTO "+s.items+" VALUES (1, 0), (2, 0)")
	switch fault {
	case gcmpDeadlock:
		s.heavy = s.conn(t)
		s.heavyReq = make(chan error, 1)
		if err := s.heavy.QueryRowContext(t.Context(), "SELECT CONNECTION_ID()").Scan(&s.heavyID); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if !s.heavyDone {
				// A failed test left the heavy transaction open; its locks
				// would block the DROP TABLE forever.
				_, _ = sqlDB.ExecContext(context.Background(), fmt.Sprintf("KILL %d", s.heavyID))
			}
		})
		values := make([]string, 50)
		for i := range values {
			values[i] = fmt.Sprintf("(%d, 0)", 1000+i)
		}
		for _, q := range []string{
			"BEGIN",
			"INSERT INTO " + s.items + " VALUES " + strings.Join(values, ", "),
			"UPDATE " + s.items + " SET n = n + 10 WHERE id = 2",
		} {
			if _, err := s.heavy.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	case gcmpLockWait:
		s.blocker = s.conn(t)
		var n int
		if _, err := s.blocker.ExecContext(t.Context(), "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if err := s.blocker.QueryRowContext(t.Context(), "SELECT n FROM "+s.items+" WHERE id = 1 FOR UPDATE").Scan(&n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.releaseBlocker)
	}
	return s
}

// conn pins a connection of the scene's pool, closed when t ends.
func (s *gcmpScene) conn(t *testing.T) *sql.Conn {
	t.Helper()
	c, err := s.sqlDB.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// releaseBlocker ends the transaction holding row 1, once. It is called
// from OnRetry hooks, on the operation's goroutine.
func (s *gcmpScene) releaseBlocker() {
	if s.blocker == nil {
		return
	}
	s.release.Do(func() {
		_, s.releaseErr = s.blocker.ExecContext(context.Background(), "ROLLBACK")
	})
}

// write inserts one log row k in tx.
func (s *gcmpScene) write(ctx context.Context, tx *gorm.DB, k string) error {
	return tx.WithContext(ctx).Exec("INSERT INTO "+s.log+" (k) VALUES (?)", k).Error
}

// step returns the step: it logs 'step' and increments row 1, and for
// 1213 then row 2. Its first run is the one that meets the fault; for 1213
// it tells the test it holds row 1 and waits until the heavy transaction
// has asked for it.
func (s *gcmpScene) step(tx *gorm.DB) dbop.Op[int] {
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

func (s *gcmpScene) stepBody(ctx context.Context, tx *gorm.DB, run int) error {
	if err := s.write(ctx, tx, "step"); err != nil {
		return err
	}
	if err := tx.WithContext(ctx).Exec("UPDATE " + s.items + " SET n = n + 1 WHERE id = 1").Error; err != nil {
		return err
	}
	if s.fault != gcmpDeadlock {
		return nil
	}
	if run == 1 {
		s.holdsRow1 <- struct{}{}
		<-s.proceed
	}
	return tx.WithContext(ctx).Exec("UPDATE " + s.items + " SET n = n + 1 WHERE id = 2").Error
}

// look records what another connection sees now: every log row, and every
// item the operation changed (the heavy transaction adds 10). It runs on
// the operation's goroutine, so it reports errors instead of failing.
func (s *gcmpScene) look() {
	var got []string
	err := s.db.Raw("SELECT CONCAT('log ', k) FROM " + s.log +
		" UNION ALL SELECT CONCAT('item ', id, ': ', n) FROM " + s.items + " WHERE n % 10 <> 0").Scan(&got).Error
	if err != nil {
		got = append(got, "error: "+err.Error())
	}
	s.mu.Lock()
	s.seen = append(s.seen, got)
	s.mu.Unlock()
}

// retry returns the retry every test uses: it records the retried error in
// r, looks at the tables from another connection, and releases the 1205
// blocker so that the next attempt can take row 1.
func (s *gcmpScene) retry(r *gcmpRecorder) dbop.Decorator {
	return dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		r.add(e.Err)
		s.look()
		s.releaseBlocker()
	}))
}

// run runs op on a goroutine of its own and, for 1213, closes the cycle:
// once the step holds row 1, the heavy transaction asks for it, the step
// asks for row 2, and the lighter step's transaction is the victim. The
// heavy transaction then gets row 1 and commits.
func (s *gcmpScene) run(t *testing.T, op func(context.Context) error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op(t.Context()) }()
	if s.fault != gcmpDeadlock {
		return <-done
	}
	select {
	case <-s.holdsRow1:
	case err := <-done:
		t.Fatalf("the operation ended (%v) before its step held row 1", err)
	}
	go func() {
		_, err := s.heavy.ExecContext(context.Background(), "UPDATE "+s.items+" SET n = n + 10 WHERE id = 1")
		s.heavyReq <- err
	}()
	close(s.proceed)
	if err := <-s.heavyReq; err != nil {
		t.Fatalf("the heavy transaction failed (was it the deadlock victim?): %v", err)
	}
	if _, err := s.heavy.ExecContext(t.Context(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	s.heavyDone = true
	return <-done
}

// check checks that the fault fired once, in the step, that another
// connection never saw a write between attempts (and looked at least
// once), and that the log holds each of want exactly once, nothing else.
func (s *gcmpScene) check(t *testing.T, want ...string) {
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
		if !isMySQL(err, s.fault.number) {
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
	var rows []struct {
		K string
		N int
	}
	if err := s.db.Raw("SELECT k, COUNT(*) AS n FROM " + s.log + " GROUP BY k").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	counts, wantCounts := map[string]int{}, map[string]int{}
	for _, r := range rows {
		counts[r.K] = r.N
	}
	for _, k := range want {
		wantCounts[k] = 1
	}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("log rows by kind (-want +got):\n%s", diff)
	}
	wantItems := []string{"1:1", "2:0"}
	if s.fault == gcmpDeadlock {
		wantItems = []string{"1:11", "2:11"} // the heavy transaction's 10, the step's 1
	}
	var items []string
	if err := s.db.Raw("SELECT CONCAT(id, ':', n) FROM " + s.items + " WHERE id < 1000 ORDER BY id").Scan(&items).Error; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantItems, items); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

// S1, S2: a retry inside InTx's function, with InTx's context, around a
// step with no savepoint, with and without ClassifyBy. The step's error is
// not retried there; InTx rolls back and the retry around it runs the
// whole transaction again. The bug this guards against: row A lost, the
// step applied in autocommit, and a nil error.
func TestLiveComposeMySQLRetryInsideInTx(t *testing.T) {
	for _, fault := range []gcmpFault{gcmpDeadlock, gcmpLockWait} {
		for _, classify := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/classify=%v", fault.name, classify), func(t *testing.T) {
				t.Parallel()
				s := newGcmpScene(t, fmt.Sprintf("inner_%s_%v", fault.name, classify), fault)
				var inner, outer gcmpRecorder
				attempts := 0
				op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
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
				}, mariadb)
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
				outer.want(t, 1, fault.number, fault.verdict)
			})
		}
	}
}

// S3: a transaction begun by hand (db.Begin), WithRetry around
// gormdb.InSavepoint, run with a plain context. A 1213 is not retried at
// the savepoint: the caller gets it, reachable with errors.As, and nothing
// was committed on its own (another connection looks before the caller
// rolls back); the caller's own retry around its begin…commit then commits
// everything once. A 1205 is rolled back to the savepoint and retried in
// place: row A is kept and the transaction runs once.
func TestLiveComposeMySQLByHandSavepoint(t *testing.T) {
	for _, fault := range []gcmpFault{gcmpDeadlock, gcmpLockWait} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			s := newGcmpScene(t, "byhand_"+fault.name, fault)
			var inner, outer gcmpRecorder
			var callerErrs []error
			attempts := 0
			caller := dbop.Op[int](func(ctx context.Context) (int, error) {
				attempts++
				tx := s.db.WithContext(ctx).Begin()
				if tx.Error != nil {
					return 0, tx.Error
				}
				if err := s.write(ctx, tx, "A"); err != nil {
					tx.Rollback()
					return 0, err
				}
				_, err := s.step(tx).With(s.retry(&inner), gormdb.InSavepoint(tx, mariadb)).Run(context.Background())
				if err != nil {
					callerErrs = append(callerErrs, err)
					s.look() // before the rollback: nothing may be committed already
					tx.Rollback()
					return 0, err
				}
				if err := s.write(ctx, tx, "C"); err != nil {
					tx.Rollback()
					return 0, err
				}
				return attempts, tx.Commit().Error
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
			case gcmpDeadlock:
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
				outer.want(t, 1, 1213, dbop.RetryTransaction)
			case gcmpLockWait:
				if n != 1 {
					t.Errorf("the caller's transaction ran %d times, want 1", n)
				}
				if len(callerErrs) != 0 || len(outer.all()) != 0 {
					t.Errorf("the caller got %v and retried %v; want nothing", callerErrs, outer.all())
				}
				inner.want(t, 1, 1205, dbop.RetryStatement)
			}
		})
	}
}

// S4: nested savepoints with a retry between them. A 1213 in the inner
// statement is retried by neither retry inside the transaction; the retry
// around InTx runs it all again. A 1205 is retried at the inner savepoint
// only, and the outer step's row 'B' is kept.
func TestLiveComposeMySQLNestedSavepoints(t *testing.T) {
	for _, fault := range []gcmpFault{gcmpDeadlock, gcmpLockWait} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			s := newGcmpScene(t, "nested_"+fault.name, fault)
			var innermost, middle, outer gcmpRecorder
			attempts, outerStepRuns := 0, 0
			op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				attempts++
				if err := s.write(ctx, tx, "A"); err != nil {
					return 0, err
				}
				outerStep := dbop.Op[int](func(ctx context.Context) (int, error) {
					outerStepRuns++
					if err := s.write(ctx, tx, "B"); err != nil {
						return 0, err
					}
					return s.step(tx).With(s.retry(&innermost), gormdb.InSavepoint(tx, mariadb)).Run(ctx)
				})
				if _, err := outerStep.With(s.retry(&middle), gormdb.InSavepoint(tx, mariadb)).Run(ctx); err != nil {
					return 0, err
				}
				return attempts, s.write(ctx, tx, "C")
			}, mariadb)
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
			case gcmpDeadlock:
				if n != 2 || outerStepRuns != 2 {
					t.Errorf("transaction ran %d times, outer step %d; want 2 and 2", n, outerStepRuns)
				}
				if got := innermost.all(); len(got) != 0 {
					t.Errorf("the innermost retry retried %v; a deadlock must reach InTx", got)
				}
				outer.want(t, 1, 1213, dbop.RetryTransaction)
			case gcmpLockWait:
				if n != 1 || outerStepRuns != 1 {
					t.Errorf("transaction ran %d times, outer step %d; want 1 and 1", n, outerStepRuns)
				}
				if got := outer.all(); len(got) != 0 {
					t.Errorf("the retry around InTx retried %v", got)
				}
				innermost.want(t, 1, 1205, dbop.RetryStatement)
			}
		})
	}
}

// S5: InTx's function swallows the 1213 of a step in a savepoint and
// returns nil. A later step in a savepoint of the same transaction refuses
// to run (it would autocommit), and InTx does not commit: it rolls back and
// returns an Ambiguous error naming the 1213. MariaDB ended the
// transaction at the 1213 and runs whatever the function sent afterwards
// on its own; the function went on, so InTx cannot know what it applied,
// and the retry around it, not Idempotent, does not run it again. Here
// nothing was applied.
func TestLiveComposeMySQLSwallowedDeadlock(t *testing.T) {
	s := newGcmpScene(t, "swallowed", gcmpDeadlock)
	var inner, outer gcmpRecorder
	var swallowed, refused []error
	attempts, laterRuns := 0, 0
	op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		attempts++
		if err := s.write(ctx, tx, "A"); err != nil {
			return 0, err
		}
		if _, err := s.step(tx).With(s.retry(&inner), gormdb.InSavepoint(tx, mariadb)).Run(ctx); err != nil {
			swallowed = append(swallowed, err)
		}
		later := dbop.Op[int](func(ctx context.Context) (int, error) {
			laterRuns++
			return 0, s.write(ctx, tx, "later")
		})
		if _, err := later.With(s.retry(&inner), gormdb.InSavepoint(tx, mariadb)).Run(ctx); err != nil {
			refused = append(refused, err)
		}
		return attempts, nil // whatever happened
	}, mariadb)
	err := s.run(t, func(ctx context.Context) (err error) {
		_, err = op.With(s.retry(&outer)).Run(ctx)
		return err
	})
	if v := dbop.VerdictOf(err); v != dbop.Ambiguous || !isMySQL(err, 1213) || !strings.Contains(err.Error(), "returned nil after the server had rolled the transaction back") {
		t.Errorf("Run: %v (verdict %v); want an Ambiguous error naming the 1213 and the function that went on", err, v)
	}
	if attempts != 1 {
		t.Errorf("%d attempts, want 1: the retry must not run the function again", attempts)
	}
	var logged int64
	if err := s.db.Raw("SELECT COUNT(*) FROM " + s.log).Scan(&logged).Error; err != nil || logged != 0 {
		t.Errorf("%d log rows (%v), want none: A and the step were rolled back, the later step never ran", logged, err)
	}
	if len(swallowed) != 1 || !isMySQL(swallowed[0], 1213) {
		t.Errorf("the function swallowed %v; want one 1213", swallowed)
	}
	if len(refused) != 1 || !isMySQL(refused[0], 1213) || laterRuns != 0 {
		t.Errorf("the later step ran %d times and returned %v; want it refused with the 1213, never run", laterRuns, refused)
	}
	if got := append(inner.all(), outer.all()...); len(got) != 0 {
		t.Errorf("a retry retried %v", got)
	}
}

// S6: errors dbop does not act on reach the caller unchanged (invariant 7)
// and are not retried (invariant 3): gorm.ErrRecordNotFound, a real
// duplicate key (1062) and a real unknown system variable (1193: MariaDB
// has no max_execution_time), returned by InTx's function directly or
// through a retry inside it, with and without ClassifyBy around InTx.
func TestLiveComposeMySQLFinalErrorsUnchanged(t *testing.T) {
	db := liveMySQL(t, nil)
	tbl := gcmpTable("final")
	createTable(t, db, tbl, "k varchar(20) PRIMARY KEY")
	exec(t, db, "INSERT INTO "+tbl+" VALUES ('taken')")

	faults := []struct {
		name   string
		number uint16 // 0 for gorm.ErrRecordNotFound
		run    func(tx *gorm.DB) error
	}{
		{"ErrRecordNotFound", 0, func(tx *gorm.DB) error {
			var row struct{ K string }
			return tx.Table(tbl).Where("k = ?", "missing").Take(&row).Error
		}},
		{"1062", 1062, func(tx *gorm.DB) error { return tx.Exec("INSERT INTO " + tbl + " VALUES ('taken')").Error }},
		{"1193", 1193, func(tx *gorm.DB) error { return tx.Exec("SET SESSION max_execution_time = 1").Error }},
	}
	shapes := []struct {
		name     string
		classify bool // ClassifyBy(the dialect's classifier) after the retry around InTx
		inside   bool // the fault runs through a retry inside the function
	}{
		{"InTx", false, false},
		{"InTx+ClassifyBy", true, false},
		{"retry inside fn", false, true},
	}
	for _, f := range faults {
		for _, sh := range shapes {
			t.Run(f.name+"/"+sh.name, func(t *testing.T) {
				exec(t, db, "DELETE FROM "+tbl+" WHERE k <> 'taken'")
				var retried gcmpRecorder
				onRetry := dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried.add(e.Err) })
				var orig error
				runs := 0
				op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					runs++
					if err := tx.WithContext(ctx).Exec("INSERT INTO " + tbl + " VALUES ('A')").Error; err != nil {
						return 0, err
					}
					fault := dbop.Op[int](func(ctx context.Context) (int, error) {
						orig = f.run(tx.WithContext(ctx))
						return 0, orig
					})
					if sh.inside {
						fault = fault.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), onRetry))
					}
					return fault.Run(ctx)
				}, mariadb)
				ds := []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), onRetry)}
				if sh.classify {
					ds = append(ds, dbop.ClassifyBy(mysqldb.MariaDB.Classify))
				}
				_, err := op.With(ds...).Run(t.Context())
				if f.number == 0 && orig != gorm.ErrRecordNotFound {
					t.Fatalf("the function got %v, want gorm.ErrRecordNotFound", orig)
				}
				if f.number != 0 && !isMySQL(orig, f.number) {
					t.Fatalf("the function got %v, want server error %d", orig, f.number)
				}
				if err != orig {
					t.Errorf("Run returned %#v, want the very error the function returned, %#v", err, orig)
				}
				if runs != 1 || len(retried.all()) != 0 {
					t.Errorf("the function ran %d times, retried %v; want once, never retried", runs, retried.all())
				}
				var n int64
				if err := db.Table(tbl).Where("k = ?", "A").Count(&n).Error; err != nil {
					t.Fatal(err)
				}
				if n != 0 {
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
func TestLiveComposeMySQLAmbiguousCommit(t *testing.T) {
	admin := liveMySQL(t, nil)
	tbl := gcmpTable("ambiguous")
	createTable(t, admin, tbl, "k varchar(20) PRIMARY KEY, v int NOT NULL")
	p, db := proxiedMySQL(t)

	retry := func(r *gcmpRecorder, opts ...dbop.RetryOption) dbop.Decorator {
		onRetry := dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { r.add(e.Err) })
		return dbop.WithRetry(dbop.Constant(0), append([]dbop.RetryOption{dbop.MaxAttempts(3), onRetry}, opts...)...)
	}
	tests := []struct {
		name      string
		decorate  func(r *gcmpRecorder) []dbop.Decorator
		wantN     int
		ambiguous bool // the caller gets the ambiguous error
		wantRuns  int
	}{
		{"WithRetry", func(r *gcmpRecorder) []dbop.Decorator { return []dbop.Decorator{retry(r)} }, 0, true, 1},
		{"OrDefault passes it through", func(r *gcmpRecorder) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(-1), retry(r)}
		}, 0, true, 1},
		{"OrDefault with AcceptAmbiguous", func(r *gcmpRecorder) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(-1, dbop.AcceptAmbiguous()), retry(r)}
		}, -1, false, 1},
		{"Idempotent", func(r *gcmpRecorder) []dbop.Decorator {
			return []dbop.Decorator{retry(r, dbop.Idempotent())}
		}, 2, false, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("k%d", i)
			cuts := p.Cuts()
			var retried gcmpRecorder
			runs := 0
			op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				runs++
				if err := tx.Exec("INSERT INTO "+tbl+" VALUES (?, 1) ON DUPLICATE KEY UPDATE v = v", key).Error; err != nil {
					return 0, err
				}
				if runs == 1 {
					p.CutAfter([]byte("COMMIT"))
				}
				return runs, nil
			}, mariadb)
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
			var count int64
			if err := admin.Table(tbl).Where("k = ?", key).Count(&count).Error; err != nil {
				t.Fatal(err)
			}
			if count != 1 {
				t.Errorf("%d rows %s, want 1: the cut COMMIT reached the server", count, key)
			}
		})
	}
}
