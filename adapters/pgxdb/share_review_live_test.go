package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
)

// sharedA and sharedB are two ShareCommits call sites: two groups on the
// same pool.
func sharedB(db pgxdb.Beginner, fn shareFn) dbop.Op[struct{}] {
	return pgxdb.Do(db, fn, pgxdb.ShareCommits())
}

// An operation of group A run inside an attempt of group B, itself run
// inside an attempt of group A, waits for the turn its own outer attempt
// holds: the check for nesting saw only the innermost group.
func TestShareCommitsNestedThroughAnotherGroupFailsAtOnce(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_rv_nest")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var inner error
	_, err := shared(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := sharedB(pool, func(ctx context.Context, tx pgx.Tx) error {
			_, inner = shared(pool, insert(table, 3)).Run(ctx)
			return insert(table, 2)(ctx, tx)
		}).Run(ctx)
		if err != nil {
			return err
		}
		return insert(table, 1)(ctx, tx)
	}).Run(ctx)
	if err != nil {
		t.Fatalf("outer: %v", err)
	}
	if inner == nil || !strings.Contains(inner.Error(), "wait") || !final(dbop.VerdictOf(inner)) || ctx.Err() != nil {
		t.Fatalf("A inside B inside A: %v (verdict %v, context %v), want a final error at once saying it would wait for itself",
			inner, dbop.VerdictOf(inner), ctx.Err())
	}
	if got := rows(t, pool, table); len(got) != 2 {
		t.Errorf("rows = %v, want 1 and 2", got)
	}
}

// A Beginner that is one connection (a *pgxpool.Conn the caller acquired,
// or a *pgx.Conn), used by goroutines that each run a ShareCommits
// operation: the group takes turns, so its attempts never use the
// connection at the same time, but the attempt that ended a transaction
// sent its COMMIT after handing the turn on, and the next one began on the
// connection while the COMMIT was on it.
func TestShareCommitsOnOneConnectionFromGoroutines(t *testing.T) {
	pool := newPool(t, 4)
	pooled, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer pooled.Release()
	conn, err := pgx.Connect(t.Context(), testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, c := range []struct {
		name string
		db   pgxdb.Beginner
		pg   *pgx.Conn
	}{{"*pgxpool.Conn", pooled, pooled.Conn()}, {"*pgx.Conn", conn, conn}} {
		t.Run(c.name, func(t *testing.T) {
			table := shareTable(t, pool, "pgxdb_share_rv_conn")
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			const workers, each = 8, 25
			var mu sync.Mutex
			var errs []error
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						id := 1 + w*each + i
						runs := 0
						_, err := shared(c.db, func(ctx context.Context, tx pgx.Tx) error {
							runs++
							if err := insert(table, id)(ctx, tx); err != nil {
								return err
							}
							if id%5 == 0 && runs == 1 { // a conflict: its transaction commits what it holds
								_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'c' USING ERRCODE = '40001'; END $$")
								return err
							}
							return nil
						}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(5))).Run(ctx)
						if err != nil {
							mu.Lock()
							errs = append(errs, fmt.Errorf("transfer %d: %w", id, err))
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			for _, err := range errs[:min(5, len(errs))] {
				t.Error(err)
			}
			if len(errs) > 0 {
				t.Fatalf("%d of %d operations failed", len(errs), workers*each)
			}
			if got := rows(t, pool, table); len(got) != workers*each {
				t.Errorf("%d rows, want %d", len(got), workers*each)
			}
			if s := c.pg.PgConn().TxStatus(); s != 'I' {
				t.Errorf("the connection is left in a transaction (%q)", s)
			}
		})
	}
}

// Two call sites that run each other's operations inside their fn, from
// two goroutines at once: each attempt holds its group's turn and waited
// for the other group's, held by the other attempt, for ever.
func TestShareCommitsCrosswiseNestingDoesNotWaitForEver(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_rv_cross")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	inA, inB := make(chan struct{}), make(chan struct{})
	var onceA, onceB sync.Once
	var errA, errB, innerA, innerB error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, errA = shared(pool, func(ctx context.Context, tx pgx.Tx) error {
			onceA.Do(func() { close(inA); <-inB })
			_, innerB = sharedB(pool, insert(table, 3)).Run(ctx)
			return insert(table, 1)(ctx, tx)
		}).Run(ctx)
	})
	wg.Go(func() {
		_, errB = sharedB(pool, func(ctx context.Context, tx pgx.Tx) error {
			onceB.Do(func() { close(inB); <-inA })
			_, innerA = shared(pool, insert(table, 4)).Run(ctx)
			return insert(table, 2)(ctx, tx)
		}).Run(ctx)
	})
	wg.Wait()
	if errA != nil || errB != nil || innerA != nil || innerB != nil || ctx.Err() != nil {
		t.Fatalf("A %v, B %v, A inside B %v, B inside A %v (context %v); want all nil", errA, errB, innerA, innerB, ctx.Err())
	}
	if got := rows(t, pool, table); len(got) != 4 {
		t.Errorf("rows = %v, want 1 to 4", got)
	}
}

