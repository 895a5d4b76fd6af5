package pgxdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// raise40001 fails the statement with a real serialization failure
// (SQLSTATE 40001, raised by the server), which aborts the transaction.
const raise40001 = "DO $$ BEGIN RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001'; END $$"

// TestTransactionCommittedInsideFnIsNotRunAgain: fn runs a transaction of
// its own on the pool (an audit row, written by a pgxdb.Do, alone or as a
// step of a Then), which commits, and then fn's own statement fails with a
// serialization failure. The outer transaction rolls back, but the audit
// row stands: the retry around the outer InTx must not run fn again, which
// would write it twice (as a retry around a Then refuses to run a
// committed step again, dbop.ErrAlreadyCommitted), and an OrDefault must
// not replace the error. An Idempotent retry runs it again.
func TestTransactionCommittedInsideFnIsNotRunAgain(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_nested_commit", "id serial PRIMARY KEY, outer_run int")
	for _, tc := range []struct {
		name       string
		shape      string // how fn runs the audit
		with       []dbop.Decorator
		runs, rows int
	}{
		{"retry", "plain", []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))}, 1, 1},
		{"retry, the audit in a Then", "then", []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))}, 1, 1},
		{"retry, the audit retried", "retried", []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))}, 1, 1},
		{"OrDefault around the retry", "plain", []dbop.Decorator{dbop.OrDefault(struct{}{}), dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))}, 1, 1},
		{"Idempotent retry", "plain", []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3), dbop.Idempotent())}, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(t, pool, "TRUNCATE pgxdb_nested_commit")
			runs, raised := 0, 0
			op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				runs++
				audit := pgxdb.Do(pool, func(ctx context.Context, atx pgx.Tx) error {
					_, err := atx.Exec(ctx, "INSERT INTO pgxdb_nested_commit (outer_run) VALUES ($1)", runs)
					return err
				})
				var err error
				switch tc.shape {
				case "plain":
					_, err = audit.Run(ctx)
				case "then":
					_, err = dbop.Then(audit, func(context.Context, struct{}) (int, error) { return 1, nil }).Run(ctx)
				case "retried":
					_, err = audit.With(dbop.WithRetry(retryAtOnce)).Run(ctx)
				}
				if err != nil {
					return err
				}
				if runs == 1 {
					raised++
					_, err = tx.Exec(ctx, raise40001)
				}
				return err
			})
			_, err := op.With(tc.with...).Run(t.Context())
			rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_nested_commit")
			t.Logf("Run: %v; fn ran %d times; audit rows %d", err, runs, rows)
			if raised != 1 {
				t.Fatalf("the serialization failure was raised %d times, want once", raised)
			}
			if runs != tc.runs || rows != tc.rows {
				t.Errorf("fn ran %d times and wrote %d audit rows, want %d and %d", runs, rows, tc.runs, tc.rows)
			}
			if tc.runs == 1 {
				if !errors.Is(err, dbop.ErrAlreadyCommitted) || pgCode(err) != "40001" {
					t.Errorf("Run: %v, want dbop.ErrAlreadyCommitted with the 40001", err)
				}
			} else if err != nil {
				t.Errorf("Run: %v, want success", err)
			}
		})
	}
}

// TestTransactionCommittedInsideFnIsNotRestarted: under CockroachRestart,
// fn's audit transaction commits, then fn's own statement fails with
// 40001. ROLLBACK TO SAVEPOINT cockroach_restart undoes fn's statements,
// not the audit's commit: restarting fn in place would write it again.
func TestTransactionCommittedInsideFnIsNotRestarted(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_nested_restart", "id serial PRIMARY KEY, outer_run int")
	runs, raised := 0, 0
	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		_, err := pgxdb.Do(pool, func(ctx context.Context, atx pgx.Tx) error {
			_, err := atx.Exec(ctx, "INSERT INTO pgxdb_nested_restart (outer_run) VALUES ($1)", runs)
			return err
		}).Run(ctx)
		if err != nil {
			return err
		}
		if runs == 1 {
			raised++
			_, err = tx.Exec(ctx, raise40001)
		}
		return err
	}, pgxdb.CockroachRestart(dbop.MaxAttempts(3)))
	_, err := op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(t.Context())
	rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_nested_restart")
	t.Logf("Run: %v; fn ran %d times; audit rows %d", err, runs, rows)
	if raised != 1 {
		t.Fatalf("the serialization failure was raised %d times, want once", raised)
	}
	if runs != 1 || rows != 1 {
		t.Errorf("fn ran %d times and wrote %d audit rows, want 1 and 1", runs, rows)
	}
	if !errors.Is(err, dbop.ErrAlreadyCommitted) || pgCode(err) != "40001" {
		t.Errorf("Run: %v, want dbop.ErrAlreadyCommitted with the 40001", err)
	}
}

// TestTransactionCommittedInsideASavepointStepIsNotRunAgain: a savepoint
// step runs a transaction of its own on the pool (an audit row), which
// commits, and then meets a lock timeout (55P03, a row another connection
// holds). ROLLBACK TO SAVEPOINT undoes the step's statement, not the
// audit's commit: the retry at the savepoint must not run the step again,
// which would write the audit row once per attempt, nor may the retry
// around InTx.
func TestTransactionCommittedInsideASavepointStepIsNotRunAgain(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_nested_step_audit", "id serial PRIMARY KEY")
	createTable(t, pool, "pgxdb_nested_step_hot", "id int PRIMARY KEY, n int", "INSERT INTO pgxdb_nested_step_hot VALUES (1, 0)")
	holder, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	exec(t, holder, "UPDATE pgxdb_nested_step_hot SET n = n + 1 WHERE id = 1")
	stepRuns, timeouts := 0, 0
	_, err = pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		step := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
			stepRuns++
			if _, err := pgxdb.Do(pool, func(ctx context.Context, atx pgx.Tx) error {
				_, err := atx.Exec(ctx, "INSERT INTO pgxdb_nested_step_audit DEFAULT VALUES")
				return err
			}).Run(ctx); err != nil {
				return struct{}{}, err
			}
			_, err := tx.Exec(ctx, "UPDATE pgxdb_nested_step_hot SET n = n + 10 WHERE id = 1")
			if pgCode(err) == "55P03" {
				timeouts++
			}
			return struct{}{}, err
		})
		_, err := step.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), pgxdb.InSavepoint(tx, pgxdb.LockTimeout(50*time.Millisecond))).Run(ctx)
		return err
	}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(t.Context())
	rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_nested_step_audit")
	t.Logf("Run: %v; the step ran %d times; audit rows %d", err, stepRuns, rows)
	if timeouts == 0 {
		t.Fatal("the step never met the lock timeout")
	}
	if stepRuns != 1 || rows != 1 {
		t.Errorf("the step ran %d times and wrote %d audit rows, want 1 and 1", stepRuns, rows)
	}
	if !errors.Is(err, dbop.ErrAlreadyCommitted) || pgCode(err) != "55P03" {
		t.Errorf("Run: %v, want dbop.ErrAlreadyCommitted with the 55P03", err)
	}
}
