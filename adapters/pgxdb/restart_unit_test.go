package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

const (
	savepointRestart = "SAVEPOINT cockroach_restart"
	releaseRestart   = "RELEASE SAVEPOINT cockroach_restart"
	rollbackRestart  = "ROLLBACK TO SAVEPOINT cockroach_restart"
)

func errRestart() error {
	return dboptest.PgError("40001", "restart transaction: TransactionRetryWithProtoRefreshError")
}

// The restart protocol against a scripted server: which errors restart in
// place, which leave InTx, and how a RELEASE error is judged.
func TestCockroachRestartProtocol(t *testing.T) {
	dup := dboptest.PgError("23505", "duplicate key")
	tests := []struct {
		name        string
		fail        map[string][]error
		restarts    int // dbop.MaxAttempts(restarts+1)
		wantErr     bool
		wantVerdict dbop.Verdict // NotRetryable: final (see below)
		wantSame    error        // if set, the error returned is this very value
		wantAmbig   bool
		wantLog     []string
	}{
		{
			name:    "commits",
			wantLog: []string{"begin", savepointRestart, "INSERT a", releaseRestart, "commit"},
		},
		{
			name:     "40001 from fn restarts in place",
			fail:     map[string][]error{"INSERT a": {errRestart()}},
			restarts: 1,
			wantLog:  []string{"begin", savepointRestart, "INSERT a", rollbackRestart, "INSERT a", releaseRestart, "commit"},
		},
		{
			name:     "40001 from RELEASE restarts in place",
			fail:     map[string][]error{releaseRestart: {errRestart()}},
			restarts: 1,
			wantLog:  []string{"begin", savepointRestart, "INSERT a", releaseRestart, rollbackRestart, "INSERT a", releaseRestart, "commit"},
		},
		{
			name:     "restarts used up: a new transaction",
			fail:     map[string][]error{"INSERT a": {errRestart(), errRestart()}},
			restarts: 1,
			wantLog: []string{
				// Each failed run is rolled back to the savepoint before the
				// retry decides whether to restart: the last one too.
				"begin", savepointRestart, "INSERT a", rollbackRestart, "INSERT a", rollbackRestart, "rollback",
				"begin", savepointRestart, "INSERT a", releaseRestart, "commit",
			},
		},
		{
			name:        "other errors leave at once",
			fail:        map[string][]error{"INSERT a": {dup}},
			restarts:    5,
			wantErr:     true,
			wantVerdict: dbop.NotRetryable,
			wantSame:    dup,
			wantLog:     []string{"begin", savepointRestart, "INSERT a", "rollback"},
		},
		{
			name:        "RELEASE lost after the send is ambiguous",
			fail:        map[string][]error{releaseRestart: {io.ErrUnexpectedEOF}},
			restarts:    5,
			wantErr:     true,
			wantVerdict: dbop.Ambiguous,
			wantAmbig:   true,
			wantLog:     []string{"begin", savepointRestart, "INSERT a", releaseRestart, "rollback"},
		},
		{
			name:        "RELEASE 40003 is ambiguous",
			fail:        map[string][]error{releaseRestart: {dboptest.PgError("40003", "result is ambiguous")}},
			wantErr:     true,
			wantVerdict: dbop.Ambiguous,
			wantAmbig:   true,
			wantLog:     []string{"begin", savepointRestart, "INSERT a", releaseRestart, "rollback"},
		},
		{
			name:    "RELEASE not sent is retried as a whole",
			fail:    map[string][]error{releaseRestart: {safeErr{safe: true}}},
			wantLog: []string{"begin", savepointRestart, "INSERT a", releaseRestart, "rollback", "begin", savepointRestart, "INSERT a", releaseRestart, "commit"},
		},
		{
			name:        "RELEASE answered by a server error is not committed",
			fail:        map[string][]error{releaseRestart: {dboptest.PgError("25P02", "current transaction is aborted")}},
			wantErr:     true,
			wantVerdict: dbop.NotRetryable,
			wantLog:     []string{"begin", savepointRestart, "INSERT a", releaseRestart, "rollback"},
		},
		{
			name:     "failed ROLLBACK TO dooms the transaction",
			fail:     map[string][]error{"INSERT a": {errRestart()}, rollbackRestart: {dboptest.NetworkError()}},
			restarts: 1,
			wantLog: []string{
				"begin", savepointRestart, "INSERT a", rollbackRestart, "rollback",
				"begin", savepointRestart, "INSERT a", releaseRestart, "commit",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var db fakeDB
			for stmt, errs := range tt.fail {
				db.FailNext(stmt, errs...)
			}
			op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
				_, err := tx.Exec(ctx, "INSERT a")
				return 1, err
			}, pgxdb.CockroachRestart(dbop.MaxAttempts(tt.restarts+1)))
			_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Run error = %v, want error: %t", err, tt.wantErr)
			}
			if err != nil {
				v := dbop.VerdictOf(err)
				if tt.wantVerdict == dbop.NotRetryable {
					// Final: a NotRetryable error is not wrapped for its
					// verdict, which VerdictOf may report as Unclassified
					// (invariant 7).
					if !final(v) {
						t.Errorf("verdict = %v, want final (error %v)", v, err)
					}
				} else if v != tt.wantVerdict {
					t.Errorf("verdict = %v, want %v (error %v)", v, tt.wantVerdict, err)
				}
				if tt.wantSame != nil && err != tt.wantSame {
					t.Errorf("error = %v (%T), want the driver's error itself", err, err)
				}
				if got := errors.Is(err, scopes.ErrAmbiguousCommit); got != tt.wantAmbig {
					t.Errorf("ambiguous commit = %t, want %t (error %v)", got, tt.wantAmbig, err)
				}
			}
			checkLog(t, tt.wantLog, db.Log())
		})
	}
}

