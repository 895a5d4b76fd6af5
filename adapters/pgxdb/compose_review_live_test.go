package pgxdb_test

// Review B: live compositions on PostgreSQL through pgx that the existing
// live tests do not cover.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestResolveCommitOfANotifyOnly: a transaction whose only effect is a
// NOTIFY (pg_notify) has no transaction id before COMMIT — PostgreSQL
// assigns one during COMMIT — so ResolveCommit used to read "no id: wrote
// nothing" and, when COMMIT's answer was lost, return fn's value and a nil
// error without asking the server: with the connection cut before COMMIT
// reached the server, nothing was committed and the notification never
// delivered, yet InTx reported success (invariant 6). Found by a review.
// ResolveCommit now assigns the id before COMMIT, and asks: the cut before
// COMMIT is resolved as aborted and run again, the cut after as committed;
// the notification is delivered once either way. Without ResolveCommit the
// cut is Ambiguous.
func TestResolveCommitOfANotifyOnly(t *testing.T) {
	tests := []struct {
		name          string
		resolve       bool
		arm           func(p *faultproxy.Proxy)
		wantDelivered bool
	}{
		{"ResolveCommit/cut before COMMIT", true, func(p *faultproxy.Proxy) { p.CutBefore([]byte("commit")) }, true},
		{"ResolveCommit/cut after COMMIT", true, func(p *faultproxy.Proxy) { p.CutAfter([]byte("commit")) }, true},
		{"no ResolveCommit/cut before COMMIT", false, func(p *faultproxy.Proxy) { p.CutBefore([]byte("commit")) }, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, pool := proxied(t)
			admin := newPool(t, 2)
			channel := fmt.Sprintf("pgxdb_rb_chan_%d", i)
			lc, err := admin.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer lc.Release()
			exec(t, lc, "LISTEN "+channel)

			runs := 0
			var opts []pgxdb.TxOption
			if tt.resolve {
				opts = append(opts, pgxdb.ResolveCommit())
			}
			op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				runs++
				_, err := tx.Exec(ctx, "SELECT pg_notify($1, 'job-42')", channel)
				if runs == 1 {
					tt.arm(p)
				}
				return err
			}, opts...)
			var res resolutions
			_, err = op.With(dbop.WithRetry(retryAtOnce)).Run(scopes.OnCommitResolved(t.Context(), res.record))

			delivered := notifications(t, lc.Conn())
			t.Logf("Run: %v (verdict %v); runs %d; cuts %d; resolutions %v; notifications delivered: %d",
				err, dbop.VerdictOf(err), runs, p.Cuts(), res.list(), delivered)
			if p.Cuts() != 1 {
				t.Fatalf("the proxy cut %d connections, want 1", p.Cuts())
			}
			switch {
			case tt.wantDelivered && delivered != 1:
				t.Errorf("notifications delivered: %d, want 1", delivered)
			case !tt.wantDelivered && delivered != 0:
				t.Errorf("notifications delivered: %d, want none", delivered)
			}
			switch {
			case tt.resolve && err != nil:
				t.Errorf("Run = %v (resolutions %v), want the lost answer resolved and the notification sent once", err, res.list())
			case !tt.resolve && dbop.VerdictOf(err) != dbop.Ambiguous:
				t.Errorf("Run = %v (verdict %v); want Ambiguous", err, dbop.VerdictOf(err))
			}
		})
	}
}

// notifications counts the notifications conn receives until none has come
// for a second.
func notifications(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	n := 0
	for {
		wctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			return n
		}
		n++
	}
}

