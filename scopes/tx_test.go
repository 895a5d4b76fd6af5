package scopes_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

func TestInTxCommits(t *testing.T) {
	var rec dboptest.Recorder
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if !isWithinTx(ctx) {
			t.Error("the context handed to fn is not marked WithinTx")
		}
		return 7, tx.Exec(ctx, "INSERT a")
	})
	got, err := op.Run(t.Context())
	if got != 7 || err != nil {
		t.Fatalf("Run = %v, %v; want 7, nil", got, err)
	}
	checkLog(t, []string{"BEGIN", "INSERT a", "COMMIT"}, rec.Log())
}

func TestInTxReadOnly(t *testing.T) {
	var rec dboptest.Recorder
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		return 1, tx.Exec(ctx, "SELECT a")
	}, scopes.ReadOnly())
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{"BEGIN READ ONLY", "SELECT a", "COMMIT"}, rec.Log())
}

func TestInTxFailure(t *testing.T) {
	errRollback := errors.New("rollback failed")
	tests := []struct {
		name        string
		rollbackErr error // the ROLLBACK fails with it
		wantVerdict dbop.Verdict
		wantLog     []string
	}{
		{
			name:        "rolls back",
			wantVerdict: dbop.RetryTransaction,
			wantLog:     []string{"BEGIN", "INSERT a", "ROLLBACK"},
		},
		{
			name:        "failed rollback is joined after the error",
			rollbackErr: errRollback,
			wantVerdict: dbop.RetryTransaction,
			wantLog:     []string{"BEGIN", "INSERT a", "ROLLBACK"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec dboptest.Recorder
			rec.FailNext("INSERT a", errDeadlock)
			rec.FailNext("ROLLBACK", tt.rollbackErr)
			op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return 1, tx.Exec(ctx, "INSERT a")
			}, scopes.ClassifyBy(classifier))
			got, err := op.Run(t.Context())
			if got != 0 {
				t.Errorf("value = %v, want the zero value", got)
			}
			if !errors.Is(err, errDeadlock) {
				t.Errorf("error %v does not match the op's error", err)
			}
			if v := dbop.VerdictOf(err); v != tt.wantVerdict {
				t.Errorf("verdict = %v, want %v", v, tt.wantVerdict)
			}
			if tt.rollbackErr != nil {
				if !errors.Is(err, tt.rollbackErr) {
					t.Errorf("error %v does not match the rollback error", err)
				}
				if !strings.HasPrefix(err.Error(), errDeadlock.Error()) {
					t.Errorf("error %q does not begin with the op's error", err)
				}
			}
			checkLog(t, tt.wantLog, rec.Log())
		})
	}
}

func TestInTxRetryRestartsTransaction(t *testing.T) {
	var rec dboptest.Recorder
	rec.FailNext("UPDATE b", errDeadlock)
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "SELECT a"); err != nil {
			return 0, err
		}
		return 1, tx.Exec(ctx, "UPDATE b")
	}, scopes.ClassifyBy(classifier))
	if _, err := op.With(retry).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{
		"BEGIN", "SELECT a", "UPDATE b", "ROLLBACK",
		"BEGIN", "SELECT a", "UPDATE b", "COMMIT",
	}, rec.Log())
}

// Do is InTx for a function with no result: one transaction per run,
// committed on success, rolled back on failure, retried whole, with the
// same options.
func TestDo(t *testing.T) {
	tests := []struct {
		name    string
		fail    map[string]error // statement: its error, the first time it runs
		opts    []scopes.TxOption
		wantErr error
		wantLog []string
	}{
		{
			name:    "commits",
			wantLog: []string{"BEGIN", "INSERT a", "UPDATE b", "COMMIT"},
		},
		{
			name:    "read-only",
			opts:    []scopes.TxOption{scopes.ReadOnly()},
			wantLog: []string{"BEGIN READ ONLY", "INSERT a", "UPDATE b", "COMMIT"},
		},
		{
			name:    "rolls back a failure nobody recognises, not retried",
			fail:    map[string]error{"UPDATE b": errUnique},
			opts:    []scopes.TxOption{scopes.ClassifyBy(classifier)},
			wantErr: errUnique,
			wantLog: []string{"BEGIN", "INSERT a", "UPDATE b", "ROLLBACK"},
		},
		{
			name:    "retries the whole transaction",
			fail:    map[string]error{"UPDATE b": errDeadlock},
			opts:    []scopes.TxOption{scopes.ClassifyBy(classifier)},
			wantLog: []string{"BEGIN", "INSERT a", "UPDATE b", "ROLLBACK", "BEGIN", "INSERT a", "UPDATE b", "COMMIT"},
		},
		{
			name:    "an ambiguous COMMIT",
			fail:    map[string]error{"COMMIT": errNetwork},
			wantErr: scopes.ErrAmbiguousCommit,
			wantLog: []string{"BEGIN", "INSERT a", "UPDATE b", "COMMIT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec dboptest.Recorder
			for stmt, err := range tt.fail {
				rec.FailNext(stmt, err)
			}
			op := scopes.Do(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) error {
				if !isWithinTx(ctx) {
					t.Error("the context handed to fn is not marked WithinTx")
				}
				if err := tx.Exec(ctx, "INSERT a"); err != nil {
					return err
				}
				return tx.Exec(ctx, "UPDATE b")
			}, tt.opts...)
			v, err := op.With(retry).Run(t.Context())
			if v != (struct{}{}) || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("Run = %v, %v; want {}, %v", v, err, tt.wantErr)
			}
			checkLog(t, tt.wantLog, rec.Log())
		})
	}
}

