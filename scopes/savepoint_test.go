package scopes_test

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// A statement-level failure is retried inside the savepoint: the
// transaction's earlier work is kept, and there is one BEGIN and one COMMIT.
func TestInSavepointStatementRetryKeepsEarlierWork(t *testing.T) {
	var rec dboptest.Recorder
	rec.FailNext("UPDATE b", errLockTimeout, errLockTimeout)
	var steps int
	transfer := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT a"); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			steps++
			return 1, tx.Exec(ctx, "UPDATE b")
		})
		return step.With(retry, scopes.InSavepoint(tx, scopes.ClassifyBy(classifier))).Run(ctx)
	}, scopes.ClassifyBy(classifier))

	got, err := transfer.With(retry).Run(t.Context())
	if got != 1 || err != nil {
		t.Fatalf("Run = %v, %v; want 1, nil", got, err)
	}
	if steps != 3 {
		t.Errorf("step ran %d times, want 3", steps)
	}
	checkLog(t, []string{
		"BEGIN",
		"INSERT a",
		"SAVEPOINT dbop_sp_1",
		"UPDATE b",
		"ROLLBACK TO SAVEPOINT dbop_sp_1",
		"RELEASE SAVEPOINT dbop_sp_1",
		"SAVEPOINT dbop_sp_1",
		"UPDATE b",
		"ROLLBACK TO SAVEPOINT dbop_sp_1",
		"RELEASE SAVEPOINT dbop_sp_1",
		"SAVEPOINT dbop_sp_1",
		"UPDATE b",
		"RELEASE SAVEPOINT dbop_sp_1",
		"COMMIT",
	}, rec.Log())
}

// A transaction-level failure passes out of the savepoint untouched, past
// the retry around the savepoint, and the retry around InTx restarts the
// whole transaction.
func TestInSavepointTransactionErrorEscapes(t *testing.T) {
	deadlock := dbop.Classify(errDeadlock, dbop.RetryTransaction) // as a classifying adapter returns it
	var rec dboptest.Recorder
	rec.FailNext("UPDATE b", deadlock)
	var escaped []error
	transfer := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT a"); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 1, tx.Exec(ctx, "UPDATE b")
		})
		n, err := step.With(retry, scopes.InSavepoint(tx)).Run(ctx)
		if err != nil {
			escaped = append(escaped, err)
		}
		return n, err
	})

	got, err := transfer.With(retry).Run(t.Context())
	if got != 1 || err != nil {
		t.Fatalf("Run = %v, %v; want 1, nil", got, err)
	}
	// The deadlock travels out marked as dooming the transaction (I7: dbop
	// wraps an error on its way to the transaction's owner), with the same
	// text and verdict, and errors.Is reaches it.
	if len(escaped) != 1 || !errors.Is(escaped[0], deadlock) || escaped[0].Error() != deadlock.Error() {
		t.Fatalf("errors out of the savepoint = %v, want the deadlock error", escaped)
	}
	if v := dbop.VerdictOf(escaped[0]); v != dbop.RetryTransaction {
		t.Errorf("verdict out of the savepoint = %v, want retry-transaction", v)
	}
	if !errors.Is(escaped[0], errDeadlock) {
		t.Errorf("errors.Is(%v, errDeadlock) = false", escaped[0])
	}
	checkLog(t, []string{
		"BEGIN",
		"INSERT a",
		"SAVEPOINT dbop_sp_1",
		"UPDATE b",
		"ROLLBACK", // no ROLLBACK TO: the transaction is doomed
		"BEGIN",
		"INSERT a",
		"SAVEPOINT dbop_sp_1",
		"UPDATE b",
		"RELEASE SAVEPOINT dbop_sp_1",
		"COMMIT",
	}, rec.Log())
}