// TestResolveCommitUnderTheServersDefaultSerializable: a transaction that
// only reads, SERIALIZABLE through the session's
// default_transaction_isolation rather than pgxdb.Isolation, whose COMMIT
// answer is lost after COMMIT reached the server. A review found it
// resolved as "wrote nothing" and fn's value returned, where under
// SERIALIZABLE even a read can fail at COMMIT. ResolveCommit now gives
// every transaction an id before COMMIT and asks the server: committed.
func TestResolveCommitUnderTheServersDefaultSerializable(t *testing.T) {
	p, pool0 := proxied(t)
	pool := newPool(t, 1, func(cfg *pgxpool.Config) {
		*cfg.ConnConfig = *pool0.Config().ConnConfig.Copy()
		cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "serializable"
	})
	runs := 0
	var iso string
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		err := tx.QueryRow(ctx, "SELECT current_setting('transaction_isolation')").Scan(&iso)
		if runs == 1 {
			p.CutAfter([]byte("commit"))
		}
		return 7, err
	}, pgxdb.ResolveCommit())
	var res resolutions
	v, err := op.With(dbop.WithRetry(retryAtOnce)).Run(scopes.OnCommitResolved(t.Context(), res.record))
	t.Logf("Run = %d, %v; runs %d; isolation %q; resolutions %v", v, err, runs, iso, res.list())
	if iso != "serializable" {
		t.Fatalf("the transaction ran at %q, want serializable", iso)
	}
	if r := res.list(); len(r) != 1 || r[0] != scopes.Committed || err != nil || v != 7 || runs != 1 {
		t.Errorf("Run = %d, %v; runs %d; resolutions %v; want the COMMIT that reached the server resolved as committed, and fn's value", v, err, runs, r)
	}
}

// rbFault is what the second savepoint step of TestCallerOwnedTransactionAroundAThenOfSavepointSteps
// meets on its first run: a composeRival code, or "kill" (the step's
// backend is ended with pg_terminate_backend from another connection).
var rbFaults = []string{"55P03", "40P01", "40001", "kill"}

// TestCallerOwnedTransactionAroundAThenOfSavepointSteps: a transaction the caller owns around a Then
// of two savepoint steps (C, then B which meets the fault), with a retry
// around the Then (inside the transaction) and a retry around the caller's
// own begin-and-commit; the caller's transaction is begun by hand and its
// context marked with dbop.WithinTx ("hand"), or handed in by an enclosing
// pgxdb.InTx ("intx"). Step B has a retry of its own or not ("stepRetry").
// Whatever happens, the rows end up A, B and C once each, no released step
// runs twice in a transaction that commits, nothing commits after a doom,
// and Run succeeds.
func TestCallerOwnedTransactionAroundAThenOfSavepointSteps(t *testing.T) {
	for _, owner := range []string{"hand", "intx"} {
		for _, stepRetry := range []bool{false, true} {
			for _, code := range rbFaults {
				t.Run(fmt.Sprintf("%s/stepRetry=%v/%s", owner, stepRetry, code), func(t *testing.T) {
					rbCallerOwnedThen(t, owner, stepRetry, code)
				})
			}
		}
	}
}

