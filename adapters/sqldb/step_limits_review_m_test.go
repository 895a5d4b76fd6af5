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

// (3a): txmark.State.Owned is the nearest state's, not the
// transaction's. Inside InTx (on pool A), the caller begins a transaction of
// its own on pool B with a cancelable context derived from InTx's and runs a
// savepoint step on it with the context InTx handed it. The step sees InTx's
// owned state and sets MariaDB session limits on B's connection; the caller's
// context is canceled while the step runs Go code, database/sql rolls B back
// and pools its connection, the restore fails with sql.ErrTxDone, and the
// next checkout of B keeps the step's max_statement_time: the leak 18fd383
// fixed for a caller's transaction outside InTx.
func TestStepLimitsCallersTxInsideInTxLeavesNoStepLimitOnPooledConnMariaDB(t *testing.T) {
	dbA := openMariaDB(t)
	dbB := openMariaDB(t)
	dbB.SetMaxOpenConns(1)
	before := scalar[string](t, dbB, spLimitsMariaDB)
	var inside string
	var stepErr error
	_, err := sqldb.Do(dbA, mysqldb.MariaDB, func(ctx context.Context, _ *sql.Tx) error {
		bctx, cancel := context.WithCancel(ctx) // the caller's own, e.g. a sub-request's
		defer cancel()
		txB, err := dbB.BeginTx(bctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = txB.Rollback() }()
		_, stepErr = dbop.Op[int](func(sctx context.Context) (int, error) {
			if err := txB.QueryRowContext(sctx, spLimitsMariaDB).Scan(&inside); err != nil {
				return 0, err
			}
			cancel()                          // B's work is given up
			time.Sleep(50 * time.Millisecond) // database/sql's awaitDone rolls B back meanwhile
			return 0, nil
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1)), dbop.WithTimeout(3*time.Second), sqldb.InSavepoint(txB, mysqldb.MariaDB)).Run(ctx)
		return nil
	}).Run(t.Context())
	after := scalar[string](t, dbB, spLimitsMariaDB)
	t.Logf("InTx: %v; step: %v; B's max_statement_time before %s, inside the step %s, at the next checkout %s", err, stepErr, before, inside, after)
	if after != before {
		t.Errorf("B's pooled connection kept the step's max_statement_time: %s, was %s", after, before)
	}
}

// (3a): a caller's raw MariaDB transaction with a per-attempt
// WithTimeout: the step sets nothing, the deadline closes the connection
// (the old behaviour). Nothing of the transaction may be committed, the
// caller's Commit must fail, the pool must not keep a session limit, and
// the row the transaction wrote before the step: how long is it locked?
func TestStepLimitsCallersMariaDBTxStepDeadline(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(3)
	tbl := table(t, db, "sqldb_review_m_callers", "(id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
	rivalHoldsRow1(t, db, tbl, 3*time.Second)
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), "UPDATE "+tbl+" SET v = v + 1 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	_, stepErr := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1")
		return 0, err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.WithTimeout(200*time.Millisecond), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(t.Context())
	cerr := tx.Commit()
	t.Logf("step: %v; commit: %v", stepErr, cerr)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 10 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	t.Logf("row 2 (written by the lost transaction before the step) was locked for another %v", time.Since(start).Round(10*time.Millisecond))
	var v1, v2 int
	if err := db.QueryRowContext(t.Context(), "SELECT (SELECT v FROM "+tbl+" WHERE id=1), (SELECT v FROM "+tbl+" WHERE id=2)").Scan(&v1, &v2); err != nil {
		t.Fatal(err)
	}
	limits := []string{}
	for range 3 {
		limits = append(limits, scalar[string](t, db, spLimitsMariaDB))
	}
	t.Logf("v1 %d v2 %d; max_statement_time on checkouts %v", v1, v2, limits)
	if cerr == nil || v1 != 0 || v2 != 10 {
		t.Errorf("commit %v, v1 %d, v2 %d; want an error, 0, 10", cerr, v1, v2)
	}
}

// (2), MariaDB: a step's own deadline (context.WithTimeout in fn)
// inside InTx sets the step's limits when InTx has a deadline, and nothing
// when it has none (45fcdbc): the go-sql-driver then closes InTx's
// connection at the deadline and InTx's transaction is lost.
func TestStepLimitsStepDeadlineInsideInTxWithoutDeadlineMariaDB(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(3)
	tbl := table(t, db, "sqldb_review_m_nodeadline", "(id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
	for _, intxDeadline := range []bool{true, false} {
		t.Run(map[bool]string{true: "InTx with deadline", false: "InTx without deadline"}[intxDeadline], func(t *testing.T) {
			rivalHoldsRow1(t, db, tbl, 0)
			var stepErr error
			attempts := 0
			op := sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
				attempts++
				if _, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 2"); err != nil {
					return err
				}
				sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				_, stepErr = dbop.Op[int](func(ctx context.Context) (int, error) {
					_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1")
					return 0, err
				}).With(sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(sctx)
				return nil // the step is optional
			})
			if intxDeadline {
				op = op.With(dbop.WithTimeout(time.Minute))
			}
			_, err := op.Run(t.Context())
			t.Logf("step: %v; InTx: %v (attempts %d, verdict %v)", stepErr, err, attempts, dbop.VerdictOf(err))
			if err != nil {
				t.Errorf("InTx failed: %v", err)
			}
		})
	}
}