func TestInTxPanic(t *testing.T) {
	var rec dboptest.Recorder
	type boom struct{ msg string }
	want := &boom{"boom"}
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		_ = tx.Exec(ctx, "INSERT a")
		panic(want)
	})
	got := mustPanic(t, func() { _, _ = op.With(retry).Run(t.Context()) })
	if got != want {
		t.Errorf("panic value = %v, want %v", got, want)
	}
	checkLog(t, []string{"BEGIN", "INSERT a", "ROLLBACK"}, rec.Log())
}

func TestInTxBeginError(t *testing.T) {
	setup := func() (*dboptest.Recorder, dbop.Op[int]) {
		rec := new(dboptest.Recorder)
		rec.FailNext("BEGIN", errNetwork)
		op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			return 1, tx.Exec(ctx, "INSERT a")
		}, scopes.ClassifyBy(classifier))
		return rec, op
	}
	t.Run("classified", func(t *testing.T) {
		rec, op := setup()
		_, err := op.Run(t.Context())
		if !errors.Is(err, errNetwork) {
			t.Errorf("error %v does not match the BEGIN error", err)
		}
		if v := dbop.VerdictOf(err); v != dbop.RetryTransaction {
			t.Errorf("verdict = %v, want retry-transaction", v)
		}
		checkLog(t, []string{"BEGIN"}, rec.Log())
	})
	t.Run("retried", func(t *testing.T) {
		rec, op := setup()
		if _, err := op.With(retry).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkLog(t, []string{"BEGIN", "BEGIN", "INSERT a", "COMMIT"}, rec.Log())
	})
}

func TestInTxCommitError(t *testing.T) {
	notCommitted := func(err error) dbop.Verdict {
		if errors.Is(err, errDeadlock) {
			return dbop.RetryTransaction // the server answered the COMMIT
		}
		return dbop.Ambiguous
	}
	tests := []struct {
		name          string
		commitErr     error
		opts          []scopes.TxOption
		retryOpts     []dbop.RetryOption
		wantErr       bool
		wantAmbiguous bool
		wantLog       []string
	}{
		{
			name:          "ambiguous by default and not retried",
			commitErr:     errNetwork,
			opts:          []scopes.TxOption{scopes.ClassifyBy(classifier)}, // does not override the default
			wantErr:       true,
			wantAmbiguous: true,
			wantLog:       []string{"BEGIN", "INSERT a", "COMMIT"},
		},
		{
			name:      "ambiguous and retried when idempotent",
			commitErr: errNetwork,
			retryOpts: []dbop.RetryOption{dbop.Idempotent()},
			wantLog:   []string{"BEGIN", "INSERT a", "COMMIT", "BEGIN", "INSERT a", "COMMIT"},
		},
		{
			name:      "not committed per CommitOutcome is retried",
			commitErr: errDeadlock,
			opts:      []scopes.TxOption{scopes.CommitOutcome(notCommitted)},
			wantLog:   []string{"BEGIN", "INSERT a", "COMMIT", "BEGIN", "INSERT a", "COMMIT"},
		},
		{
			name:      "Unclassified from CommitOutcome defers to ClassifyBy",
			commitErr: errDeadlock,
			opts: []scopes.TxOption{
				scopes.CommitOutcome(func(error) dbop.Verdict { return dbop.Unclassified }),
				scopes.ClassifyBy(classifier),
			},
			wantLog: []string{"BEGIN", "INSERT a", "COMMIT", "BEGIN", "INSERT a", "COMMIT"},
		},
		{
			name:          "ambiguous per CommitOutcome",
			commitErr:     errNetwork,
			opts:          []scopes.TxOption{scopes.CommitOutcome(notCommitted)},
			wantErr:       true,
			wantAmbiguous: true,
			wantLog:       []string{"BEGIN", "INSERT a", "COMMIT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec dboptest.Recorder
			rec.FailNext("COMMIT", tt.commitErr)
			op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
				return 1, tx.Exec(ctx, "INSERT a")
			}, tt.opts...)
			got, err := op.With(dbop.WithRetry(dbop.Constant(0), tt.retryOpts...)).Run(t.Context())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Run = %v, %v; want error: %t", got, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, tt.commitErr) {
				t.Errorf("error %v does not match the COMMIT error", err)
			}
			var ace *scopes.AmbiguousCommitError
			if errors.As(err, &ace) != tt.wantAmbiguous || errors.Is(err, scopes.ErrAmbiguousCommit) != tt.wantAmbiguous {
				t.Errorf("error %v: ambiguous commit = %t, want %t", err, !tt.wantAmbiguous, tt.wantAmbiguous)
			}
			if tt.wantAmbiguous {
				if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
					t.Errorf("verdict = %v, want ambiguous", v)
				}
				if ace.Err != tt.commitErr {
					t.Errorf("AmbiguousCommitError.Err = %v, want the COMMIT error", ace.Err)
				}
			}
			checkLog(t, tt.wantLog, rec.Log())
		})
	}
}