func rbCallerOwnedThen(t *testing.T, owner string, stepRetry bool, code string) {
	pool, _, admin := composePools(t)
	tbl := composeTable(t, admin, fmt.Sprintf("pgxdb_rb_own_%s_%v_%s", owner, stepRetry, strings.ToLower(code)))
	var r *composeRival
	if code != "kill" {
		r = newComposeRival(t, admin, tbl, code)
	}
	killed := false
	var inner, stepRetries, outer retries
	type txRuns struct{ c, b int }
	var runs []txRuns // step runs per transaction
	var thenErrs []error

	// body runs in the caller's transaction, with ctx marked as inside it.
	body := func(ctx context.Context, tx pgx.Tx) error {
		runs = append(runs, txRuns{})
		cur := &runs[len(runs)-1]
		if code == "55P03" {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 50"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, composeUpdate(tbl, composeRowA)); err != nil {
			return err
		}
		if r != nil {
			r.beforeStep()
		}
		stepC := dbop.Op[int](func(ctx context.Context) (int, error) {
			cur.c++
			_, err := tx.Exec(ctx, composeUpdate(tbl, composeRowC))
			return 1, err
		}).With(pgxdb.InSavepoint(tx))
		stepB := dbop.Op[int](func(ctx context.Context) (int, error) {
			cur.b++
			if code == "kill" && !killed {
				killed = true
				if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid(tx)); err != nil {
					return 0, err
				}
				waitForBackendGone(t, admin, pid(tx))
			}
			_, err := tx.Exec(ctx, composeUpdate(tbl, composeRowB))
			return 1, err
		})
		if stepRetry {
			stepB = stepB.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3), dbop.OnRetry(func(ctx context.Context, e dbop.AttemptEvent) {
				stepRetries.record(ctx, e)
				if r != nil {
					r.release()
				}
			})), pgxdb.InSavepoint(tx))
		} else {
			stepB = stepB.With(pgxdb.InSavepoint(tx))
		}
		seq := dbop.Then(stepC, func(ctx context.Context, _ int) (int, error) { return stepB.Run(ctx) })
		_, err := seq.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3), dbop.OnRetry(func(ctx context.Context, e dbop.AttemptEvent) {
			inner.record(ctx, e)
			if r != nil {
				r.release()
			}
		}))).Run(ctx)
		if err != nil {
			thenErrs = append(thenErrs, err)
		}
		return err
	}
	ownerRetry := func(ctx context.Context, e dbop.AttemptEvent) {
		if r != nil {
			r.ownerRetry(&outer)(ctx, e)
		} else {
			outer.record(ctx, e)
		}
	}
	iso := pgx.TxOptions{IsoLevel: pgx.RepeatableRead}
	var op dbop.Op[int]
	switch owner {
	case "hand":
		op = dbop.Op[int](func(ctx context.Context) (int, error) {
			tx, err := pool.BeginTx(ctx, iso)
			if err != nil {
				return 0, err
			}
			if err := body(dbop.WithinTx(ctx), tx); err != nil {
				_ = tx.Rollback(ctx)
				return 0, err
			}
			return 1, tx.Commit(ctx)
		}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(4), dbop.OnRetry(ownerRetry)), dbop.ClassifyBy(pgxdb.Classifier))
	case "intx":
		op = pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			return 1, body(ctx, tx)
		}, pgxdb.Isolation(pgx.RepeatableRead)).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(4), dbop.OnRetry(ownerRetry)))
	}
	n, err := op.Run(t.Context())
	rows := composeRows(t, admin, tbl)
	t.Logf("Run = %d, %v; step runs per transaction %+v; Then errors %v; retries: step %v, Then %v, owner %v; rows %s",
		n, err, runs, thenErrs, composeEvents(&stepRetries), composeEvents(&inner), composeEvents(&outer), rows)
	if err != nil || n != 1 {
		t.Errorf("Run = %d, %v; want 1, nil", n, err)
	}
	if rows != "1:1 2:1 3:1" {
		t.Errorf("rows %s, want 1:1 2:1 3:1 (A, B and C once each)", rows)
	}
	// The retry around the Then may rerun the whole only where a
	// savepoint certified it and no released step would run again: with
	// C released before B failed, it never may.
	for _, e := range composeEvents(&inner) {
		t.Errorf("the retry around the Then, inside the transaction, retried %q after C was released", e)
	}
	if r != nil && code != "55P03" && len(composeEvents(&stepRetries)) != 0 {
		t.Errorf("the retry around step B retried %v inside a doomed transaction", composeEvents(&stepRetries))
	}
}

