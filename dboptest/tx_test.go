package dboptest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/google/go-cmp/cmp"
)

// The fakes fit the scopes.
var (
	_ scopes.BeginFunc[*dboptest.Tx] = (*dboptest.Recorder)(nil).Begin
	_ scopes.Tx                      = (*dboptest.Tx)(nil)
	_ scopes.Savepointer             = (*dboptest.Tx)(nil)
)

func checkLog(t *testing.T, want []string, rec *dboptest.Recorder) {
	t.Helper()
	if diff := cmp.Diff(want, rec.Log()); diff != "" {
		t.Errorf("statement log mismatch (-want +got):\n%s", diff)
	}
}

func mustBegin(t *testing.T, rec *dboptest.Recorder, opts scopes.BeginOptions) *dboptest.Tx {
	t.Helper()
	tx, err := rec.Begin(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

func TestRecorderLogsStatements(t *testing.T) {
	var rec dboptest.Recorder
	ctx := t.Context()
	tx := mustBegin(t, &rec, scopes.BeginOptions{})
	for _, err := range []error{
		tx.Exec(ctx, "INSERT a"),
		tx.Savepoint(ctx, "s1"),
		tx.RollbackTo(ctx, "s1"),
		tx.Release(ctx, "s1"),
		tx.Commit(ctx),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ro := mustBegin(t, &rec, scopes.BeginOptions{ReadOnly: true})
	if err := ro.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{
		"BEGIN",
		"INSERT a",
		"SAVEPOINT s1",
		"ROLLBACK TO SAVEPOINT s1",
		"RELEASE SAVEPOINT s1",
		"COMMIT",
		"BEGIN READ ONLY",
		"ROLLBACK",
	}, &rec)
}

func TestRecorderFailNext(t *testing.T) {
	errA, errB, errC := errors.New("a"), errors.New("b"), errors.New("c")
	var rec dboptest.Recorder
	rec.FailNext("INSERT x", nil, errA) // the second INSERT x fails
	rec.FailNext("INSERT x", errB)      // then the third
	rec.FailNext("ROLLBACK", errC)      // matches ROLLBACK exactly, not ROLLBACK TO SAVEPOINT
	tx := mustBegin(t, &rec, scopes.BeginOptions{})
	ctx := t.Context()
	_ = tx.Savepoint(ctx, "s")
	got := []error{
		tx.Exec(ctx, "INSERT x"),
		tx.Exec(ctx, "INSERT x"),
		tx.Exec(ctx, "INSERT x"),
		tx.Exec(ctx, "INSERT x"),
		tx.RollbackTo(ctx, "s"),
		tx.Rollback(ctx),
	}
	want := []error{nil, errA, errB, nil, nil, errC}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("statement %d: error = %v, want %v", i+1, got[i], want[i])
		}
	}
	// Failed statements are logged: they were sent.
	checkLog(t, []string{
		"BEGIN", "SAVEPOINT s",
		"INSERT x", "INSERT x", "INSERT x", "INSERT x",
		"ROLLBACK TO SAVEPOINT s", "ROLLBACK",
	}, &rec)
}

func TestRecorderFailBegin(t *testing.T) {
	errDown := errors.New("server down")
	var rec dboptest.Recorder
	rec.FailNext("BEGIN READ ONLY", errDown)
	tx, err := rec.Begin(t.Context(), scopes.BeginOptions{ReadOnly: true})
	if tx != nil || err != errDown {
		t.Errorf("Begin = %v, %v; want nil, %v", tx, err, errDown)
	}
	checkLog(t, []string{"BEGIN READ ONLY"}, &rec)
}

