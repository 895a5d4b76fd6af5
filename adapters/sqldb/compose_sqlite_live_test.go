package sqldb_test

// Live compositions on SQLite (modernc.org/sqlite) through database/sql:
// the shapes of scopes/compose_test.go with SQLite's own errors. They
// always run. The operation's transactions are deferred (_txlock=deferred):
// each reads first, and its first write is the step's, which fails
//
//   - with SQLITE_BUSY (5) while another connection holds the write lock
//     (BEGIN IMMEDIATE), released once the operation has failed;
//   - with SQLITE_BUSY_SNAPSHOT (517) when, in WAL mode, another
//     connection committed a write after the transaction's read: no
//     statement retry in that transaction can succeed.
//
// A deferred SQLite transaction cannot write before the step (its first
// write would be the one to fail), so the step's transaction holds a read
// instead of a row A: the read whose snapshot a retry must take again.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/google/go-cmp/cmp"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// liteFault is the SQLite error a scene's step runs into.
type liteFault struct {
	name string
	code int // the extended result code
}

var (
	liteBusy     = liteFault{"BUSY", sqlite3.SQLITE_BUSY}
	liteSnapshot = liteFault{"BUSY_SNAPSHOT", sqlite3.SQLITE_BUSY_SNAPSHOT}
)

// liteScene is one test's database file, its fault and what the operation
// did. counter holds row 1; the step sets it to the value the transaction
// read plus one and logs 'step'; the function then logs 'C'.
type liteScene struct {
	db    *sql.DB // deferred transactions
	other *sql.DB // another connection's pool
	fault liteFault

	holder     *sql.Conn // BUSY: holds the write lock until released
	release    sync.Once
	releaseErr error

	mu       sync.Mutex
	reads    []int
	armErr   error
	stepRuns int
	stepErrs []error
	seen     [][]string // what another connection saw at each look
}

func newLiteScene(t *testing.T, fault liteFault) *liteScene {
	t.Helper()
	path := testdb.SQLiteFile(t)
	s := &liteScene{
		db:    openSQLite(t, path, sqldb.SQLiteTxLock("deferred"), sqldb.SQLiteBusyTimeout(5*time.Millisecond)),
		other: openSQLite(t, path),
		fault: fault,
	}
	mustExec(t, s.other, "CREATE TABLE sqldb_cmp_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
	mustExec(t, s.other, "INSERT INTO sqldb_cmp_counter VALUES (1, 0)")
	mustExec(t, s.other, "CREATE TABLE sqldb_cmp_log (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)")
	if fault == liteBusy {
		s.holder = conn(t, s.other)
		mustExec(t, s.holder, "BEGIN IMMEDIATE")
		t.Cleanup(s.releaseHolder)
	}
	return s
}

// releaseHolder ends the transaction holding the write lock, once.
func (s *liteScene) releaseHolder() {
	if s.holder == nil {
		return
	}
	s.release.Do(func() {
		_, s.releaseErr = s.holder.ExecContext(context.Background(), "ROLLBACK")
	})
}

// read reads the counter in tx, which starts tx's snapshot; on the first
// read, for BUSY_SNAPSHOT, another connection then commits a write.
func (s *liteScene) read(ctx context.Context, tx *sql.Tx) (int, error) {
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT n FROM sqldb_cmp_counter WHERE id = 1").Scan(&n); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.reads = append(s.reads, n)
	first := len(s.reads) == 1
	s.mu.Unlock()
	if first && s.fault == liteSnapshot {
		if _, err := s.other.ExecContext(ctx, "UPDATE sqldb_cmp_counter SET n = n + 100 WHERE id = 1"); err != nil {
			s.armErr = err
			return 0, dbop.Classify(err, dbop.NotRetryable)
		}
	}
	return n, nil
}

// step returns the step: the transaction's first write.
func (s *liteScene) step(tx *sql.Tx, read int) dbop.Op[int] {
	return func(ctx context.Context) (int, error) {
		s.mu.Lock()
		s.stepRuns++
		s.mu.Unlock()
		_, err := tx.ExecContext(ctx, "UPDATE sqldb_cmp_counter SET n = ? WHERE id = 1", read+1)
		if err == nil {
			err = s.write(ctx, tx, "step")
		}
		if err != nil {
			s.mu.Lock()
			s.stepErrs = append(s.stepErrs, err)
			s.mu.Unlock()
		}
		return read + 1, err
	}
}

func (s *liteScene) write(ctx context.Context, tx *sql.Tx, k string) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_cmp_log (k) VALUES (?)", k)
	return err
}