// runInTx runs step inside InSavepoint inside a fresh transaction of rec,
// with INSERT a before it and INSERT c after it, and returns the step's
// error and the transaction's. fn ignores the step's error and goes on, so
// the transaction commits unless a scope saw it doomed.
func runInTx(t *testing.T, rec *dboptest.Recorder, step func(ctx context.Context, tx *dboptest.Tx) error, opts ...scopes.SavepointOption) (stepErr, txErr error) {
	t.Helper()
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		if err := tx.Exec(ctx, "INSERT a"); err != nil {
			return 0, err
		}
		_, stepErr = dbop.Op[int](func(ctx context.Context) (int, error) {
			return 0, step(ctx, tx)
		}).With(scopes.InSavepoint(tx, opts...)).Run(ctx)
		return 0, tx.Exec(ctx, "INSERT c")
	})
	_, txErr = op.Run(t.Context())
	return stepErr, txErr
}

func TestInSavepointErrors(t *testing.T) {
	errBroken := errors.New("connection broken")
	tests := []struct {
		name        string
		fail        map[string][]error // FailNext scripts
		opts        []scopes.SavepointOption
		wantIs      []error
		wantVerdict dbop.Verdict
		wantPrefix  string // of the error message
		wantLog     []string
		// wantDoomed: the step doomed the transaction, so InTx rolls it
		// back although fn returned nil, and returns the step's error.
		wantDoomed bool
		wantSame   bool // the step's error is the statement's error value (==)
	}{
		{
			name:        "permanent error rolls back and releases",
			fail:        map[string][]error{"UPDATE b": {errUnique}},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errUnique},
			wantVerdict: dbop.Unclassified, // NotRetryable is not attached: nothing retries it anyway (I7)
			wantLog: []string{"SAVEPOINT dbop_sp_1", "UPDATE b",
				"ROLLBACK TO SAVEPOINT dbop_sp_1", "RELEASE SAVEPOINT dbop_sp_1"},
		},
		{
			name:        "unclassified error rolls back and releases",
			fail:        map[string][]error{"UPDATE b": {errUnique}},
			wantIs:      []error{errUnique},
			wantVerdict: dbop.Unclassified,
			wantLog: []string{"SAVEPOINT dbop_sp_1", "UPDATE b",
				"ROLLBACK TO SAVEPOINT dbop_sp_1", "RELEASE SAVEPOINT dbop_sp_1"},
		},
		{
			name:        "ambiguous error does not roll back",
			fail:        map[string][]error{"UPDATE b": {dbop.Classify(errNetwork, dbop.Ambiguous)}},
			wantIs:      []error{errNetwork},
			wantVerdict: dbop.Ambiguous,
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b"},
			wantDoomed:  true,
		},
		{
			name: "failed ROLLBACK TO is transaction-level and keeps both errors",
			fail: map[string][]error{
				"UPDATE b":                        {errLockTimeout},
				"ROLLBACK TO SAVEPOINT dbop_sp_1": {errBroken},
			},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errLockTimeout, errBroken},
			wantVerdict: dbop.RetryTransaction,
			wantPrefix:  "lock timeout (scopes: rollback to savepoint dbop_sp_1: connection broken)",
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "ROLLBACK TO SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			name: "failed RELEASE after ROLLBACK TO is transaction-level",
			fail: map[string][]error{
				"UPDATE b":                    {errLockTimeout},
				"RELEASE SAVEPOINT dbop_sp_1": {errBroken},
			},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errLockTimeout, errBroken},
			wantVerdict: dbop.RetryTransaction,
			wantLog: []string{"SAVEPOINT dbop_sp_1", "UPDATE b",
				"ROLLBACK TO SAVEPOINT dbop_sp_1", "RELEASE SAVEPOINT dbop_sp_1"},
			wantDoomed: true,
		},
		{
			name:        "failed RELEASE after success is transaction-level",
			fail:        map[string][]error{"RELEASE SAVEPOINT dbop_sp_1": {errBroken}},
			wantIs:      []error{errBroken},
			wantVerdict: dbop.RetryTransaction,
			wantPrefix:  "scopes: release savepoint dbop_sp_1: connection broken",
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "RELEASE SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			name: "failed ROLLBACK TO keeps a final verdict",
			fail: map[string][]error{
				"UPDATE b":                        {errUnique},
				"ROLLBACK TO SAVEPOINT dbop_sp_1": {errBroken},
			},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errUnique, errBroken},
			wantVerdict: dbop.NotRetryable,
			wantPrefix:  "duplicate key (scopes: rollback to savepoint dbop_sp_1: connection broken)",
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "ROLLBACK TO SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			// The undo's error, a lost connection, lends the step's
			// unrecognised error no verdict of its own (invariant 3).
			name: "failed ROLLBACK TO keeps an unrecognised error final",
			fail: map[string][]error{
				"UPDATE b":                        {errors.New("a bug")},
				"ROLLBACK TO SAVEPOINT dbop_sp_1": {errNetwork},
			},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errNetwork},
			wantVerdict: dbop.NotRetryable,
			wantPrefix:  "a bug (scopes: rollback to savepoint dbop_sp_1: connection reset by peer)",
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "ROLLBACK TO SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			name: "failed ROLLBACK TO keeps an unrecognised error as it is",
			fail: map[string][]error{
				"UPDATE b":                        {errors.New("a bug")},
				"ROLLBACK TO SAVEPOINT dbop_sp_1": {errBroken},
			},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errBroken},
			wantVerdict: dbop.Unclassified,
			wantPrefix:  "a bug (scopes: rollback to savepoint dbop_sp_1: connection broken)",
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "ROLLBACK TO SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			// The Savepointer found the transaction ended under the step.
			name: "Ambiguous ROLLBACK TO error makes the step's error Ambiguous",
			fail: map[string][]error{
				"UPDATE b":                        {errLockTimeout},
				"ROLLBACK TO SAVEPOINT dbop_sp_1": {dbop.Classify(errBroken, dbop.Ambiguous)},
			},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errLockTimeout, errBroken},
			wantVerdict: dbop.Ambiguous,
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "ROLLBACK TO SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			name:        "Ambiguous RELEASE error after success stays Ambiguous",
			fail:        map[string][]error{"RELEASE SAVEPOINT dbop_sp_1": {dbop.Classify(errBroken, dbop.Ambiguous)}},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errBroken},
			wantVerdict: dbop.Ambiguous,
			wantPrefix:  "scopes: release savepoint dbop_sp_1: connection broken",
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "RELEASE SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			name:        "failed RELEASE after success keeps NotRetryable",
			fail:        map[string][]error{"RELEASE SAVEPOINT dbop_sp_1": {errUnique}},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errUnique},
			wantVerdict: dbop.Unclassified, // NotRetryable, which is not attached (invariant 7)
			wantPrefix:  "scopes: release savepoint dbop_sp_1: duplicate key",
			wantLog:     []string{"SAVEPOINT dbop_sp_1", "UPDATE b", "RELEASE SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
		{
			name:        "failed SAVEPOINT is classified and the step does not run",
			fail:        map[string][]error{"SAVEPOINT dbop_sp_1": {errLockTimeout}},
			opts:        []scopes.SavepointOption{scopes.ClassifyBy(classifier)},
			wantIs:      []error{errLockTimeout},
			wantVerdict: dbop.RetryStatement,
			wantPrefix:  "scopes: savepoint dbop_sp_1: lock timeout",
			wantLog:     []string{"SAVEPOINT dbop_sp_1"},
			wantDoomed:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec dboptest.Recorder
			for stmt, errs := range tt.fail {
				rec.FailNext(stmt, errs...)
			}
			err, txErr := runInTx(t, &rec, func(ctx context.Context, tx *dboptest.Tx) error {
				return tx.Exec(ctx, "UPDATE b")
			}, tt.opts...)
			if err == nil {
				t.Fatal("the step succeeded")
			}
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			if v := dbop.VerdictOf(err); v != tt.wantVerdict {
				t.Errorf("verdict of %v = %v, want %v", err, v, tt.wantVerdict)
			}
			if !strings.HasPrefix(err.Error(), tt.wantPrefix) {
				t.Errorf("error = %q, want it to begin with %q", err, tt.wantPrefix)
			}
			if tt.wantSame && err != tt.fail["UPDATE b"][0] {
				t.Errorf("step error = %#v, want the statement's error value itself", err)
			}
			want := append([]string{"BEGIN", "INSERT a"}, tt.wantLog...)
			if tt.wantDoomed {
				// fn swallowed the step's error; InTx saw the transaction
				// doomed and rolled it back instead of committing.
				if !errors.Is(txErr, err) && txErr.Error() != err.Error() {
					t.Errorf("transaction error = %v, want the step's error %v", txErr, err)
				}
				checkLog(t, append(want, "INSERT c", "ROLLBACK"), rec.Log())
				return
			}
			if txErr != nil {
				t.Fatalf("transaction failed: %v", txErr)
			}
			checkLog(t, append(want, "INSERT c", "COMMIT"), rec.Log())
		})
	}
}