// TestResolveCommitInsideThenAndAll: a Then whose first step is an InTx with
// ResolveCommit whose COMMIT answer is lost, and whose second step then
// fails with a retryable error, under a retry around the Then. After a cut
// after COMMIT the resolution finds it committed, and the retry must not
// run the first step again (ErrAlreadyCommitted); after a cut before, it
// was aborted, and the retry runs the whole again. The row lands once; the
// same in All.
func TestResolveCommitInsideThenAndAll(t *testing.T) {
	errTransient := errors.New("transient")
	for _, shape := range []string{"Then", "All"} {
		for _, cut := range []string{"after", "before"} {
			t.Run(shape+"/cut "+cut, func(t *testing.T) {
				p, pool := proxied(t)
				admin := newPool(t, 1)
				table := resolveTable(fmt.Sprintf("rb_%s_%s", strings.ToLower(shape), cut))
				createTable(t, admin, table, "id int PRIMARY KEY, n int NOT NULL", "INSERT INTO "+table+" VALUES (1, 0)")
				runs1, runs2 := 0, 0
				var backend uint32
				first := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
					runs1++
					if runs1 == 1 {
						backend = pid(tx)
					}
					_, err := tx.Exec(ctx, "UPDATE "+table+" SET n = n + 1 WHERE id = 1")
					if runs1 == 1 {
						if cut == "after" {
							p.CutAfter([]byte("commit"))
						} else {
							p.CutBefore([]byte("commit"))
						}
					}
					return 1, err
				}, pgxdb.ResolveCommit())
				second := func(ctx context.Context) (int, error) {
					runs2++
					if runs1 == 1 { // fails in the first attempt of the whole only
						return 0, dbop.Classify(errTransient, dbop.RetryTransaction)
					}
					return 2, nil
				}
				var op dbop.Op[int]
				switch shape {
				case "Then":
					op = dbop.Then(first, func(ctx context.Context, _ int) (int, error) { return second(ctx) })
				case "All":
					// second waits for first's resolution, so the failure comes after it.
					done := make(chan struct{})
					f := dbop.Op[int](func(ctx context.Context) (int, error) {
						defer close(done)
						return first.Run(ctx)
					})
					s := dbop.Op[int](func(ctx context.Context) (int, error) {
						<-done
						return second(ctx)
					})
					all := dbop.All(0, f, s)
					op = func(ctx context.Context) (int, error) {
						done = make(chan struct{})
						vs, err := all(ctx)
						if err != nil {
							return 0, err
						}
						return vs[1], nil
					}
				}
				var res resolutions
				v, err := op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(scopes.OnCommitResolved(t.Context(), res.record))
				waitForBackendGone(t, admin, backend)
				n := queryInt(t, admin, "SELECT n FROM "+table+" WHERE id = 1")
				t.Logf("Run = %d, %v; first ran %d, second %d; resolutions %v; n = %d", v, err, runs1, runs2, res.list(), n)
				if n != 1 {
					t.Errorf("n = %d, want 1: the first step applied exactly once", n)
				}
				switch cut {
				case "after":
					if !errors.Is(err, dbop.ErrAlreadyCommitted) || !errors.Is(err, errTransient) {
						t.Errorf("Run = %v; want ErrAlreadyCommitted reaching the second step's error", err)
					}
				case "before":
					if err != nil || v != 2 {
						t.Errorf("Run = %d, %v; want 2, nil (the aborted first step run again)", v, err)
					}
				}
			})
		}
	}
}

// TestSavepointStatementTimeoutAboveTheDeadline: WithTimeout around InTx makes
// InTx lower statement_timeout to the time left, so that "a statement that
// would outlast the deadline is then ended by the server (57014 …), and
// the connection and its pool slot survive". A savepoint step inside with
// pgxdb.StatementTimeout larger than the time left raised it again for
// the step (set_config inside the savepoint), and the deadline then closed
// the connection instead (found by a review). The savepoint's limits are
// now lowered to what the deadline leaves, as InTx's are: with the option
// or without, the server ends the statement.
func TestSavepointStatementTimeoutAboveTheDeadline(t *testing.T) {
	for _, withLimit := range []bool{false, true} {
		t.Run(fmt.Sprintf("StatementTimeout=%v", withLimit), func(t *testing.T) {
			pool := newPool(t, 1)
			conns0 := pool.Stat().NewConnsCount()
			var closed bool
			var stepErr error
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					_, err := tx.Exec(ctx, "SELECT pg_sleep(3)")
					return 1, err
				})
				var opts []pgxdb.SavepointOption
				if withLimit {
					opts = append(opts, pgxdb.StatementTimeout(10*time.Second))
				}
				_, stepErr = step.With(pgxdb.InSavepoint(tx, opts...)).Run(ctx)
				closed = tx.Conn().IsClosed()
				return 0, stepErr
			})
			_, err := op.With(dbop.WithTimeout(time.Second)).Run(t.Context())
			// One more transaction: does it need a new connection?
			if _, err := pool.Exec(t.Context(), "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			t.Logf("Run: %v; step error %v (SQLSTATE %q); connection closed: %v; new connections: %d",
				err, stepErr, pgCode(stepErr), closed, pool.Stat().NewConnsCount()-conns0)
			if closed || pgCode(stepErr) != "57014" {
				t.Errorf("the deadline closed the connection (step error %v); the server's limit derived from it did not end the statement", stepErr)
			}
		})
	}
}