func TestInTxCancelledCaller(t *testing.T) {
	t.Run("during fn", func(t *testing.T) {
		var rec dboptest.Recorder
		ctx, cancel := context.WithCancel(t.Context())
		op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			if err := tx.Exec(ctx, "INSERT a"); err != nil {
				return 0, err
			}
			cancel()
			return 1, tx.Exec(ctx, "INSERT b") // not sent: the context is done
		})
		_, err := op.With(retry).Run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
		// The fake refuses a statement whose context is done: ROLLBACK
		// appears only because it ran with a context of its own.
		checkLog(t, []string{"BEGIN", "INSERT a", "ROLLBACK"}, rec.Log())
	})
	t.Run("before COMMIT", func(t *testing.T) {
		var rec dboptest.Recorder
		ctx, cancel := context.WithCancel(t.Context())
		op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			defer cancel()
			return 1, tx.Exec(ctx, "INSERT a")
		})
		_, err := op.With(retry).Run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
		if errors.Is(err, scopes.ErrAmbiguousCommit) {
			t.Errorf("error %v is an ambiguous commit; no COMMIT was sent", err)
		}
		checkLog(t, []string{"BEGIN", "INSERT a", "ROLLBACK"}, rec.Log())
	})
}

// hangingTx is a transaction whose Rollback blocks until its context ends.
type hangingTx struct{ rollbackCtx context.Context }

func (*hangingTx) Commit(context.Context) error { return nil }
func (tx *hangingTx) Rollback(ctx context.Context) error {
	tx.rollbackCtx = ctx
	<-ctx.Done()
	return context.Cause(ctx)
}

func TestInTxRollbackTimeout(t *testing.T) {
	tests := []struct {
		name string
		opts []scopes.TxOption
		want time.Duration
	}{
		{"default", nil, scopes.DefaultRollbackTimeout},
		{"RollbackTimeout", []scopes.TxOption{scopes.RollbackTimeout(time.Second)}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tx := &hangingTx{}
				begin := func(context.Context, scopes.BeginOptions) (*hangingTx, error) { return tx, nil }
				ctx, cancel := context.WithCancel(t.Context())
				op := scopes.InTx(begin, func(context.Context, *hangingTx) (int, error) {
					cancel()
					return 0, errUnique
				}, tt.opts...)

				start := time.Now()
				_, err := op.Run(ctx)
				if elapsed := time.Since(start); elapsed != tt.want {
					t.Errorf("Run took %v, want the rollback timeout %v", elapsed, tt.want)
				}
				if !errors.Is(err, errUnique) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %v does not match both the op's error and the rollback deadline", err)
				}
				if !strings.Contains(err.Error(), "rollback did not finish within "+tt.want.String()) {
					t.Errorf("error %q does not say the rollback timed out", err)
				}
				// The rollback context was cancelled on return: no timer is left.
				if got := context.Cause(tx.rollbackCtx); got == nil {
					t.Error("the rollback context is still live after Run returned")
				}
			})
		})
	}
}

