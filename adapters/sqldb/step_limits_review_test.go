package sqldb_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// the caller's own transaction on MariaDB (db.BeginTx with a
// cancelable context). The caller's context is canceled while a step with
// a per-attempt WithTimeout runs Go code between statements: database/sql
// rolls the transaction back by itself and, since go-sql-driver is a
// SessionResetter and a Validator, puts the connection back in the pool.
// The step's restore then fails with sql.ErrTxDone, and the pooled
// connection keeps the step's max_statement_time.
func TestStepLimitsCanceledCallerLeavesNoStepLimitOnPooledConnMariaDB(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(1)
	before := scalar[string](t, db, spLimitsMariaDB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	_, stepErr := dbop.Op[int](func(ctx context.Context) (int, error) {
		if err := tx.QueryRowContext(ctx, spLimitsMariaDB).Scan(&inside); err != nil {
			return 0, err
		}
		cancel()                          // the caller gives up (an HTTP client went away)
		time.Sleep(50 * time.Millisecond) // database/sql's awaitDone rolls back meanwhile
		return 0, ctx.Err()
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1)), dbop.WithTimeout(3*time.Second), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
	t.Logf("step error: %v", stepErr)
	_ = tx.Rollback()
	after := scalar[string](t, db, spLimitsMariaDB)
	t.Logf("max_statement_time before %s, inside the step %s, at the next checkout %s", before, inside, after)
	if after != before {
		t.Errorf("the pooled connection kept the step's max_statement_time: %s, was %s", after, before)
	}
}

// nested steps on MariaDB under InTx with a deadline: the inner
// step waits on a rival's lock, its limit ends the wait (1969), it is
// retried once the rival lets go; the limits in force are each level's
// while it runs, the outer's again after the inner, InTx's after the outer,
// and the session's default (a DSN-independent SET) at the next checkout.
func TestStepLimitsNestedStepLimitsMariaDB(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(2)
	tbl := table(t, db, "sqldb_step_limits_nested", "(id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0)")
	release := rivalHoldsRow1(t, db, tbl, 0) // until the inner step's first attempt has failed
	var log []string
	show := func(ctx context.Context, tx *sql.Tx, what string) {
		var s string
		if err := tx.QueryRowContext(ctx, spLimitsMariaDB).Scan(&s); err != nil {
			t.Fatal(err)
		}
		log = append(log, what+" "+s)
	}
	inner := 0
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		show(ctx, tx, "intx")
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			show(ctx, tx, "outer")
			// 500 ms: the step's limit is the time left less 50 ms,
			// which ends the UPDATE's lock wait before the deadline
			// would, even after the round trip before it on a machine
			// busy with the race detector (a 300 ms step leaves 30 ms;
			// pgxdb's version of this test once ran out of them).
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				inner++
				show(ctx, tx, "inner")
				_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1")
				return 0, err
			}).With(dbop.WithRetry(dbop.Constant(100*time.Millisecond), dbop.MaxAttempts(10), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { release() })), dbop.WithTimeout(500*time.Millisecond), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
			show(ctx, tx, "outer after inner")
			return 0, err
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2)), dbop.WithTimeout(5*time.Second), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
		show(ctx, tx, "intx after")
		return err
	}).Run(ctx)
	for _, l := range log {
		t.Log(l)
	}
	db.SetMaxOpenConns(1) // both connections: check each
	for i := 0; i < 2; i++ {
		if v := scalar[string](t, db, spLimitsMariaDB); v != "0.000000" {
			t.Errorf("a pooled connection has max_statement_time %s", v)
		}
	}
	if v := scalar[int](t, db, "SELECT v FROM "+tbl+" WHERE id = 1"); err != nil || inner < 2 || v != 1 {
		t.Errorf("err %v, inner attempts %d, v %d; want nil, >= 2, 1", err, inner, v)
	}
}