var _ = errors.New

// A Beginner that is one connection, whose BEGIN (with the lock of the
// group's table in its round trip) fails for a reason that leaves the
// transaction begun (a lock timeout on the table another process holds):
// the connection was left in a failed transaction, and every later
// operation on it failed for good ("BEGIN inside a transaction").
func TestShareCommitsFailedLockOnOneConnectionLeavesNoTransaction(t *testing.T) {
	pool := newPool(t, 4)
	if err := pgxdb.CreateHotSpotLocks(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	table := shareTable(t, pool, "pgxdb_share_rv_lockconn")
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	other, err := pool.Begin(t.Context()) // another process's transaction, holding every lock table
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Rollback(context.WithoutCancel(t.Context())) }()
	exec(t, other, "LOCK TABLE "+strings.Join(pgxdb.HotSpotLockTables(), ", ")+" IN EXCLUSIVE MODE")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	op := func(id int) dbop.Op[struct{}] {
		return shared(conn, insert(table, id), pgxdb.LockTimeout(100*time.Millisecond))
	}
	_, err = op(1).Run(ctx)
	if v := dbop.VerdictOf(err); pgCode(err) != "55P03" || v != dbop.RetryTransaction && v != dbop.RetryStatement {
		t.Errorf("while the table is held: %v (verdict %v), want the lock timeout, retried", err, dbop.VerdictOf(err))
	}
	if s := conn.Conn().PgConn().TxStatus(); s != 'I' {
		t.Errorf("the connection is left in a transaction (%q)", s)
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := op(2).Run(ctx); err != nil {
		t.Fatalf("once the table is free: %v", err)
	}
	if got := rows(t, pool, table); len(got) != 1 {
		t.Errorf("rows = %v, want 2", got)
	}
}

// endingCtx is a context that ends when armed, except for the Done channel
// a wait took before: an attempt handed the turn just as its context ended,
// which the wait for the turn cannot tell from one handed it before.
type endingCtx struct {
	context.Context
	armed  atomic.Bool
	closed chan struct{}
}

func newEndingCtx(parent context.Context) *endingCtx {
	c := &endingCtx{Context: parent, closed: make(chan struct{})}
	close(c.closed)
	return c
}

func (c *endingCtx) Done() <-chan struct{} {
	if c.armed.Load() {
		return c.closed
	}
	return c.Context.Done()
}

func (c *endingCtx) Err() error {
	if c.armed.Load() {
		return context.Canceled
	}
	return c.Context.Err()
}

// An attempt handed the turn as its context ended sends nothing (pgx sees
// the context ended before the SAVEPOINT): the transaction, with the work
// of the attempts that wait for its COMMIT, was rolled back all the same.
func TestShareCommitsAttemptWhoseContextEndsAsItGetsTheTurnBreaksNothing(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_rv_turnend")
	entered, gate := make(chan struct{}), make(chan struct{})
	var err1, err2, err3 error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err1 = shared(pool, func(ctx context.Context, tx pgx.Tx) error {
			close(entered)
			<-gate
			return insert(table, 1)(ctx, tx)
		}).Run(t.Context())
	})
	<-entered
	ending := newEndingCtx(t.Context())
	wg.Go(func() { _, err2 = shared(pool, insert(table, 2)).Run(ending) })
	waitUntil(t, "attempt 2 queues", func() bool { return pgxdb.SharedQueued(pool) == 1 })
	wg.Go(func() { _, err3 = shared(pool, insert(table, 3)).Run(t.Context()) })
	waitUntil(t, "attempt 3 queues", func() bool { return pgxdb.SharedQueued(pool) == 2 })
	ending.armed.Store(true)
	close(gate)
	wg.Wait()
	if err1 != nil || err3 != nil {
		t.Errorf("attempts 1 and 3: %v, %v; want nil", err1, err3)
	}
	if !errors.Is(err2, context.Canceled) {
		t.Errorf("attempt 2: %v, want context.Canceled", err2)
	}
	if got := rows(t, pool, table); len(got) != 2 || got[2] != "" {
		t.Errorf("rows = %v, want 1 and 3", got)
	}
}