func TestInSavepointPanic(t *testing.T) {
	var rec dboptest.Recorder
	want := errors.New("boom") // any value: an error is one
	var recovered any
	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			_ = tx.Exec(ctx, "UPDATE b")
			panic(want)
		})
		func() {
			defer func() { recovered = recover() }()
			_, _ = step.With(retry, scopes.InSavepoint(tx)).Run(ctx)
		}()
		return 0, tx.Exec(ctx, "INSERT c")
	})
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if recovered != want {
		t.Errorf("panic value = %v, want %v", recovered, want)
	}
	checkLog(t, []string{
		"BEGIN",
		"SAVEPOINT dbop_sp_1",
		"UPDATE b",
		"ROLLBACK TO SAVEPOINT dbop_sp_1",
		"RELEASE SAVEPOINT dbop_sp_1",
		"INSERT c",
		"COMMIT",
	}, rec.Log())
}

func TestInSavepointNested(t *testing.T) {
	var rec dboptest.Recorder
	rec.FailNext("UPDATE c", errLockTimeout)
	err, txErr := runInTx(t, &rec, func(ctx context.Context, tx *dboptest.Tx) error {
		if !isWithinTx(ctx) {
			t.Error("the context handed to the op is not marked WithinTx")
		}
		if err := tx.Exec(ctx, "UPDATE b"); err != nil {
			return err
		}
		inner := dbop.Op[int](func(ctx context.Context) (int, error) { return 0, tx.Exec(ctx, "UPDATE c") })
		_, err := inner.With(retry, scopes.InSavepoint(tx, scopes.ClassifyBy(classifier))).Run(ctx)
		return err
	})
	if err != nil || txErr != nil {
		t.Fatal(err, txErr)
	}
	checkLog(t, []string{
		"BEGIN",
		"INSERT a",
		"SAVEPOINT dbop_sp_1",
		"UPDATE b",
		"SAVEPOINT dbop_sp_2",
		"UPDATE c",
		"ROLLBACK TO SAVEPOINT dbop_sp_2",
		"RELEASE SAVEPOINT dbop_sp_2",
		"SAVEPOINT dbop_sp_2",
		"UPDATE c",
		"RELEASE SAVEPOINT dbop_sp_2",
		"RELEASE SAVEPOINT dbop_sp_1",
		"INSERT c",
		"COMMIT",
	}, rec.Log())
}