func TestInTxRollbackContextIsCancelledOnReturn(t *testing.T) {
	// A rollback that finishes quickly: its context's timer must still be
	// stopped when Run returns.
	var rbCtx context.Context
	tx := &fastTx{rollback: func(ctx context.Context) error { rbCtx = ctx; return nil }}
	begin := func(context.Context, scopes.BeginOptions) (*fastTx, error) { return tx, nil }
	op := scopes.InTx(begin, func(context.Context, *fastTx) (int, error) { return 0, errUnique })
	_, _ = op.Run(t.Context())
	if rbCtx == nil || !errors.Is(rbCtx.Err(), context.Canceled) {
		t.Errorf("rollback context error after Run = %v, want context.Canceled (timer stopped)", rbCtx.Err())
	}
}

type fastTx struct{ rollback func(context.Context) error }

func (*fastTx) Commit(context.Context) error          { return nil }
func (tx *fastTx) Rollback(ctx context.Context) error { return tx.rollback(ctx) }

func TestInTxPanicsOnProgrammerError(t *testing.T) {
	var rec dboptest.Recorder
	fn := func(context.Context, *dboptest.Tx) (int, error) { return 0, nil }
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"nil begin", func() { scopes.InTx(nil, fn) }, "scopes: InTx: the BeginFunc is nil"},
		{"nil fn", func() { scopes.InTx[*dboptest.Tx, int](rec.Begin, nil) }, "scopes: InTx: the function to run in the transaction is nil"},
		{"nil option", func() { scopes.InTx(rec.Begin, fn, scopes.ReadOnly(), nil) }, "scopes: InTx: option 2 of 2 is nil"},
		{"no classifier", func() { scopes.ClassifyBy() }, "scopes: ClassifyBy(): a Classifier is required"},
		{"nil classifier", func() { scopes.ClassifyBy(nil) }, "scopes: ClassifyBy: classifier 1 of 1 is nil"},
		{"nil classifier among others", func() { scopes.ClassifyBy(classifier, nil) }, "scopes: ClassifyBy: classifier 2 of 2 is nil"},
		{"Do with a nil fn", func() { scopes.Do[*dboptest.Tx](rec.Begin, nil) }, "scopes: Do: the function to run in the transaction is nil"},
		{"nil commit outcome", func() { scopes.CommitOutcome(nil) }, "scopes: CommitOutcome(nil): a function is required"},
		{"zero rollback timeout", func() { scopes.RollbackTimeout(0) }, "scopes: RollbackTimeout(0s): the timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPanic(t, tt.build); got != tt.want {
				t.Errorf("panic = %q, want %q", got, tt.want)
			}
		})
	}
}

// runtime.Goexit (t.FailNow in a test) ends fn without a return or a panic:
// the transaction is rolled back all the same.
func TestInTxGoexit(t *testing.T) {
	var rec dboptest.Recorder
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		_ = tx.Exec(ctx, "INSERT a")
		runtime.Goexit()
		return 0, nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = op.Run(context.Background())
	}()
	<-done
	checkLog(t, []string{"BEGIN", "INSERT a", "ROLLBACK"}, rec.Log())
}

// sqlStateErr is a driver's error that reports a SQLSTATE.
type sqlStateErr string

func (e sqlStateErr) Error() string    { return "driver: " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

// In an errgroup the context ends with the first sibling's error as its
// cause. A transaction rolled back because of that returns the context's
// error, not the sibling's: wrapped, the sibling's deadlock would be this
// transaction's verdict and SQLSTATE. A cause that matches the context's
// error (a WithTimeout's *TimeoutError) is returned itself.
func TestInTxEndedByASiblingsCauseIsNotTheSiblingsError(t *testing.T) {
	sibling := sqlStateErr("40P01")
	t.Run("sibling's cause", func(t *testing.T) {
		var rec dboptest.Recorder
		ctx, cancel := context.WithCancelCause(t.Context())
		op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			defer cancel(sibling)
			return 1, tx.Exec(ctx, "INSERT a")
		})
		_, err := op.Run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
		var se sqlStateErr
		if errors.As(err, &se) || errors.Is(err, sibling) {
			t.Errorf("error = %v carries the sibling's error", err)
		}
		if v := dbop.VerdictOf(err); v == dbop.RetryTransaction {
			t.Errorf("verdict %v: the sibling's deadlock taken for this transaction's", v)
		}
		if !strings.Contains(err.Error(), "40P01") {
			t.Errorf("error = %v does not name its cause", err)
		}
		checkLog(t, []string{"BEGIN", "INSERT a", "ROLLBACK"}, rec.Log())
	})
	t.Run("matching cause", func(t *testing.T) {
		var rec dboptest.Recorder
		op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			<-ctx.Done()
			return 1, nil
		})
		_, err := op.With(dbop.WithTimeout(time.Millisecond)).Run(t.Context())
		var te *dbop.TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want the WithTimeout's *dbop.TimeoutError", err)
		}
	})
}
