package pgxdb_test

// A Then's steps that took effect (a released savepoint inside the
// transaction, a committed transaction) are never run again by a retry
// around the Then, whatever stands between the two: here the ClassifyBy
// the docs list after the retry, which alone gives lock_timeout (55P03)
// its verdict. Found by a review that combined the pieces; each test
// failed before Then marked every error after a step took effect.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// holdSeqRow begins a transaction on admin that locks row 1 of pgxdb_seq_lock
// and returns a function that ends it (idempotent).
func holdSeqRow(t *testing.T, admin *pgxpool.Pool) func() {
	t.Helper()
	blocker, err := admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(t.Context(), "SELECT id FROM pgxdb_seq_lock WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	end := func() {
		if done.CompareAndSwap(false, true) {
			_ = blocker.Rollback(context.Background())
		}
	}
	t.Cleanup(end)
	return end
}

// Inside pgxdb.InTx, a retry around a Then of two steps in
// savepoints (scopes.InSavepoint(pgxdb.Savepoints(tx)), as the pgxdb docs
// offer for direct use), with ClassifyBy(pgxdb.Classifier) after the retry
// as the docs say. B's UPDATE fails once with lock_timeout (55P03, which
// only pgxdb.Classifier calls RetryStatement). The retry must not run A
// again (it did, before: two 'A' rows committed): ErrAlreadyCommitted, and
// InTx rolls back, as with pgxdb.InSavepoint.
func TestRetryWithClassifyByAroundAThenOfSavepointStepsNeverRunsAReleasedStepAgain(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_seq_rows", "name text")
	createTable(t, pool, "pgxdb_seq_lock", "id int primary key", "INSERT INTO pgxdb_seq_lock VALUES (1)")
	end := holdSeqRow(t, pool)

	var bRuns atomic.Int32
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		sp := scopes.InSavepoint(pgxdb.Savepoints(tx))
		a := dbop.Op[int](func(ctx context.Context) (int, error) {
			_, err := tx.Exec(ctx, "INSERT INTO pgxdb_seq_rows VALUES ('A')")
			return 1, err
		}).With(sp)
		b := dbop.Op[int](func(ctx context.Context) (int, error) {
			if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', '50ms', true)"); err != nil {
				return 0, err
			}
			_, err := tx.Exec(ctx, "UPDATE pgxdb_seq_lock SET id = id WHERE id = 1")
			if bRuns.Add(1) == 1 {
				end() // the lock is free for the next attempt
			}
			return 1, err
		}).With(sp)
		then := dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
		return then.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.ClassifyBy(pgxdb.Classifier)).Run(ctx)
	})
	_, err := op.Run(t.Context())
	n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_seq_rows WHERE name = 'A'")
	if n != 0 || bRuns.Load() != 1 || !errors.Is(err, dbop.ErrAlreadyCommitted) || !isSQLState(err, "55P03") {
		t.Errorf("Run: %v; B ran %d times, %d 'A' rows committed; want ErrAlreadyCommitted after one 55P03 and none (InTx rolled back)", err, bRuns.Load(), n)
	}
}

// the same with pgxdb.InSavepoint (classifies inside the scope):
// the retry refuses, A once (the transaction rolls back: 0 rows).
func TestRetryAroundAThenOfAdapterSavepointStepsRefuses(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_seq_rows", "name text")
	createTable(t, pool, "pgxdb_seq_lock", "id int primary key", "INSERT INTO pgxdb_seq_lock VALUES (1)")
	end := holdSeqRow(t, pool)
	var bRuns atomic.Int32
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		a := dbop.Op[int](func(ctx context.Context) (int, error) {
			_, err := tx.Exec(ctx, "INSERT INTO pgxdb_seq_rows VALUES ('A')")
			return 1, err
		}).With(pgxdb.InSavepoint(tx))
		b := dbop.Op[int](func(ctx context.Context) (int, error) {
			if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', '50ms', true)"); err != nil {
				return 0, err
			}
			_, err := tx.Exec(ctx, "UPDATE pgxdb_seq_lock SET id = id WHERE id = 1")
			if bRuns.Add(1) == 1 {
				end()
			}
			return 1, err
		}).With(pgxdb.InSavepoint(tx))
		then := dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
		return then.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
	})
	_, err := op.Run(t.Context())
	n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_seq_rows WHERE name = 'A'")
	if !errors.Is(err, dbop.ErrAlreadyCommitted) || n != 0 {
		t.Errorf("Run: %v; A rows %d", err, n)
	}
}

