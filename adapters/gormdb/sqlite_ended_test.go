package gormdb_test

// SQLite ends a transaction on its own after an interrupted write
// (docs/backends.md §5.5, §5.6): the transaction's work is rolled back and
// the statements that follow run on their own, each committed at once. A
// function that swallows the error and goes on has then committed what it
// ran afterwards, and running the transaction again would apply it twice.
// gormdb links no SQLite driver (gorm.io/driver/sqlite needs cgo), so these
// tests script the driver's answers with the fake driver under the sqlite
// dialector's name: the interrupted write, and a ROLLBACK or COMMIT that
// finds no transaction, with the texts of modernc.org/sqlite (result codes)
// and mattn/go-sqlite3 (the message alone). adapters/sqldb's
// sqlite_ended_test.go shows the same on a live SQLite file.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"gorm.io/gorm"
)

// sqliteError is a SQLite driver's error with a result code, as
// modernc.org/sqlite's *sqlite.Error is: "message (code)".
type sqliteError struct {
	code int
	msg  string
}

func (e *sqliteError) Error() string { return fmt.Sprintf("%s (%d)", e.msg, e.code) }
func (e *sqliteError) Code() int     { return e.code }

var (
	// errInterrupted is a write cut short by its deadline (SQLITE_INTERRUPT):
	// SQLite rolls back the entire transaction, and the dialect calls it
	// RetryTransaction.
	errInterrupted = &sqliteError{9, "interrupted"}
	// errNoTxRollback and errNoTxCommit answer ROLLBACK and COMMIT once
	// SQLite has ended the transaction, as modernc.org/sqlite does
	// (SQLITE_ERROR, which the dialect leaves unclassified).
	errNoTxRollback = &sqliteError{1, "SQL logic error: cannot rollback - no transaction is active"}
	errNoTxCommit   = &sqliteError{1, "SQL logic error: cannot commit - no transaction is active"}
)

// The statements of the scripted transactions.
const (
	writeA = "INSERT INTO log (k) VALUES ('A')"
	writeB = "INSERT INTO log (k) VALUES ('B')" // the write that is interrupted
	writeC = "INSERT INTO log (k) VALUES ('C')" // run after the interruption
	writeD = "INSERT INTO log (k) VALUES ('D')"
)

// execIn runs stmt on tx with ctx and returns its error.
func execIn(ctx context.Context, tx *gorm.DB, stmt string) error {
	return tx.WithContext(ctx).Exec(stmt).Error
}

// checkTxEnded checks that err, the error of Run, reports a transaction
// SQLite had ended while the function went on: Ambiguous, so that no retry
// runs it again, with the *sqldialect.TxEndedError that says so, and no
// ROLLBACK error joined to it (the ROLLBACK's answer is the explanation).
func checkTxEnded(t *testing.T, err error) {
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
	if err != nil && strings.Contains(err.Error(), "(rollback: ") {
		t.Errorf("Run = %q, want no ROLLBACK error joined to it", err)
	}
}

// sqliteInterruptedRun is one scripted transaction whose write B is
// interrupted and whose function swallows that and goes on.
type sqliteInterruptedRun struct {
	savepoint bool // B runs in a gormdb.InSavepoint step, which dooms the transaction
	retry     bool // B runs under a dbop.WithRetry inside the transaction, which dooms it
	whole     bool // a deadline on the whole transaction interrupts B (no doom recorded)
	failLater bool // the function goes on to write C, then fails on D and returns that
	do        bool // gormdb.Do rather than gormdb.InTx
}

// run runs the transaction under a retry of three attempts around InTx or
// Do, on the fake driver scripted beforehand, and returns how many times
// the function ran, the errors the step returned to it, the errors the
// retry around the transaction retried, and Run's error.
func (r sqliteInterruptedRun) run(t *testing.T, db *gorm.DB) (runs int, swallowed, retried []error, err error) {
	t.Helper()
	fn := func(ctx context.Context, tx *gorm.DB) error {
		runs++
		if err := execIn(ctx, tx, writeA); err != nil {
			return err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) { return 0, execIn(ctx, tx, writeB) })
		var ds []dbop.Decorator
		if r.retry {
			ds = append(ds, dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)))
			if !r.savepoint {
				ds = append(ds, dbop.ClassifyBy(sqldb.SQLite.Classify)) // the scope classifies otherwise
			}
		}
		if r.savepoint {
			ds = append(ds, gormdb.InSavepoint(tx))
		}
		if _, err := step.With(ds...).Run(ctx); err != nil {
			swallowed = append(swallowed, err) // best effort
		}
		// C outlives a deadline on the transaction, as work the function
		// thinks must be done would.
		if err := execIn(context.WithoutCancel(ctx), tx, writeC); err != nil || !r.failLater {
			return err
		}
		return execIn(ctx, tx, writeD)
	}
	var op dbop.Op[struct{}]
	if r.do {
		op = gormdb.Do(db, fn)
	} else {
		op = gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (struct{}, error) { return struct{}{}, fn(ctx, tx) })
	}
	ds := []dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
		dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) }))}
	if r.whole {
		ds = append(ds, dbop.WithTimeout(50*time.Millisecond))
	}
	_, err = op.With(ds...).Run(t.Context())
	return runs, swallowed, retried, err
}