// The restarts are driven by one WithRetry built from CockroachRestart's
// options: they happen at once, with no wait holding the transaction's
// locks, its OnRetry and Observe options see each of them, and MaxAttempts
// ends them. A caller who gives up ends them too.
func TestCockroachRestartRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var db fakeDB
		db.FailNext("INSERT a", errRestart(), errRestart(), errRestart())
		var at []time.Duration
		start := time.Now()
		var rec retries
		obs := &observer{}
		op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
			at = append(at, time.Since(start))
			_, err := tx.Exec(ctx, "INSERT a")
			return 1, err
		}, pgxdb.CockroachRestart(dbop.MaxAttempts(3), dbop.OnRetry(rec.record), dbop.Observe(obs), dbop.Named("restart")))
		// The third run fails too: the restarts are used up, the 40001
		// leaves InTx, and the retry around it begins a new transaction.
		n, err := op.With(dbop.WithRetry(dbop.Constant(time.Second))).Run(t.Context())
		if err != nil || n != 1 {
			t.Fatalf("Run = %d, %v; want 1, nil", n, err)
		}
		want := []time.Duration{0, 0, 0, time.Second}
		if len(at) != len(want) || at[0] != want[0] || at[1] != want[1] || at[2] != want[2] || at[3] != want[3] {
			t.Errorf("fn ran at %v, want %v: restarts at once, a new transaction after the outer retry's wait", at, want)
		}
		checkLog(t, []string{"40001", "40001"}, rec.codes())
		for _, e := range rec.events {
			if e.Verdict != dbop.RetryTransaction {
				t.Errorf("restart event %+v, want verdict retry-transaction", e)
			}
		}
		checkLog(t, []string{
			"restart: attempt 1 40001", "restart: attempt 2 40001", "restart: attempt 3 40001", "restart: gave up after 3",
			"restart: attempt 1 ok", "restart: done after 1",
		}, obs.Log())
		checkLog(t, []string{
			"begin", savepointRestart, "INSERT a", rollbackRestart, "INSERT a", rollbackRestart, "INSERT a", rollbackRestart, "rollback",
			"begin", savepointRestart, "INSERT a", releaseRestart, "commit",
		}, db.Log())
	})
	t.Run("caller gives up", func(t *testing.T) {
		var db fakeDB
		db.FailNext("INSERT a", errRestart())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var runs int
		op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
			runs++
			_, err := tx.Exec(ctx, "INSERT a")
			cancel()
			return 1, err
		}, pgxdb.CockroachRestart())
		_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(ctx)
		if pgCode(err) != "40001" || runs != 1 {
			t.Errorf("after %d runs: %v; want the 40001 after one run", runs, err)
		}
		checkLog(t, []string{"begin", savepointRestart, "INSERT a", rollbackRestart, "rollback"}, db.Log())
	})
}