// No transaction around: Then(pgxdb.InTx(insert A), an autocommit UPDATE
// on the pool) with ClassifyBy(pgxdb.Classifier) after the retry. The
// UPDATE times out on a lock once (55P03) after A's transaction committed:
// the retry must not commit A again (it did, before).
func TestRetryWithClassifyByAroundAThenNeverCommitsAStepTwice(t *testing.T) {
	pool := newPool(t, 4, func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["lock_timeout"] = "50ms" })
	createTable(t, pool, "pgxdb_seq_rows", "name text")
	createTable(t, pool, "pgxdb_seq_lock", "id int primary key", "INSERT INTO pgxdb_seq_lock VALUES (1)")
	end := holdSeqRow(t, pool)
	var bRuns atomic.Int32
	a := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		_, err := tx.Exec(ctx, "INSERT INTO pgxdb_seq_rows VALUES ('A')")
		return 1, err
	})
	b := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := pool.Exec(ctx, "UPDATE pgxdb_seq_lock SET id = id WHERE id = 1")
		if bRuns.Add(1) == 1 {
			end()
		}
		return 1, err
	})
	then := dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
	_, err := then.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), dbop.ClassifyBy(pgxdb.Classifier)).Run(t.Context())
	n := queryInt(t, pool, "SELECT count(*) FROM pgxdb_seq_rows WHERE name = 'A'")
	if n != 1 || bRuns.Load() != 1 || !errors.Is(err, dbop.ErrAlreadyCommitted) || !isSQLState(err, "55P03") {
		t.Errorf("Run: %v; B ran %d times, %d 'A' rows committed; want ErrAlreadyCommitted after one 55P03 and one", err, bRuns.Load(), n)
	}
}

// CockroachRestart (on PostgreSQL) around a Then of savepoint
// steps with a retry of its own; B raises 40001 once (in its savepoint, or
// as a plain statement). The restart's ROLLBACK TO cockroach_restart undoes
// A's release; the restart runs fn again: A and B once, success.
func TestCockroachRestartAroundAThenOfReleasedSteps(t *testing.T) {
	for _, bInSavepoint := range []bool{true, false} {
		pool := newPool(t, 4)
		createTable(t, pool, "pgxdb_seq_rows", "name text")
		var bRuns atomic.Int32
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			a := dbop.Op[int](func(ctx context.Context) (int, error) {
				_, err := tx.Exec(ctx, "INSERT INTO pgxdb_seq_rows VALUES ('A')")
				return 1, err
			}).With(pgxdb.InSavepoint(tx))
			b := dbop.Op[int](func(ctx context.Context) (int, error) {
				if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_seq_rows VALUES ('B')"); err != nil {
					return 0, err
				}
				if bRuns.Add(1) == 1 {
					_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE SQLSTATE '40001'; END $$")
					return 0, err
				}
				return 1, nil
			})
			if bInSavepoint {
				b = b.With(pgxdb.InSavepoint(tx))
			}
			then := dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
			return then.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
		}, pgxdb.CockroachRestart(dbop.MaxAttempts(3)))
		_, err := op.Run(t.Context())
		a := queryInt(t, pool, "SELECT count(*) FROM pgxdb_seq_rows WHERE name = 'A'")
		b := queryInt(t, pool, "SELECT count(*) FROM pgxdb_seq_rows WHERE name = 'B'")
		if err != nil || a != 1 || b != 1 {
			t.Errorf("B in savepoint %t: Run: %v; A %d, B %d rows", bInSavepoint, err, a, b)
		}
	}
}

// isSQLState reports whether err reaches a PostgreSQL error with code.
func isSQLState(err error, code string) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pe.Code == code
}