// script makes B fail as the run says it is interrupted: with
// SQLITE_INTERRUPT, or, under a deadline on the whole transaction, by
// waiting for that deadline. With failLater, D fails once.
func (r sqliteInterruptedRun) script(f *fakeDB) {
	if r.whole {
		f.blockNext(writeB) // never released: the deadline ends it
	} else {
		f.failNext(writeB, errInterrupted)
	}
	if r.failLater {
		f.failNext(writeD, errScripted)
	}
}

// firstAttempt returns the statements the first attempt sends, up to and
// including its ROLLBACK.
func (r sqliteInterruptedRun) firstAttempt() []string {
	log := []string{"BEGIN", writeA}
	if r.savepoint {
		log = append(log, `SAVEPOINT "dbop_sp_1"`)
	}
	log = append(log, writeB, writeC)
	if r.failLater {
		log = append(log, writeD)
	}
	return append(log, "ROLLBACK")
}

// A write interrupted inside the transaction makes SQLite roll back the
// whole of it; the function swallows the error and goes on, and what it
// runs next (C) is committed on its own. Each case dooms the transaction
// (a savepoint scope or a retry inside the transaction that saw the
// RetryTransaction error) or ends its context (a deadline on the whole
// transaction), so InTx rolls back: SQLite answers that no transaction is
// active, and the error is Ambiguous, not RetryTransaction, so the retry
// around InTx does not run the function again and apply C twice. The
// ROLLBACK is sent once: the owner's rollback reports the early one's
// outcome.
func TestSQLiteSwallowedInterruptedWriteIsAmbiguousGORM(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    sqliteInterruptedRun
	}{
		{"savepoint step", sqliteInterruptedRun{savepoint: true}},
		{"savepoint step, Do", sqliteInterruptedRun{savepoint: true, do: true}},
		{"savepoint step, then a failure", sqliteInterruptedRun{savepoint: true, failLater: true}},
		{"retry inside the transaction", sqliteInterruptedRun{retry: true}},
		{"retry and savepoint step", sqliteInterruptedRun{retry: true, savepoint: true}},
		{"deadline on the whole transaction", sqliteInterruptedRun{whole: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, f := fakeGORM(t, "sqlite", nil)
			tc.r.script(f)
			f.failNext("ROLLBACK", errNoTxRollback)
			runs, swallowed, retried, err := tc.r.run(t, db)
			checkTxEnded(t, err)
			if len(swallowed) != 1 {
				t.Fatalf("the step failed %d times (%v), want once: the fault did not fire", len(swallowed), swallowed)
			}
			if tc.r.whole {
				if !errors.Is(swallowed[0], context.DeadlineExceeded) {
					t.Errorf("the step failed with %v, want the transaction's deadline", swallowed[0])
				}
			} else {
				if !errors.Is(swallowed[0], errInterrupted) || dbop.VerdictOf(swallowed[0]) != dbop.RetryTransaction {
					t.Errorf("the step failed with %v (%v), want the interrupted write, retry-transaction", swallowed[0], dbop.VerdictOf(swallowed[0]))
				}
				if !errors.Is(err, errInterrupted) {
					t.Errorf("Run = %v, want the error that doomed the transaction in it", err)
				}
			}
			if tc.r.failLater && !errors.Is(err, errScripted) {
				t.Errorf("Run = %v, want the function's own error in it", err)
			}
			if !errors.Is(err, errNoTxRollback) {
				t.Errorf("Run = %v, want the ROLLBACK's answer in it", err)
			}
			if runs != 1 || len(retried) != 0 {
				t.Errorf("the function ran %d times, the retry around the transaction retried %v; want once, nothing", runs, retried)
			}
			checkLog(t, tc.r.firstAttempt(), f.Log())
		})
	}
}