// rbHold begins a transaction on admin that locks row 1 of table and
// returns a function that ends it (idempotent).
func rbHold(t *testing.T, admin *pgxpool.Pool, table string) func() {
	t.Helper()
	blocker, err := admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(t.Context(), "SELECT id FROM "+table+" WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	done := false
	end := func() {
		if !done {
			done = true
			_ = blocker.Rollback(context.Background())
		}
	}
	t.Cleanup(end)
	return end
}

// lockScene is the tables of a live probe: rows, whose rows 1 and 2 start
// at n = 0, and lock, whose row 1 another transaction holds until end is
// called (end runs at the test's cleanup too).
type lockScene struct {
	pool       *pgxpool.Pool
	rows, lock string
	end        func()
}

// newLockScene creates the tables named prefix_rows and prefix_lock on pool
// and takes the lock row.
func newLockScene(t *testing.T, pool *pgxpool.Pool, prefix string) lockScene {
	t.Helper()
	s := lockScene{pool: pool, rows: prefix + "_rows", lock: prefix + "_lock"}
	createTable(t, pool, s.rows, "id int PRIMARY KEY, n int NOT NULL", "INSERT INTO "+s.rows+" VALUES (1, 0), (2, 0)")
	createTable(t, pool, s.lock, "id int PRIMARY KEY", "INSERT INTO "+s.lock+" VALUES (1)")
	s.end = rbHold(t, pool, s.lock)
	return s
}

// lockedStep returns a step on tx that updates the held lock row (a lock
// timeout on its first run, under a short LockTimeout), frees it after that
// first run, and then adds 1 to row 2; runs counts its runs.
func (s lockScene) lockedStep(tx pgx.Tx, runs *int) dbop.Op[int] {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		*runs++
		_, err := tx.Exec(ctx, "UPDATE "+s.lock+" SET id = id WHERE id = 1")
		if *runs == 1 {
			s.end() // the lock is free for a next attempt
		}
		if err == nil {
			_, err = tx.Exec(ctx, "UPDATE "+s.rows+" SET n = n + 1 WHERE id = 2")
		}
		return 2, err
	})
}

// bump adds 1 to row 1 on tx: the plain statement of a probe.
func (s lockScene) bump(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "UPDATE "+s.rows+" SET n = n + 1 WHERE id = 1")
	return err
}

// committed returns the committed n of rows 1 and 2.
func (s lockScene) committed(t *testing.T) (n1, n2 int) {
	t.Helper()
	return queryInt(t, s.pool, "SELECT n FROM "+s.rows+" WHERE id = 1"), queryInt(t, s.pool, "SELECT n FROM "+s.rows+" WHERE id = 2")
}