// The wait of a shared transaction's BEGIN for the group's lock table was
// bounded by the opener's deadline on the client only: pgx closed the
// connection when it passed, the caller's own on a one-connection
// Beginner, where a HotSpot's BEGIN has the server end the wait (55P03 or
// 57014) under READ COMMITTED. The limits in force are restored after the
// lock, for the attempts after the opener.
func TestShareCommitsDeadlineBoundsTheLockWaitOnTheServer(t *testing.T) {
	pool := newPool(t, 4)
	if err := pgxdb.CreateHotSpotLocks(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	table := shareTable(t, pool, "pgxdb_share_rv_lockdl")
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	other, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Rollback(context.WithoutCancel(t.Context())) }()
	exec(t, other, "LOCK TABLE "+strings.Join(pgxdb.HotSpotLockTables(), ", ")+" IN EXCLUSIVE MODE")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	_, err = shared(conn, insert(table, 1)).Run(ctx)
	cancel()
	if code := pgCode(err); code != "55P03" && code != "57014" || conn.Conn().IsClosed() {
		t.Fatalf("the wait for the lock past the deadline: %v (connection closed: %v), want the server's 55P03 or 57014 and the connection kept",
			err, conn.Conn().IsClosed())
	}
	if err := other.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	read := func(into *string) shareFn {
		return func(ctx context.Context, tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT current_setting('statement_timeout') || ' ' || current_setting('lock_timeout')").Scan(into)
		}
	}
	var a, b string
	entered, gate := make(chan struct{}), make(chan struct{})
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		_, errA = shared(conn, func(ctx context.Context, tx pgx.Tx) error {
			close(entered)
			<-gate
			return read(&a)(ctx, tx)
		}).Run(ctx)
	})
	<-entered
	wg.Go(func() { _, errB = shared(conn, read(&b)).Run(t.Context()) })
	waitUntil(t, "B queues", func() bool { return pgxdb.SharedQueued(conn) == 1 })
	close(gate)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("%v, %v", errA, errB)
	}
	if a == "0 0" || b != "0 0" {
		t.Errorf("the opener with a deadline saw %q, want its limits; the attempt after it without one %q, want the server's \"0 0\"", a, b)
	}
}

// An attempt's fn that ends the shared transaction with COMMIT AND CHAIN
// (or COMMIT then BEGIN) leaves it in a transaction, so the end is not seen
// by the status, and returns an error: its savepoint is gone, the ROLLBACK
// TO SAVEPOINT failed, and the attempts whose work that COMMIT had
// committed were told the transaction rolled back and retried, applying
// it twice (here failing for good with 23505 for committed work).
func TestShareCommitsCommitAndChainInFnIsAmbiguousForAll(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_rv_chain")
	var runs [3]atomic.Int32
	counted := func(i int, fn shareFn) shareFn {
		return func(ctx context.Context, tx pgx.Tx) error {
			runs[i].Add(1)
			return fn(ctx, tx)
		}
	}
	build := func(fn shareFn) dbop.Op[struct{}] { return shared(pool, fn).With(dbop.WithRetry(retryAtOnce)) }
	errs := meet(t, pool, build,
		counted(0, insert(table, 1)),
		counted(1, func(ctx context.Context, tx pgx.Tx) error {
			if err := insert(table, 2)(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "COMMIT AND CHAIN"); err != nil { //dbopvet:ignore the misuse under test
				return err
			}
			return errors.New("refused after the commit")
		}),
		counted(2, insert(table, 3)),
	)
	for i := range 2 {
		if dbop.VerdictOf(errs[i]) != dbop.Ambiguous || runs[i].Load() != 1 {
			t.Errorf("attempt %d: %v (verdict %v), ran %d times; want Ambiguous, once", i+1, errs[i], dbop.VerdictOf(errs[i]), runs[i].Load())
		}
	}
	if errs[2] != nil {
		t.Errorf("attempt 3: %v", errs[2])
	}
	if got := rows(t, pool, table); len(got) != 3 {
		t.Errorf("rows = %v, want 1, 2, 3", got)
	}
}