// A savepoint step inside fn meets the 40001. It dooms the transaction, so
// the retry around the step does not run it again; the restart undoes the
// whole run, doom included, and runs fn again, step and all, in the same
// transaction. That holds whether fn returns the step's error or swallows
// it.
func TestCockroachRestartAroundSavepointStep(t *testing.T) {
	for _, swallow := range []bool{false, true} {
		t.Run(fmt.Sprintf("swallowed %t", swallow), func(t *testing.T) {
			var db fakeDB
			db.FailNext("INSERT b", errRestart())
			var runs, steps int
			op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
				runs++
				if _, err := tx.Exec(ctx, "INSERT a"); err != nil {
					return 0, err
				}
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					steps++
					_, err := tx.Exec(ctx, "INSERT b")
					return 1, err
				})
				n, err := step.With(dbop.WithRetry(retryAtOnce), pgxdb.InSavepoint(tx)).Run(ctx)
				if swallow {
					return 1, nil
				}
				return n, err
			}, pgxdb.CockroachRestart(dbop.MaxAttempts(2)))
			var outer retries
			if _, err := op.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(outer.record))).Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			if runs != 2 || steps != 2 || len(outer.events) != 0 {
				t.Errorf("fn ran %d times, the step %d times, and the transaction was retried %d times; want 2, 2, 0",
					runs, steps, len(outer.events))
			}
			checkLog(t, []string{
				"begin", savepointRestart, "INSERT a", `SAVEPOINT "dbop_sp_1"`, "INSERT b", rollbackRestart,
				"INSERT a", `SAVEPOINT "dbop_sp_1"`, "INSERT b", `RELEASE SAVEPOINT "dbop_sp_1"`, releaseRestart, "commit",
			}, db.Log())
		})
	}
}

// observer is a dbop.Observer that logs what it is told, one line per
// attempt and per operation.
type observer struct {
	mu  sync.Mutex
	log []string
}

func (o *observer) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = append(o.log, s)
}

func (o *observer) Log() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.log...)
}

type observerName struct{}

func (o *observer) OperationStart(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, observerName{}, name)
}

func (o *observer) AttemptStart(ctx context.Context, _ int) context.Context { return ctx }

func (o *observer) AttemptEnd(ctx context.Context, e dbop.AttemptEvent) {
	name, _ := ctx.Value(observerName{}).(string)
	if e.Err == nil {
		o.add(fmt.Sprintf("%s: attempt %d ok", name, e.Attempt))
		return
	}
	o.add(fmt.Sprintf("%s: attempt %d %s", name, e.Attempt, pgCode(e.Err)))
}

func (o *observer) OperationEnd(ctx context.Context, e dbop.OperationEvent) {
	if e.Err == nil {
		o.add(fmt.Sprintf("%s: done after %d", e.Name, e.Attempts))
		return
	}
	o.add(fmt.Sprintf("%s: gave up after %d", e.Name, e.Attempts))
}

func TestSavepointsQuoteNames(t *testing.T) {
	var db fakeDB
	sp := pgxdb.Savepoints(&fakeTx{db: &db})
	const name = `odd "name"; DROP TABLE x`
	for _, step := range []func(context.Context, string) error{sp.Savepoint, sp.RollbackTo, sp.Release} {
		if err := step(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	checkLog(t, []string{
		`SAVEPOINT "odd ""name""; DROP TABLE x"`,
		`ROLLBACK TO SAVEPOINT "odd ""name""; DROP TABLE x"`,
		`RELEASE SAVEPOINT "odd ""name""; DROP TABLE x"`,
	}, db.Log())
}