// TestRetryAroundAThenOfAPlainAndASavepointStep: inside a transaction, with
// the context the scope handed over (pgxdb.InTx's, or dbop.WithinTx on a
// transaction begun by hand), a retry around a Then whose first step is a
// plain statement (UPDATE … n = n + 1) and whose second is a savepoint
// step that meets a real lock timeout (55P03) once. The savepoint scope
// certifies that *its* attempt was undone (txmark.Undone); the Then
// returned that certificate unchanged (no savepoint was released, no
// transaction committed), and the retry, reading it, ran the whole Then
// again in the same transaction: the first step's UPDATE, which nothing
// undid, was applied a second time, and the transaction committed it
// (found by a review). A retry inside a transaction now trusts only a
// savepoint scope listed inside it in the same pipeline, and returns the
// lock timeout to the transaction's owner, which rolls back.
//
// Invariant 2: "A statement is run again inside a transaction only where
// the backend kept the transaction usable: after a savepoint scope rolled
// it back to its savepoint (the scope certifies it)" — nothing rolled the
// first step back. Invariant 8 (a retry never runs again work that took
// effect). The same with All(1, …), and with OrDefault around the Then
// (the step's default replaces a failure after the first step took
// effect: half of the sequence commits, reported as the default).
// Without Then ("Op+retry": an Op of the caller's running the plain
// statement and then the savepoint step) the same; and with the second
// step a pgxdb.InTx of its own on another connection ("Then(plain,
// InTx)+retry"), whose Released mark the retry inside the outer
// transaction trusted the same way (now the Then counts its first step's
// success inside the transaction, and the retry refuses).
func TestRetryAroundAThenOfAPlainAndASavepointStep(t *testing.T) {
	for _, owner := range []string{"intx", "hand"} {
		for _, shape := range []string{"Then+retry", "All+retry", "Then+OrDefault", "Op+retry", "Then(plain, InTx)+retry"} {
			t.Run(owner+"/"+shape, func(t *testing.T) {
				pool := newPool(t, 4)
				sc := newLockScene(t, pool, "pgxdb_rb_plain")
				aRuns, bRuns := 0, 0
				body := func(ctx context.Context, tx pgx.Tx) (int, error) {
					a := dbop.Op[int](func(ctx context.Context) (int, error) {
						aRuns++
						return 1, sc.bump(ctx, tx)
					})
					b := sc.lockedStep(tx, &bRuns).With(pgxdb.InSavepoint(tx, pgxdb.LockTimeout(50*time.Millisecond)))
					retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))
					switch shape {
					case "Then+retry":
						return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) }).With(retry).Run(ctx)
					case "Then(plain, InTx)+retry":
						// the second step is a transaction of its own (another
						// connection) that meets the lock timeout and rolls back
						other := pgxdb.InTx(pool, func(ctx context.Context, txB pgx.Tx) (int, error) {
							return sc.lockedStep(txB, &bRuns).Run(ctx)
						}, pgxdb.LockTimeout(50*time.Millisecond))
						return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return other.Run(ctx) }).With(retry).Run(ctx)
					case "Op+retry":
						// no Then: an Op of the caller's that runs the plain
						// statement and then the savepoint step
						return dbop.Op[int](func(ctx context.Context) (int, error) {
							if _, err := a.Run(ctx); err != nil {
								return 0, err
							}
							return b.Run(ctx)
						}).With(retry).Run(ctx)
					case "All+retry":
						vs, err := dbop.All(1, a, b).With(retry).Run(ctx)
						if err != nil {
							return 0, err
						}
						return vs[1], nil
					default:
						return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) }).With(dbop.OrDefault(-1)).Run(ctx)
					}
				}
				var v int
				var err error
				switch owner {
				case "intx":
					v, err = pgxdb.InTx(pool, body).Run(t.Context())
				case "hand":
					tx, berr := pool.Begin(t.Context())
					if berr != nil {
						t.Fatal(berr)
					}
					v, err = body(dbop.WithinTx(t.Context()), tx)
					if err != nil {
						_ = tx.Rollback(t.Context())
					} else if err = tx.Commit(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				n1, n2 := sc.committed(t)
				t.Logf("Run = %d, %v; first step ran %d times, second %d; committed: row1 n=%d, row2 n=%d", v, err, aRuns, bRuns, n1, n2)
				if bRuns < 1 {
					t.Fatal("the second step never ran")
				}
				switch {
				case err == nil && v == -1 && n1 == 1 && n2 == 0:
					t.Errorf("OrDefault gave its default for a Then whose first step took effect in the transaction: the first step committed, the second did not, and the caller reads a default")
				case n1 > 1:
					t.Errorf("the first step's UPDATE committed %d times in one transaction: the retry ran it again though no savepoint undid it", n1)
				}
				// What happens instead: the retry (or the fallback) passes
				// the lock timeout to the transaction's owner, which rolls
				// back.
				if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "55P03" || n1 != 0 || n2 != 0 {
					t.Errorf("Run = %d, %v; committed row1 n=%d, row2 n=%d; want the lock timeout (55P03) returned to the owner and nothing committed", v, err, n1, n2)
				}
			})
		}
	}
}