// look records what another connection sees now: the log, and the counter
// if the step's +1 is in it.
func (s *liteScene) look() {
	var got []string
	rows, err := s.other.QueryContext(context.Background(),
		"SELECT 'log ' || k FROM sqldb_cmp_log UNION ALL SELECT 'counter ' || n FROM sqldb_cmp_counter WHERE n % 100 <> 0")
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

// retry records the retried error in r, looks at the database from another
// connection, and releases the write lock of BUSY.
func (s *liteScene) retry(r *recorder) dbop.Decorator {
	return dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		r.add(e.Err)
		s.look()
		s.releaseHolder()
	}))
}

// check checks that the fault fired once, in the step; that another
// connection saw nothing between attempts; and that the step and 'C' were
// written once, the step from a fresh read.
func (s *liteScene) check(t *testing.T) {
	t.Helper()
	if s.releaseErr != nil || s.armErr != nil {
		t.Errorf("releasing the write lock: %v; writing from another connection: %v", s.releaseErr, s.armErr)
	}
	if len(s.stepErrs) != 1 || sqliteCode(s.stepErrs[0]) != s.fault.code {
		t.Errorf("the step failed with %v, want once with code %d", s.stepErrs, s.fault.code)
	}
	if len(s.seen) == 0 {
		t.Errorf("nobody looked at the database between attempts")
	}
	for i, got := range s.seen {
		if len(got) != 0 {
			t.Errorf("look %d from another connection, between attempts: %q; want nothing", i+1, got)
		}
	}
	wantReads, wantN := []int{0, 0}, 1
	if s.fault == liteSnapshot {
		wantReads, wantN = []int{0, 100}, 101 // the retry read the other connection's write
	}
	if diff := cmp.Diff(wantReads, s.reads); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
	if n := scalar[int](t, s.other, "SELECT n FROM sqldb_cmp_counter WHERE id = 1"); n != wantN {
		t.Errorf("counter = %d, want %d", n, wantN)
	}
	var log []string
	rows, err := s.other.QueryContext(t.Context(), "SELECT k FROM sqldb_cmp_log ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		log = append(log, k)
	}
	if diff := cmp.Diff([]string{"step", "C"}, log); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// S1, S2 on SQLite: a retry inside InTx's function, with InTx's context,
// around the step, with and without ClassifyBy: BUSY and BUSY_SNAPSHOT are
// not retried there; InTx rolls back and the retry around it runs the
// whole transaction again, its read included.
func TestLiveComposeSQLiteRetryInsideInTx(t *testing.T) {
	for _, fault := range []liteFault{liteBusy, liteSnapshot} {
		for _, classify := range []bool{false, true} {
			name := fault.name + "/classify=false"
			if classify {
				name = fault.name + "/classify=true"
			}
			t.Run(name, func(t *testing.T) {
				s := newLiteScene(t, fault)
				var inner, outer recorder
				op := sqldb.InTx(s.db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
					n, err := s.read(ctx, tx)
					if err != nil {
						return 0, err
					}
					ds := []dbop.Decorator{s.retry(&inner)}
					if classify {
						ds = append(ds, dbop.ClassifyBy(classifiers.SQLite))
					}
					if n, err = s.step(tx, n).With(ds...).Run(ctx); err != nil {
						return 0, err
					}
					return n, s.write(ctx, tx, "C")
				})
				if _, err := op.With(s.retry(&outer)).Run(t.Context()); err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
				s.check(t)
				if got := inner.all(); len(got) != 0 {
					t.Errorf("the retry inside the transaction retried %v", got)
				}
				if got := outer.all(); len(got) != 1 || sqliteCode(got[0]) != fault.code || dbop.VerdictOf(got[0]) != dbop.RetryTransaction {
					t.Errorf("the retry around InTx retried %v, want one code %d, retry-transaction", got, fault.code)
				}
			})
		}
	}
}

