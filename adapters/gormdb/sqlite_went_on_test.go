package gormdb_test

// A function that runs more statements after SQLite ended its transaction
// (an interrupted write, docs/backends.md §5.5, §5.6) and then returns the
// error that ended it: what it ran afterwards was committed on its own, and
// running the transaction again would apply it twice. InTx's pool sees
// those statements go out after the error, and InTx asks SQLite with the
// ROLLBACK it owes whether the transaction had ended. Scripted with the
// fake driver, as in sqlite_ended_test.go.

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

var (
	// errFull is SQLITE_FULL, which may end the transaction and which the
	// dialect leaves unclassified.
	errFull = &sqliteError{13, "database or disk is full"}
	// errUnique is a unique constraint's failure (SQLITE_CONSTRAINT_UNIQUE),
	// which keeps the transaction open; the dialect calls it NotRetryable.
	errUnique = &sqliteError{2067, "UNIQUE constraint failed: log.k"}
)

// gormSavepointName matches the names of GORM's nested transactions'
// savepoints, which are random.
var gormSavepointName = regexp.MustCompile(`SAVEPOINT sp[0-9]+$`)

// sqliteLog returns the statements f ran, with the names of GORM's
// savepoints replaced by "sp".
func sqliteLog(f *fakeDB) []string {
	log := f.Log()
	for i, s := range log {
		log[i] = gormSavepointName.ReplaceAllString(s, "SAVEPOINT sp")
	}
	return log
}

// nestingDialector is the fake driver's dialector with GORM's savepoint
// methods, written as gorm.io/driver/sqlite writes them, so that GORM's
// nested tx.Transaction runs on it (namedDialector does not promote them).
type nestingDialector struct{ gorm.Dialector }

func (nestingDialector) SavePoint(tx *gorm.DB, name string) error {
	return tx.Exec("SAVEPOINT " + name).Error
}

func (nestingDialector) RollbackTo(tx *gorm.DB, name string) error {
	return tx.Exec("ROLLBACK TO SAVEPOINT " + name).Error
}

// fakeSQLite is fakeGORM(t, "sqlite", nil) with GORM's nested transactions.
func fakeSQLite(t *testing.T) (*gorm.DB, *fakeDB) {
	t.Helper()
	db, f := fakeGORM(t, "sqlite", nil)
	db.Dialector = nestingDialector{db.Dialector}
	return db, f
}

// sqliteWentOn is one scripted transaction whose write B fails, after
// which the function may write C before returning B's error.
type sqliteWentOn struct {
	bErr      error // B's scripted error; nil: B blocks until the step's deadline
	nested    bool  // B runs in GORM's nested tx.Transaction
	savepoint bool  // B runs in a gormdb.InSavepoint step, which dooms the transaction
	goOn      bool  // the function writes C after B failed
}

// run runs the transaction under a retry of three attempts around InTx,
// on the fake driver scripted beforehand, and returns how many times the
// function ran, the errors B's step returned to it, the errors the retry
// around InTx retried, and Run's error. Only the first run's B fails.
func (r sqliteWentOn) run(t *testing.T, db *gorm.DB) (runs int, stepErrs, retried []error, err error) {
	t.Helper()
	op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (struct{}, error) {
		runs++
		if err := execIn(ctx, tx, writeA); err != nil {
			return struct{}{}, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) { return 0, execIn(ctx, tx, writeB) })
		if r.bErr == nil {
			step = step.With(dbop.WithTimeout(20 * time.Millisecond))
		}
		if r.savepoint {
			step = step.With(gormdb.InSavepoint(tx))
		}
		var err error
		if r.nested {
			err = tx.WithContext(ctx).Transaction(func(*gorm.DB) error {
				_, err := step.Run(ctx)
				return err
			})
		} else {
			_, err = step.Run(ctx)
		}
		if err != nil {
			stepErrs = append(stepErrs, err)
		}
		if r.goOn {
			if werr := execIn(ctx, tx, writeC); werr != nil {
				return struct{}{}, werr
			}
		}
		return struct{}{}, err
	})
	_, err = op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
		dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) }))).Run(t.Context())
	return runs, stepErrs, retried, err
}

// script makes the first run's B fail as the case says.
func (r sqliteWentOn) script(f *fakeDB) {
	if r.bErr == nil {
		f.blockNext(writeB) // never released: the step's deadline ends it
	} else {
		f.failNext(writeB, r.bErr)
	}
}

// attempt returns the statements of one run up to its COMMIT or ROLLBACK,
// end, with B failing when failed.
func (r sqliteWentOn) attempt(goOn bool, end string) []string {
	log := []string{"BEGIN", writeA}
	if r.nested {
		log = append(log, "SAVEPOINT sp")
	}
	if r.savepoint {
		log = append(log, `SAVEPOINT "dbop_sp_1"`)
	}
	log = append(log, writeB)
	if r.savepoint && end == "COMMIT" {
		log = append(log, `RELEASE SAVEPOINT "dbop_sp_1"`)
	}
	if r.nested && end == "ROLLBACK" {
		log = append(log, "ROLLBACK TO SAVEPOINT sp") // GORM's, after the error
	}
	if goOn {
		log = append(log, writeC)
	}
	return append(log, end)
}