// TestReadOnlyNotifyInAThen: "A read-only transaction does not
// count" (Then): a step that is a pgxdb.InTx with ReadOnly is not counted
// as a commit, so a retry around the Then runs it again after the next
// step fails. PostgreSQL lets a READ ONLY transaction NOTIFY, and the
// notification is delivered at each commit: the listener gets it twice.
func TestReadOnlyNotifyInAThen(t *testing.T) {
	pool := newPool(t, 2)
	admin := newPool(t, 2)
	lc, err := admin.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Release()
	exec(t, lc, "LISTEN pgxdb_rb_ro_chan")
	errTransient := errors.New("transient")
	notify := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_notify('pgxdb_rb_ro_chan', 'order-7 shipped')")
		return err
	}, pgxdb.ReadOnly())
	second := 0
	seq := dbop.Then(notify, func(ctx context.Context, _ struct{}) (int, error) {
		second++
		if second == 1 {
			return 0, dbop.Classify(errTransient, dbop.RetryTransaction)
		}
		return 1, nil
	})
	v, err := seq.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(t.Context())
	got := notifications(t, lc.Conn())
	t.Logf("Run = %d, %v; notifications delivered: %d", v, err, got)
	if got != 1 {
		t.Errorf("the READ ONLY step's notification was delivered %d times: the retry ran the committed step again", got)
	}
}

// TestDerivedLockTimeoutInAThenStep: WithTimeout around a retried
// InTx sets lock_timeout from the deadline; inside, a retry around a Then
// of two savepoint steps, the second with a retry of its own, waits on a
// row another transaction holds until the derived lock_timeout fires
// (55P03) inside the savepoint. Nothing may commit in part, no released
// step may run twice in one transaction, and the caller gets an error or
// a complete success.
func TestDerivedLockTimeoutInAThenStep(t *testing.T) {
	pool := newPool(t, 4)
	sc := newLockScene(t, pool, "pgxdb_rb_dlt")
	rows, lock := sc.rows, sc.lock
	var cRuns, bRuns, txs int
	var stepRetries, thenRetries, ownerRetries retries
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		txs++
		c := dbop.Op[int](func(ctx context.Context) (int, error) {
			cRuns++
			_, err := tx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 1")
			return 1, err
		}).With(pgxdb.InSavepoint(tx))
		b := dbop.Op[int](func(ctx context.Context) (int, error) {
			bRuns++
			if _, err := tx.Exec(ctx, "UPDATE "+lock+" SET id = id WHERE id = 1"); err != nil {
				return 0, err
			}
			_, err := tx.Exec(ctx, "UPDATE "+rows+" SET n = n + 1 WHERE id = 2")
			return 2, err
		}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2), dbop.OnRetry(stepRetries.record)), pgxdb.InSavepoint(tx))
		return dbop.Then(c, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) }).
			With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2), dbop.OnRetry(thenRetries.record))).Run(ctx)
	})
	start := time.Now()
	v, err := op.With(dbop.WithTimeout(3*time.Second), dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2), dbop.OnRetry(ownerRetries.record)), dbop.WithTimeout(1500*time.Millisecond)).Run(t.Context())
	n1, n2 := sc.committed(t)
	t.Logf("Run = %d, %v after %v; transactions %d, C ran %d, B %d; retries: step %v, Then %v, owner %v; committed n1=%d n2=%d",
		v, err, time.Since(start).Round(time.Millisecond), txs, cRuns, bRuns, composeEvents(&stepRetries), composeEvents(&thenRetries), composeEvents(&ownerRetries), n1, n2)
	if err == nil || n1 != 0 || n2 != 0 {
		t.Errorf("Run = %d, %v with rows n1=%d n2=%d; want an error and nothing committed (the lock is never free)", v, err, n1, n2)
	}
	if len(composeEvents(&thenRetries)) != 0 {
		t.Errorf("the retry around the Then retried after C was released")
	}
}