func TestTxSavepoints(t *testing.T) {
	tests := []struct {
		name    string
		run     func(ctx context.Context, tx *dboptest.Tx) error // the last statement's error
		wantErr error
	}{
		{"unknown savepoint", func(ctx context.Context, tx *dboptest.Tx) error {
			return tx.RollbackTo(ctx, "nope")
		}, dboptest.ErrNoSavepoint},
		{"ROLLBACK TO keeps the savepoint", func(ctx context.Context, tx *dboptest.Tx) error {
			_ = tx.Savepoint(ctx, "s1")
			_ = tx.RollbackTo(ctx, "s1")
			return tx.RollbackTo(ctx, "s1")
		}, nil},
		{"ROLLBACK TO drops later savepoints", func(ctx context.Context, tx *dboptest.Tx) error {
			_ = tx.Savepoint(ctx, "s1")
			_ = tx.Savepoint(ctx, "s2")
			_ = tx.RollbackTo(ctx, "s1")
			return tx.Release(ctx, "s2")
		}, dboptest.ErrNoSavepoint},
		{"RELEASE drops the savepoint", func(ctx context.Context, tx *dboptest.Tx) error {
			_ = tx.Savepoint(ctx, "s1")
			_ = tx.Release(ctx, "s1")
			return tx.RollbackTo(ctx, "s1")
		}, dboptest.ErrNoSavepoint},
		{"shadowed savepoint", func(ctx context.Context, tx *dboptest.Tx) error {
			_ = tx.Savepoint(ctx, "s1")
			_ = tx.Savepoint(ctx, "s1")
			_ = tx.Release(ctx, "s1")
			return tx.Release(ctx, "s1")
		}, nil},
		{"a failed SAVEPOINT creates nothing", func(ctx context.Context, tx *dboptest.Tx) error {
			return tx.Release(ctx, "failing")
		}, dboptest.ErrNoSavepoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec dboptest.Recorder
			rec.FailNext("SAVEPOINT failing", errors.New("no"))
			tx := mustBegin(t, &rec, scopes.BeginOptions{})
			_ = tx.Savepoint(t.Context(), "failing")
			if err := tt.run(t.Context(), tx); !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestTxDone(t *testing.T) {
	errNet := errors.New("network")
	tests := []struct {
		name   string
		end    func(tx *dboptest.Tx, ctx context.Context) error
		script map[string]error
		want   []string
	}{
		{"committed", (*dboptest.Tx).Commit, nil, []string{"BEGIN", "COMMIT"}},
		{"rolled back", (*dboptest.Tx).Rollback, nil, []string{"BEGIN", "ROLLBACK"}},
		{"failed COMMIT", (*dboptest.Tx).Commit, map[string]error{"COMMIT": errNet}, []string{"BEGIN", "COMMIT"}},
		{"failed ROLLBACK", (*dboptest.Tx).Rollback, map[string]error{"ROLLBACK": errNet}, []string{"BEGIN", "ROLLBACK"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec dboptest.Recorder
			for stmt, err := range tt.script {
				rec.FailNext(stmt, err)
			}
			tx := mustBegin(t, &rec, scopes.BeginOptions{})
			_ = tt.end(tx, t.Context())
			for _, err := range []error{
				tx.Exec(t.Context(), "INSERT a"),
				tx.Savepoint(t.Context(), "s"),
				tx.Commit(t.Context()),
				tx.Rollback(t.Context()),
			} {
				if !errors.Is(err, dboptest.ErrTxDone) {
					t.Errorf("error = %v, want ErrTxDone", err)
				}
			}
			checkLog(t, tt.want, &rec) // nothing after the end is logged
		})
	}
}

func TestRecorderContextDone(t *testing.T) {
	var rec dboptest.Recorder
	tx := mustBegin(t, &rec, scopes.BeginOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := tx.Exec(ctx, "INSERT a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec error = %v, want context.Canceled", err)
	}
	if _, err := rec.Begin(ctx, scopes.BeginOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Begin error = %v, want context.Canceled", err)
	}
	checkLog(t, []string{"BEGIN"}, &rec)
}

func TestRecorderLogIsACopy(t *testing.T) {
	var rec dboptest.Recorder
	mustBegin(t, &rec, scopes.BeginOptions{})
	rec.Log()[0] = "changed"
	checkLog(t, []string{"BEGIN"}, &rec)
}

func TestRecorderConcurrent(t *testing.T) {
	var rec dboptest.Recorder
	rec.FailNext("INSERT", errors.New("a"), errors.New("b"))
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tx, err := rec.Begin(t.Context(), scopes.BeginOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			_ = tx.Exec(t.Context(), "INSERT")
			_ = tx.Savepoint(t.Context(), fmt.Sprint("s", i))
			_ = tx.Commit(t.Context())
			_ = rec.Log()
		})
	}
	wg.Wait()
	if got := len(rec.Log()); got != 4*n {
		t.Errorf("logged %d statements, want %d", got, 4*n)
	}
}