// B fails in a way that ended the transaction; the function writes C,
// which SQLite commits at once, and returns B's error. InTx's ROLLBACK
// finds no transaction: Run is Ambiguous, with B's error in it, after one
// run, and the retry around InTx does not run the function again to apply
// C twice. Neither the interrupt nor a step's deadline nor SQLITE_FULL
// dooms the transaction (no scope saw them): only the statement sent after
// them tells that the function went on. GORM's ROLLBACK TO SAVEPOINT after
// the error does not count; C does.
func TestSQLiteErrorReturnedAfterGoingOnIsAmbiguousGORM(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    sqliteWentOn
	}{
		{"interrupted write", sqliteWentOn{bErr: errInterrupted, goOn: true}},
		{"the step's deadline", sqliteWentOn{goOn: true}},
		{"SQLITE_FULL", sqliteWentOn{bErr: errFull, goOn: true}},
		{"interrupted write in tx.Transaction", sqliteWentOn{bErr: errInterrupted, nested: true, goOn: true}},
		{"interrupted write in InSavepoint", sqliteWentOn{bErr: errInterrupted, savepoint: true, goOn: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, f := fakeSQLite(t)
			tc.r.script(f)
			f.failNext("ROLLBACK", errNoTxRollback)
			runs, stepErrs, retried, err := tc.r.run(t, db)
			if len(stepErrs) != 1 {
				t.Fatalf("B's step failed %d times (%v), want once: the fault did not fire", len(stepErrs), stepErrs)
			}
			want := tc.r.bErr
			if want == nil {
				want = context.DeadlineExceeded
			}
			if !errors.Is(stepErrs[0], want) {
				t.Fatalf("B's step failed with %v, want %v: the fault did not fire", stepErrs[0], want)
			}
			checkTxEnded(t, err)
			if !errors.Is(err, want) || !errors.Is(err, errNoTxRollback) {
				t.Errorf("Run = %v, want B's error and the ROLLBACK's answer in it", err)
			}
			if runs != 1 || len(retried) != 0 {
				t.Errorf("the function ran %d times, the retry around the transaction retried %v; want once, nothing", runs, retried)
			}
			checkLog(t, tc.r.attempt(true, "ROLLBACK"), sqliteLog(f))
		})
	}
}

// The controls, which the retry around InTx runs again: the function
// returns B's error at once, with nothing but GORM's ROLLBACK TO SAVEPOINT
// sent after it, so it is taken at its word even though SQLite had ended
// the transaction; or it wrote C, but SQLite kept the transaction open, and
// the ROLLBACK undid C; or the error it swallowed before going on (a
// constraint's) keeps the transaction open, and the error that ended it
// came last. ROLLBACK is sent once for the first run.
func TestSQLiteErrorReturnedAfterGoingOnIsRetriedWhenNothingRanAfterTheEndGORM(t *testing.T) {
	t.Run("returned at once", func(t *testing.T) {
		for _, r := range []sqliteWentOn{{bErr: errInterrupted}, {bErr: errInterrupted, nested: true}} {
			db, f := fakeSQLite(t)
			r.script(f)
			f.failNext("ROLLBACK", errNoTxRollback)
			runs, stepErrs, retried, err := r.run(t, db)
			if len(stepErrs) != 1 || !errors.Is(stepErrs[0], errInterrupted) {
				t.Fatalf("nested %v: B's step failed with %v, want the interrupt once: the fault did not fire", r.nested, stepErrs)
			}
			if err != nil || runs != 2 || len(retried) != 1 || dbop.VerdictOf(retried[0]) != dbop.RetryTransaction {
				t.Errorf("nested %v: Run = %v after %d runs, retried %v; want success after 2, the interrupt retried", r.nested, err, runs, retried)
			}
			checkLog(t, append(r.attempt(false, "ROLLBACK"), r.attempt(false, "COMMIT")...), sqliteLog(f))
		}
	})
	t.Run("the transaction stayed open", func(t *testing.T) {
		r := sqliteWentOn{bErr: errInterrupted, goOn: true}
		db, f := fakeSQLite(t)
		r.script(f)
		runs, stepErrs, retried, err := r.run(t, db)
		if len(stepErrs) != 1 || !errors.Is(stepErrs[0], errInterrupted) {
			t.Fatalf("B's step failed with %v, want the interrupt once: the fault did not fire", stepErrs)
		}
		if err != nil || runs != 2 || len(retried) != 1 || !errors.Is(retried[0], errInterrupted) {
			t.Errorf("Run = %v after %d runs, retried %v; want success after 2, the interrupt retried", err, runs, retried)
		}
		checkLog(t, append(r.attempt(true, "ROLLBACK"), r.attempt(true, "COMMIT")...), sqliteLog(f))
	})
	t.Run("a constraint swallowed before", func(t *testing.T) {
		db, f := fakeSQLite(t)
		f.failNext(writeB, errUnique)
		f.failNext(writeD, errInterrupted)
		f.failNext("ROLLBACK", errNoTxRollback)
		runs := 0
		var swallowed, retried []error
		_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
			runs++
			if err := execIn(ctx, tx, writeA); err != nil {
				return err
			}
			if err := execIn(ctx, tx, writeB); err != nil {
				swallowed = append(swallowed, err) // a duplicate is fine
			}
			if err := execIn(ctx, tx, writeC); err != nil {
				return err
			}
			return execIn(ctx, tx, writeD)
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) }))).Run(t.Context())
		if len(swallowed) != 1 || !errors.Is(swallowed[0], errUnique) {
			t.Fatalf("B failed with %v, want the constraint once: the fault did not fire", swallowed)
		}
		if err != nil || runs != 2 || len(retried) != 1 || !errors.Is(retried[0], errInterrupted) {
			t.Errorf("Run = %v after %d runs, retried %v; want success after 2, the interrupt retried", err, runs, retried)
		}
		checkLog(t, []string{"BEGIN", writeA, writeB, writeC, writeD, "ROLLBACK", "BEGIN", writeA, writeB, writeC, writeD, "COMMIT"}, f.Log())
	})
}