// S3 on SQLite: a transaction begun by hand, WithRetry around InSavepoint,
// run with a plain context. BUSY_SNAPSHOT (and BUSY) escape the savepoint
// without an inner retry, reachable with errors.As; nothing was committed
// (another connection looks before the caller rolls back); the caller's
// own retry around its begin…commit commits everything once.
func TestLiveComposeSQLiteByHandSavepoint(t *testing.T) {
	for _, fault := range []liteFault{liteSnapshot, liteBusy} {
		t.Run(fault.name, func(t *testing.T) {
			s := newLiteScene(t, fault)
			var inner, outer recorder
			var callerErrs []error
			caller := dbop.Op[int](func(ctx context.Context) (int, error) {
				tx, err := s.db.BeginTx(ctx, nil)
				if err != nil {
					return 0, err
				}
				n, err := s.read(ctx, tx)
				if err != nil {
					_ = tx.Rollback()
					return 0, err
				}
				n, err = s.step(tx, n).With(s.retry(&inner), sqldb.InSavepoint(tx, sqldb.SQLite)).Run(context.Background())
				if err != nil {
					callerErrs = append(callerErrs, err)
					s.look() // before the rollback
					_ = tx.Rollback()
					return 0, err
				}
				if err := s.write(ctx, tx, "C"); err != nil {
					_ = tx.Rollback()
					return 0, err
				}
				return n, tx.Commit()
			})
			if _, err := caller.With(s.retry(&outer), dbop.ClassifyBy(classifiers.SQLite)).Run(t.Context()); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			s.check(t)
			if got := inner.all(); len(got) != 0 {
				t.Errorf("the retry around the savepoint retried %v; code %d must reach the caller", got, fault.code)
			}
			if len(callerErrs) != 1 {
				t.Fatalf("the caller got %v, want one error", callerErrs)
			}
			var se *sqlite.Error
			if !errors.As(callerErrs[0], &se) || se.Code() != fault.code {
				t.Errorf("the caller got %v; want an error reaching *sqlite.Error with code %d", callerErrs[0], fault.code)
			}
			if got := outer.all(); len(got) != 1 || sqliteCode(got[0]) != fault.code || dbop.VerdictOf(got[0]) != dbop.RetryTransaction {
				t.Errorf("the caller's retry retried %v, want one code %d, retry-transaction", got, fault.code)
			}
		})
	}
}

// On SQLite, inside InTx, a retry around a plain INSERT followed by a
// savepoint step that fails once with a retryable error — as a Then, or as
// an Op of your own (where only the savepoint's coverage protects it): the
// savepoint undoes the step only, so the retry does not run the plain
// INSERT again; the error reaches InTx, which rolls back. With the
// savepoint listed in the retry's own pipeline, the whole is retried in
// place and both rows are committed once.
func TestLiveComposeSQLiteRetryAroundAThenOfAPlainAndASavepointStep(t *testing.T) {
	errBusy := dbop.Classify(errors.New("step: busy"), dbop.RetryStatement)
	for _, c := range []struct {
		shape   string
		covered bool
	}{{"Then", false}, {"Op", false}, {"Then", true}, {"Op", true}} {
		covered := c.covered
		t.Run(fmt.Sprintf("%s/savepoint in the retry's pipeline=%v", c.shape, covered), func(t *testing.T) {
			db := openSQLite(t, testdb.SQLiteFile(t))
			mustExec(t, db, "CREATE TABLE log (k TEXT NOT NULL)")
			bRuns := 0
			_, err := sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
				a := dbop.Op[int](func(ctx context.Context) (int, error) {
					_, err := tx.ExecContext(ctx, "INSERT INTO log VALUES ('A')")
					return 1, err
				})
				b := dbop.Op[int](func(ctx context.Context) (int, error) {
					bRuns++
					if _, err := tx.ExecContext(ctx, "INSERT INTO log VALUES ('B')"); err != nil {
						return 0, err
					}
					if bRuns == 1 {
						return 0, errBusy
					}
					return 2, nil
				}).With(sqldb.InSavepoint(tx, sqldb.SQLite))
				seq := dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
				if c.shape == "Op" {
					seq = dbop.Op[int](func(ctx context.Context) (int, error) {
						if _, err := a.Run(ctx); err != nil {
							return 0, err
						}
						return b.Run(ctx)
					})
				}
				retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))
				if covered {
					return seq.With(retry, sqldb.InSavepoint(tx, sqldb.SQLite)).Run(ctx)
				}
				return seq.With(retry).Run(ctx)
			}).Run(t.Context())
			nA := scalar[int](t, db, "SELECT COUNT(*) FROM log WHERE k = 'A'")
			nB := scalar[int](t, db, "SELECT COUNT(*) FROM log WHERE k = 'B'")
			switch {
			case !covered && (!errors.Is(err, errBusy) || bRuns != 1 || nA != 0 || nB != 0):
				t.Errorf("Run: %v; B ran %d times; committed A %d, B %d; want the step's error to InTx after one run, nothing committed", err, bRuns, nA, nB)
			case covered && (err != nil || bRuns != 2 || nA != 1 || nB != 1):
				t.Errorf("Run: %v; B ran %d times; committed A %d, B %d; want success after 2 runs, A and B once", err, bRuns, nA, nB)
			}
		})
	}
}