// a MariaDB deadlock (1213) in a step with a per-attempt
// WithTimeout, under InTx without a deadline of its own (so InTx keeps no
// session limit to restore): MariaDB rolls the whole transaction back; the
// step's restore must still run, InTx must run the transaction again, the
// work must be applied once, and no connection of the pool may keep the
// step's max_statement_time.
func TestStepLimitsDeadlockInStepMariaDB(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(3)
	tbl := table(t, db, "sqldb_step_limits_dl", "(id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
	rival, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The rival is heavier (more undo), so InnoDB picks our transaction.
	if _, err := rival.ExecContext(t.Context(), "INSERT INTO "+tbl+" VALUES (10,0),(11,0),(12,0),(13,0),(14,0),(15,0)"); err != nil {
		t.Fatal(err)
	}
	if _, err := rival.ExecContext(t.Context(), "UPDATE "+tbl+" SET v = v + 100 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	attempts, steps := 0, 0
	rivalDone := make(chan error, 1)
	_, err = sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		attempts++
		if _, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1"); err != nil {
			return err
		}
		if attempts == 1 {
			go func() {
				//dbopvet:ignore the rival is another transaction on purpose: it forms the deadlock
				_, err := rival.ExecContext(context.Background(), "UPDATE "+tbl+" SET v = v + 100 WHERE id = 1")
				if err == nil {
					err = rival.Commit()
				} else {
					_ = rival.Rollback()
				}
				rivalDone <- err
			}()
			time.Sleep(100 * time.Millisecond) // the rival waits for row 1
		}
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			steps++
			_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 2")
			return 0, err
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.WithTimeout(3*time.Second), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
		return err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(t.Context())
	rerr := <-rivalDone
	t.Logf("transaction attempts %d, step attempts %d, err %v, rival %v", attempts, steps, err, rerr)
	var conns []*sql.Conn
	for i := 0; i < 3; i++ {
		c, cerr := db.Conn(t.Context())
		if cerr != nil {
			t.Fatal(cerr)
		}
		conns = append(conns, c)
		var v string
		if err := c.QueryRowContext(t.Context(), spLimitsMariaDB).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "0.000000" {
			t.Errorf("connection %d has max_statement_time %s", i, v)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	got := scalar[string](t, db, "SELECT GROUP_CONCAT(v ORDER BY id) FROM "+tbl+" WHERE id <= 2")
	t.Logf("rows: %s", got)
	if err != nil || attempts != 2 || got != "101,101" {
		t.Errorf("want success after 2 transaction attempts and 101,101")
	}
}

// the same cancellation inside InTx (no deadline of InTx's own,
// so InTx keeps no session limit): InTx begins with a context that ignores
// the caller's cancellation, so the step's restore still runs.
func TestStepLimitsCanceledCallerInsideInTxMariaDB(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stepErr error
	_, err := sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
		_, stepErr = dbop.Op[int](func(ctx context.Context) (int, error) {
			if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
				return 0, err
			}
			cancel()
			time.Sleep(50 * time.Millisecond)
			return 0, ctx.Err()
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1)), dbop.WithTimeout(3*time.Second), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
		return stepErr
	}).Run(ctx)
	after := scalar[string](t, db, spLimitsMariaDB)
	t.Logf("step %v; InTx %v; next checkout %s", stepErr, err, after)
	if after != "0.000000" {
		t.Errorf("leaked %s", after)
	}
}

// the common form of the leak: the caller's own transaction
// begun with a request context that has a deadline, a step with a retry
// and no WithTimeout of its own ("outside InTx, any deadline counts"); the
// request's deadline passes while the step works between statements.
func TestStepLimitsRequestDeadlineLeavesNoStepLimitMariaDB(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, stepErr := dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
			return 0, err
		}
		time.Sleep(400 * time.Millisecond) // work between statements outlasts the request
		_, err := tx.ExecContext(ctx, "SELECT 2")
		return 0, err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1)), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
	_ = tx.Rollback()
	after := scalar[string](t, db, spLimitsMariaDB)
	t.Logf("step %v; next checkout max_statement_time %s", stepErr, after)
	if after != "0.000000" {
		t.Errorf("the pooled connection kept the step's max_statement_time %s", after)
	}
}

// rivalHoldsRow1 begins a transaction on db that updates row 1 of tbl,
// holding its lock, and rolls it back after d (0: when the test ends), and
// at the test's end in any case: no goroutine or timer outlives the test.
func rivalHoldsRow1(t *testing.T, db *sql.DB, tbl string, d time.Duration) (release func()) {
	t.Helper()
	rival, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rival.ExecContext(t.Context(), "UPDATE "+tbl+" SET v = v + 100 WHERE id = 1"); err != nil {
		_ = rival.Rollback()
		t.Fatal(err)
	}
	if d > 0 {
		timer := time.AfterFunc(d, func() { _ = rival.Rollback() })
		t.Cleanup(func() { timer.Stop() })
	}
	t.Cleanup(func() { _ = rival.Rollback() })
	return func() { _ = rival.Rollback() }
}