// The caller's context is cancelled during the step: the savepoint is still
// rolled back to and released, with a context of their own (the fake
// refuses statements whose context is done).
func TestInSavepointCancelledCaller(t *testing.T) {
	var rec dboptest.Recorder
	tx, err := rec.Begin(t.Context(), scopes.BeginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(dbop.WithinTx(t.Context()))
	step := dbop.Op[int](func(ctx context.Context) (int, error) {
		cancel()
		return 0, tx.Exec(ctx, "UPDATE b")
	})
	_, err = step.With(retry, scopes.InSavepoint(tx)).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	checkLog(t, []string{
		"BEGIN",
		"SAVEPOINT dbop_sp_1",
		"ROLLBACK TO SAVEPOINT dbop_sp_1",
		"RELEASE SAVEPOINT dbop_sp_1",
	}, rec.Log())
}

func TestInSavepointPanicsOnProgrammerError(t *testing.T) {
	tx := new(dboptest.Tx)
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"nil Savepointer", func() { scopes.InSavepoint(nil) }, "scopes: InSavepoint: the Savepointer is nil"},
		{"nil option", func() { scopes.InSavepoint(tx, nil) }, "scopes: InSavepoint: option 1 of 1 is nil"},
		// ReadOnly and CommitOutcome given to InSavepoint used to panic
		// here; they are only TxOptions now, so such a call does not
		// compile (see TestOptionKinds).
		{"depth 0", func() { scopes.SavepointName(0) }, "scopes: SavepointName(0): depth starts at 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPanic(t, tt.build); got != tt.want {
				t.Errorf("panic = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSavepointName(t *testing.T) {
	for depth, want := range map[int]string{1: "dbop_sp_1", 2: "dbop_sp_2", 10: "dbop_sp_10"} {
		if got := scopes.SavepointName(depth); got != want {
			t.Errorf("SavepointName(%d) = %q, want %q", depth, got, want)
		}
	}
}

var identifier = regexp.MustCompile(`^dbop_sp_[1-9][0-9]*$`)

// Every depth gets a plain SQL identifier (no quoting needed, within
// PostgreSQL's 63 bytes) from which the depth can be read back, so two
// depths never share a name.
func FuzzSavepointName(f *testing.F) {
	for _, d := range []int{1, 2, 9, 10, 1 << 31, int(^uint(0) >> 1)} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, depth int) {
		if depth < 1 {
			if mustPanic(t, func() { scopes.SavepointName(depth) }) == nil {
				t.Fatal("nil panic value")
			}
			return
		}
		name := scopes.SavepointName(depth)
		if !identifier.MatchString(name) || len(name) > 63 {
			t.Fatalf("SavepointName(%d) = %q, not a plain identifier", depth, name)
		}
		back, err := strconv.Atoi(strings.TrimPrefix(name, "dbop_sp_"))
		if err != nil || back != depth {
			t.Fatalf("SavepointName(%d) = %q, which reads back as %d (%v)", depth, name, back, err)
		}
	})
}