// The control: SQLite kept the transaction open (SQLITE_BUSY does, and so
// does an error that did not end it), so the ROLLBACK succeeds and undoes
// what the function ran after the error. The error keeps its verdict,
// RetryTransaction, with no ROLLBACK error joined to it, and the retry
// around InTx runs the transaction again, which commits. ROLLBACK is sent
// once for the first attempt. A ROLLBACK that fails otherwise (here with
// a scripted error) says nothing about what SQLite did: the error keeps
// its verdict too, with the ROLLBACK's error joined to it as after any
// failed rollback, which the early ROLLBACK must not lose (database/sql
// answers a second Rollback with sql.ErrTxDone, which is no error here).
func TestSQLiteSwallowedErrorRollsBackAndRetriesWhenTheTransactionStayedOpenGORM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		r      sqliteInterruptedRun
		rbFail bool // the first ROLLBACK fails with errScripted
	}{
		{"savepoint step", sqliteInterruptedRun{savepoint: true}, false},
		{"savepoint step, Do", sqliteInterruptedRun{savepoint: true, do: true}, false},
		{"retry inside the transaction", sqliteInterruptedRun{retry: true}, false},
		{"savepoint step, ROLLBACK failing otherwise", sqliteInterruptedRun{savepoint: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, f := fakeGORM(t, "sqlite", nil)
			tc.r.script(f)
			if tc.rbFail {
				f.failNext("ROLLBACK", errScripted)
			}
			runs, swallowed, retried, err := tc.r.run(t, db)
			if err != nil || runs != 2 {
				t.Errorf("Run = %v after %d runs, want success after 2", err, runs)
			}
			if len(swallowed) != 1 || !errors.Is(swallowed[0], errInterrupted) {
				t.Fatalf("the step failed with %v, want once with the scripted error: the fault did not fire", swallowed)
			}
			if len(retried) != 1 || dbop.VerdictOf(retried[0]) != dbop.RetryTransaction || !errors.Is(retried[0], errInterrupted) {
				t.Fatalf("the retry around the transaction retried %v, want the scripted error once, retry-transaction", retried)
			}
			if _, ended := errors.AsType[*sqldialect.TxEndedError](retried[0]); ended {
				t.Errorf("the retry around the transaction retried %v, want no *sqldialect.TxEndedError in it", retried[0])
			}
			joined := strings.Contains(retried[0].Error(), "(rollback: ")
			if tc.rbFail && (!joined || !errors.Is(retried[0], errScripted)) {
				t.Errorf("the retry around the transaction retried %q, want the ROLLBACK's error joined to it", retried[0])
			}
			if !tc.rbFail && joined {
				t.Errorf("the retry around the transaction retried %q, want a clean ROLLBACK", retried[0])
			}
			want := tc.r.firstAttempt()
			want = append(want, "BEGIN", writeA)
			if tc.r.savepoint {
				want = append(want, `SAVEPOINT "dbop_sp_1"`, writeB, `RELEASE SAVEPOINT "dbop_sp_1"`)
			} else {
				want = append(want, writeB)
			}
			checkLog(t, append(want, writeC, "COMMIT"), f.Log())
		})
	}
}

// The function swallows an interrupted write that no scope saw (no
// savepoint, no retry: nothing dooms the transaction), writes C, committed
// on its own, and returns nil. COMMIT finds no transaction: the outcome
// is Ambiguous, with a *sqldialect.TxEndedError saying why, and the retry
// around InTx does not run the function again. modernc.org/sqlite's answer
// carries SQLITE_ERROR, which the dialect's COMMIT rules would call "not
// committed"; mattn/go-sqlite3's has no code.
func TestSQLiteCommitFindingNoTransactionIsAmbiguousGORM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer error
	}{
		{"modernc", errNoTxCommit},
		{"mattn", errors.New("cannot commit - no transaction is active")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, f := fakeGORM(t, "sqlite", nil)
			f.failNext(writeB, errInterrupted)
			f.failNext("COMMIT", tc.answer)
			runs := 0
			var swallowed, retried []error
			_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				runs++
				if err := execIn(ctx, tx, writeA); err != nil {
					return err
				}
				if err := execIn(ctx, tx, writeB); err != nil {
					swallowed = append(swallowed, err)
				}
				return execIn(ctx, tx, writeC)
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
				dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) }))).Run(t.Context())
			if len(swallowed) != 1 || !errors.Is(swallowed[0], errInterrupted) {
				t.Fatalf("B failed with %v, want once with the interrupt: the fault did not fire", swallowed)
			}
			if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
				t.Errorf("Run = %v (%v), want ambiguous", err, v)
			}
			if _, ok := errors.AsType[*sqldialect.TxEndedError](err); !ok {
				t.Errorf("Run = %v, want a *sqldialect.TxEndedError in it", err)
			}
			if !errors.Is(err, tc.answer) || err == nil || !strings.Contains(err.Error(), "SQLite had already ended the transaction") {
				t.Errorf("Run = %v, want the COMMIT's answer in it, and to say that SQLite had ended the transaction", err)
			}
			if runs != 1 || len(retried) != 0 {
				t.Errorf("the function ran %d times, the retry around the transaction retried %v; want once, nothing", runs, retried)
			}
			checkLog(t, []string{"BEGIN", writeA, writeB, writeC, "COMMIT"}, f.Log())
		})
	}
}
