package sqldb_test

// SQLite ends a transaction on its own after an interrupted write
// (docs/backends.md §5.5, §5.6): the transaction's work is rolled back and
// the statements that follow run on their own, each committed at once. A
// function that swallows the error and goes on has then committed what it
// ran afterwards, and running the transaction again would apply it twice.
// These tests interrupt a real write with a deadline on a live SQLite file
// (modernc.org/sqlite); mattn/go-sqlite3 ends the transaction and answers
// ROLLBACK and COMMIT with the same messages (checked by hand, v1.14.53).

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/testdb"
	sqlite3 "modernc.org/sqlite/lib"
)

// slowWrite is an INSERT that runs for seconds: a deadline of a few tens
// of milliseconds interrupts it.
const slowWrite = "INSERT INTO sqldb_ended_big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200000000) SELECT x FROM c"

// endedScene is a SQLite file with a table for the slow write and a log.
type endedScene struct {
	db *sql.DB
}

func newEndedScene(t *testing.T) *endedScene {
	t.Helper()
	db := openSQLite(t, testdb.SQLiteFile(t))
	mustExec(t, db, "CREATE TABLE sqldb_ended_big (x INTEGER)")
	mustExec(t, db, "CREATE TABLE sqldb_ended_log (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)")
	return &endedScene{db: db}
}

// write logs k in tx.
func (s *endedScene) write(ctx context.Context, tx *sql.Tx, k string) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_ended_log (k) VALUES (?)", k)
	return err
}

// count returns how many times k was committed.
func (s *endedScene) count(t *testing.T, k string) int {
	t.Helper()
	return scalar[int](t, s.db, "SELECT count(*) FROM sqldb_ended_log WHERE k = ?", k)
}

// checkEnded checks that err, the error of Run, reports a transaction
// SQLite had ended while the function went on: Ambiguous, so that no retry
// runs it again, and saying so.
func checkEnded(t *testing.T, err error) {
	t.Helper()
	if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
		t.Errorf("Run = %v (%v), want ambiguous", err, v)
	}
	if _, ok := errors.AsType[*sqldialect.TxEndedError](err); !ok {
		t.Errorf("Run = %v, want a *sqldialect.TxEndedError in it", err)
	}
	if err != nil && !strings.Contains(err.Error(), "SQLite had already ended the transaction") {
		t.Errorf("Run = %q, want it to say that SQLite had ended the transaction", err)
	}
}

// checkInterrupted checks that the fault fired: the write was interrupted
// by its deadline.
func checkInterrupted(t *testing.T, errs []error) {
	t.Helper()
	if len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("the slow write failed with %v, want once with a deadline", errs)
	}
}

// A per-attempt deadline (dbop.WithTimeout) interrupts a slow write in a
// savepoint step; SQLite rolls back the whole transaction, and the scope,
// seeing a RetryTransaction error, dooms it. The function swallows the
// error and writes C, which SQLite runs on its own and commits. The
// transaction is gone, so what the function did after the doom stands:
// Run fails Ambiguous and the retry around InTx does not run the function
// again; C is committed once, A (rolled back by SQLite) never.
func TestSQLiteSwallowedInterruptedSavepointStepIsAmbiguous(t *testing.T) {
	for _, do := range []bool{false, true} {
		name := "InTx"
		if do {
			name = "Do"
		}
		t.Run(name, func(t *testing.T) {
			s := newEndedScene(t)
			runs := 0
			var swallowed []error
			fn := func(ctx context.Context, tx *sql.Tx) error {
				runs++
				if err := s.write(ctx, tx, "A"); err != nil {
					return err
				}
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					_, err := tx.ExecContext(ctx, slowWrite)
					return 0, err
				})
				if _, err := step.With(dbop.WithTimeout(50*time.Millisecond), sqldb.InSavepoint(tx, sqldb.SQLite)).Run(ctx); err != nil {
					swallowed = append(swallowed, err) // best effort
				}
				return s.write(ctx, tx, "C")
			}
			var op dbop.Op[struct{}]
			if do {
				op = sqldb.Do(s.db, sqldb.SQLite, fn)
			} else {
				op = sqldb.InTx(s.db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
					return struct{}{}, fn(ctx, tx)
				})
			}
			_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
			checkEnded(t, err)
			checkInterrupted(t, swallowed)
			if len(swallowed) == 1 && dbop.VerdictOf(swallowed[0]) != dbop.RetryTransaction {
				t.Errorf("the step failed with %v (%v), want retry-transaction: the scope dooms the transaction", swallowed[0], dbop.VerdictOf(swallowed[0]))
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Run = %v, want the error that doomed the transaction in it", err)
			}
			if runs != 1 {
				t.Errorf("the function ran %d times, want once", runs)
			}
			if a, c := s.count(t, "A"), s.count(t, "C"); a != 0 || c != 1 {
				t.Errorf("committed A %d times and C %d times, want 0 and 1", a, c)
			}
		})
	}
}