// The deadline of the attempt that commits the shared transaction passes
// during the COMMIT, which it runs itself and whose outcome it knows: the
// wait for that outcome chose at random between it and the ended context,
// and reported a committed transaction as Ambiguous about half the time.
// (InTx reports it committed.)
func TestShareCommitsDeadlineDuringItsOwnCommitKeepsTheOutcome(t *testing.T) {
	pool := newPool(t, 8)
	table := shareTable(t, pool, "pgxdb_share_rv_slowcommit")
	exec(t, pool, `CREATE OR REPLACE FUNCTION pgxdb_share_rv_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$`)
	exec(t, pool, "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON "+table+" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pgxdb_share_rv_sleep()")
	const n = 12 // each reported Ambiguous with a chance of one half
	for i := range n {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		_, err := shared(pool, insert(table, i)).Run(ctx)
		cancel()
		if err != nil {
			t.Errorf("run %d: %v (verdict %v), want nil: the COMMIT succeeded", i, err, dbop.VerdictOf(err))
		}
	}
	if got := rows(t, pool, table); len(got) != n {
		t.Errorf("%d rows, want %d", len(got), n)
	}
}

// Under SERIALIZABLE (or REPEATABLE READ) a shared transaction's snapshot
// is taken by its first attempt: an attempt that joined it later did not
// see work committed before it began, its caller's own last transaction
// here, and committed as if it came first.
func TestShareCommitsSnapshotIsNotOlderThanTheAttempt(t *testing.T) {
	pool := newPool(t, 8)
	table := "pgxdb_share_rv_snap"
	createTable(t, pool, table, "id int PRIMARY KEY, v int", "INSERT INTO "+table+" VALUES (1, 0)")
	for _, iso := range []pgx.TxIsoLevel{pgx.Serializable, pgx.RepeatableRead} {
		t.Run(string(iso), func(t *testing.T) {
			exec(t, pool, "UPDATE "+table+" SET v = 0")
			op := func(fn shareFn) error {
				_, err := shared(pool, fn, pgxdb.Isolation(iso)).Run(t.Context())
				return err
			}
			entered, gate := make(chan struct{}), make(chan struct{})
			var wg sync.WaitGroup
			var errA, errB error
			wg.Go(func() {
				errA = op(func(ctx context.Context, tx pgx.Tx) error {
					var v int
					err := tx.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = 1").Scan(&v) // the snapshot
					close(entered)
					<-gate
					return err
				})
			})
			<-entered
			// The caller's own write, committed before its next operation.
			if _, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "UPDATE "+table+" SET v = 1 WHERE id = 1")
				return err
			}).Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			seen := -1
			wg.Go(func() {
				errB = op(func(ctx context.Context, tx pgx.Tx) error {
					return tx.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = 1").Scan(&seen)
				})
			})
			waitUntil(t, "B queues", func() bool { return pgxdb.SharedQueued(pool) == 1 })
			close(gate)
			wg.Wait()
			if errA != nil || errB != nil {
				t.Fatalf("%v, %v", errA, errB)
			}
			if seen != 1 {
				t.Errorf("the operation begun after its caller's write committed saw v = %d, want 1", seen)
			}
		})
	}
}