// spySavepointer records the contexts its statements run with.
type spySavepointer struct{ ctxs map[string]context.Context }

func (s *spySavepointer) Savepoint(ctx context.Context, _ string) error {
	s.ctxs["SAVEPOINT"] = ctx
	return nil
}

func (s *spySavepointer) RollbackTo(ctx context.Context, _ string) error {
	s.ctxs["ROLLBACK TO"] = ctx
	return nil
}

func (s *spySavepointer) Release(ctx context.Context, _ string) error {
	s.ctxs["RELEASE"] = ctx
	return nil
}

func TestInSavepointUndoContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &spySavepointer{ctxs: map[string]context.Context{}}
		step := dbop.Op[int](func(context.Context) (int, error) { return 0, errUnique })
		_, err := step.With(scopes.InSavepoint(sp, scopes.RollbackTimeout(time.Second))).Run(t.Context())
		if !errors.Is(err, errUnique) {
			t.Fatalf("error = %v, want errUnique", err)
		}
		for _, stmt := range []string{"ROLLBACK TO", "RELEASE"} {
			ctx := sp.ctxs[stmt]
			if ctx == nil {
				t.Fatalf("%s did not run", stmt)
			}
			if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) != time.Second {
				t.Errorf("%s ran with deadline %v (set: %t), want one second from now", stmt, deadline, ok)
			}
			// Cancelled on return: no timer outlives the call.
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Errorf("%s context error after Run = %v, want context.Canceled", stmt, ctx.Err())
			}
		}
	})
}