// The same interrupted write without a savepoint scope. The step's own
// retry and deadline (or a deadline alone) doom nothing, since a deadline
// does not say what became of the transaction; the function swallows the
// error, writes C (committed on its own) and returns nil. InTx's COMMIT
// finds no transaction: Ambiguous, C committed once, A never.
//
// With a deadline on the whole transaction instead (dbop.WithTimeout
// around InTx, inside the retry), the function swallows the interrupted
// write and writes C with a context that outlives the deadline: InTx's
// ROLLBACK finds no transaction, so C stands: Ambiguous, not retried.
//
// A function that returns the interrupted write's error is taken at its
// word: nothing ran after it, and the retry around InTx runs the
// transaction again, each write once.
func TestSQLiteSwallowedInterruptedWriteIsAmbiguous(t *testing.T) {
	for _, tc := range []struct {
		name    string
		whole   bool // the deadline bounds the whole transaction, not the step
		retry   bool // a retry inside the transaction around the step
		returns bool // the function returns the write's error
	}{
		{name: "step deadline", retry: false},
		{name: "step retry and deadline", retry: true},
		{name: "whole deadline", whole: true},
		{name: "whole deadline, returned", whole: true, returns: true},
		{name: "step deadline, returned", returns: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newEndedScene(t)
			runs := 0
			var interrupted []error
			op := sqldb.InTx(s.db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				if err := s.write(ctx, tx, "A"); err != nil {
					return 0, err
				}
				q := slowWrite
				if runs > 1 {
					q = "INSERT INTO sqldb_ended_big VALUES (1)"
				}
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					_, err := tx.ExecContext(ctx, q)
					return 0, err
				})
				var ds []dbop.Decorator
				if tc.retry {
					ds = append(ds, dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
				}
				if !tc.whole {
					ds = append(ds, dbop.WithTimeout(50*time.Millisecond))
				}
				_, err := step.With(ds...).Run(ctx)
				if err != nil {
					interrupted = append(interrupted, err)
					if tc.returns {
						return 0, err
					}
				}
				// C outlives the transaction's deadline, as work the
				// function thinks must be done would.
				return runs, s.write(context.WithoutCancel(ctx), tx, "C")
			})
			ds := []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))}
			if tc.whole {
				ds = append(ds, dbop.WithTimeout(300*time.Millisecond))
			}
			_, err := op.With(ds...).Run(t.Context())
			checkInterrupted(t, interrupted)
			a, c := s.count(t, "A"), s.count(t, "C")
			if tc.returns {
				if err != nil || runs != 2 || a != 1 || c != 1 {
					t.Errorf("Run = %v after %d runs, A %d times, C %d times; want success after 2, each once", err, runs, a, c)
				}
				return
			}
			checkEnded(t, err)
			if runs != 1 || a != 0 || c != 1 {
				t.Errorf("%d runs, committed A %d times and C %d times; want 1 run, A 0 and C 1", runs, a, c)
			}
		})
	}
}

// The control: SQLITE_BUSY on a write keeps the transaction open. A
// savepoint step's INSERT meets another connection's write lock and fails
// with BUSY, which dooms the transaction; the function swallows it, the
// lock is released, and it writes C in the same, still open, transaction.
// InTx's ROLLBACK succeeds and undoes C, so the error stays
// RetryTransaction, with no ROLLBACK error joined to it, and the retry
// around InTx runs the transaction again: C is committed once.
func TestSQLiteSwallowedBusyInSavepointRollsBackAndRetries(t *testing.T) {
	path := testdb.SQLiteFile(t)
	db := openSQLite(t, path, sqldb.SQLiteTxLock("deferred"), sqldb.SQLiteBusyTimeout(5*time.Millisecond))
	other := openSQLite(t, path)
	mustExec(t, other, "CREATE TABLE sqldb_ended_log (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)")
	holder := conn(t, other)
	mustExec(t, holder, "BEGIN IMMEDIATE")
	held := true
	runs := 0
	var stepErrs []error
	var retried recorder
	op := sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
		runs++
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqldb_ended_log").Scan(&n); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_ended_log (k) VALUES ('step')")
			if err != nil {
				stepErrs = append(stepErrs, err)
			}
			return 0, err
		})
		_, _ = step.With(sqldb.InSavepoint(tx, sqldb.SQLite)).Run(ctx) // swallowed
		if held {
			mustExec(t, holder, "ROLLBACK")
			held = false
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_ended_log (k) VALUES ('C')")
		return runs, err
	})
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), retried.option())).Run(t.Context())
	if err != nil || runs != 2 {
		t.Errorf("Run = %v after %d runs, want success after 2", err, runs)
	}
	if len(stepErrs) != 1 || sqliteCode(stepErrs[0])&0xff != sqlite3.SQLITE_BUSY {
		t.Errorf("the step failed with %v, want once with BUSY", stepErrs)
	}
	if got := retried.all(); len(got) != 1 || dbop.VerdictOf(got[0]) != dbop.RetryTransaction ||
		sqliteCode(got[0])&0xff != sqlite3.SQLITE_BUSY || strings.Contains(got[0].Error(), "rollback") {
		t.Errorf("the retry around InTx retried %v, want one BUSY, retry-transaction, with a clean ROLLBACK", got)
	}
	for k, want := range map[string]int{"step": 1, "C": 1} {
		if got := scalar[int](t, other, "SELECT count(*) FROM sqldb_ended_log WHERE k = ?", k); got != want {
			t.Errorf("%s committed %d times, want %d", k, got, want)
		}
	}
}
