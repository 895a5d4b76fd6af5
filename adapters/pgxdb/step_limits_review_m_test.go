package pgxdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// Inside InTx, a step's deadline earlier than InTx's becomes server limits;
// inside an InTx whose context has no deadline, any deadline of the step's
// does (it was set inside the function InTx runs), marked or not: the
// caller's own context.WithTimeout inside fn, a dbop.WithTimeout given in a
// second With call, a WithTimeout around a Then of two savepoint steps. The
// server ends the lock wait and InTx's transaction goes on; a version that
// asked for the WithTimeout mark there let the driver close the connection
// (found by a review). Each shape runs with and without a deadline on InTx.
func TestStepLimitsStepDeadlineInsideInTxWithoutDeadline(t *testing.T) {
	admin := newPool(t, 2)
	tbl := "pgxdb_review_m_intx_nodeadline"
	createTable(t, admin, tbl, "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO "+tbl+" VALUES (1, 0)")
	shapes := map[string]func(ctx context.Context, tx pgx.Tx, step dbop.Op[int]) error{
		"context.WithTimeout in fn": func(ctx context.Context, tx pgx.Tx, step dbop.Op[int]) error {
			sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := step.With(pgxdb.InSavepoint(tx)).Run(sctx)
			return err
		},
		"WithTimeout in a second With": func(ctx context.Context, tx pgx.Tx, step dbop.Op[int]) error {
			_, err := step.With(pgxdb.InSavepoint(tx)).With(dbop.WithTimeout(300 * time.Millisecond)).Run(ctx)
			return err
		},
		"WithTimeout around a Then of steps": func(ctx context.Context, tx pgx.Tx, step dbop.Op[int]) error {
			s := step.With(pgxdb.InSavepoint(tx))
			_, err := dbop.Then(s, func(ctx context.Context, _ int) (int, error) { return s.Run(ctx) }).
				With(dbop.WithTimeout(300 * time.Millisecond)).Run(ctx)
			return err
		},
	}
	for name, shape := range shapes {
		for _, intxDeadline := range []bool{true, false} {
			t.Run(name+map[bool]string{true: "/InTx with deadline", false: "/InTx without deadline"}[intxDeadline], func(t *testing.T) {
				pool := newPool(t, 1)
				rival, err := admin.Begin(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				exec(t, rival, "UPDATE "+tbl+" SET v = v + 100 WHERE id = 1")
				defer func() { _ = rival.Rollback(context.Background()) }()
				var closed bool
				var stepErr error
				attempts := 0
				op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
					attempts++
					step := dbop.Op[int](func(ctx context.Context) (int, error) {
						_, err := tx.Exec(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1")
						return 0, err
					})
					stepErr = shape(ctx, tx, step)
					closed = tx.Conn().IsClosed()
					return nil // the step is optional: the transaction goes on without it
				})
				if intxDeadline {
					op = op.With(dbop.WithTimeout(time.Minute))
				}
				_, err = op.Run(t.Context())
				t.Logf("step: %v; connection closed: %v; InTx: %v (attempts %d)", stepErr, closed, err, attempts)
				if closed || err != nil {
					t.Errorf("the step's deadline closed InTx's connection (%v) and InTx failed: %v", closed, err)
				}
			})
		}
	}
}

// (d): the caller's context is canceled while a step's attempt
// runs Go code after its statement; the step returns nil. The scope now
// releases with the cleanup context. InTx must still roll back (nothing
// committed), and in a transaction begun by hand the caller's Commit with
// the canceled context must not commit either.
func TestStepLimitsCanceledCallerAfterSuccessfulStep(t *testing.T) {
	admin := newPool(t, 2)
	tbl := "pgxdb_review_m_canceled"
	createTable(t, admin, tbl, "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO "+tbl+" VALUES (1, 0)")
	step := func(tx pgx.Tx, cancel context.CancelFunc) dbop.Op[int] {
		return dbop.Op[int](func(ctx context.Context) (int, error) {
			if _, err := tx.Exec(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1"); err != nil {
				return 0, err
			}
			cancel()
			return 0, nil
		}).With(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(5*time.Second), pgxdb.InSavepoint(tx))
	}
	t.Run("InTx", func(t *testing.T) {
		pool := newPool(t, 1)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stepErr error
		_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			_, stepErr = step(tx, cancel).Run(ctx)
			return stepErr
		}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(ctx)
		t.Logf("step: %v; InTx: %v", stepErr, err)
		if v := queryInt(t, admin, "SELECT v FROM "+tbl+" WHERE id = 1"); v != 0 || err == nil {
			t.Errorf("v = %d, InTx %v; want 0 and an error", v, err)
		}
	})
	t.Run("caller's tx", func(t *testing.T) {
		pool := newPool(t, 1)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, stepErr := step(tx, cancel).Run(ctx)
		cerr := tx.Commit(ctx)
		t.Logf("step: %v; commit with the canceled context: %v", stepErr, cerr)
		if v := queryInt(t, admin, "SELECT v FROM "+tbl+" WHERE id = 1"); v != 0 || cerr == nil {
			t.Errorf("v = %d, commit %v; want 0 and an error", v, cerr)
		}
	})
}
