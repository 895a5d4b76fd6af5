package pgxdb_test

import (
	"context"
	"errors"
	"io"
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
		maxRestarts int
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
			name:        "40001 from fn restarts in place",
			fail:        map[string][]error{"INSERT a": {errRestart()}},
			maxRestarts: 1,
			wantLog:     []string{"begin", savepointRestart, "INSERT a", rollbackRestart, "INSERT a", releaseRestart, "commit"},
		},
		{
			name:        "40001 from RELEASE restarts in place",
			fail:        map[string][]error{releaseRestart: {errRestart()}},
			maxRestarts: 1,
			wantLog:     []string{"begin", savepointRestart, "INSERT a", releaseRestart, rollbackRestart, "INSERT a", releaseRestart, "commit"},
		},
		{
			name:        "restarts used up: a new transaction",
			fail:        map[string][]error{"INSERT a": {errRestart(), errRestart()}},
			maxRestarts: 1,
			wantLog: []string{
				"begin", savepointRestart, "INSERT a", rollbackRestart, "INSERT a", "rollback",
				"begin", savepointRestart, "INSERT a", releaseRestart, "commit",
			},
		},
		{
			name:        "other errors leave at once",
			fail:        map[string][]error{"INSERT a": {dup}},
			maxRestarts: 5,
			wantErr:     true,
			wantVerdict: dbop.NotRetryable,
			wantSame:    dup,
			wantLog:     []string{"begin", savepointRestart, "INSERT a", "rollback"},
		},
		{
			name:        "RELEASE lost after the send is ambiguous",
			fail:        map[string][]error{releaseRestart: {io.ErrUnexpectedEOF}},
			maxRestarts: 5,
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
			name:        "failed ROLLBACK TO dooms the transaction",
			fail:        map[string][]error{"INSERT a": {errRestart()}, rollbackRestart: {dboptest.NetworkError()}},
			maxRestarts: 1,
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
			}, pgxdb.CockroachRestart(tt.maxRestarts, dbop.Constant(0)))
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

// Restart n waits the backoff's delay for n, after the rollback; a caller
// who gives up during the wait ends the attempt.
func TestCockroachRestartBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var db fakeDB
		db.FailNext("INSERT a", errRestart(), errRestart())
		var at []time.Duration
		start := time.Now()
		op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
			at = append(at, time.Since(start))
			_, err := tx.Exec(ctx, "INSERT a")
			return 1, err
		}, pgxdb.CockroachRestart(2, dbop.Exponential(10*time.Millisecond, time.Second)))
		if _, err := op.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, 10 * time.Millisecond, 30 * time.Millisecond}
		if len(at) != len(want) || at[0] != want[0] || at[1] != want[1] || at[2] != want[2] {
			t.Errorf("fn ran at %v, want %v", at, want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		var db fakeDB
		db.FailNext("INSERT a", errRestart())
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		defer cancel()
		op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
			_, err := tx.Exec(ctx, "INSERT a")
			return 1, err
		}, pgxdb.CockroachRestart(2, dbop.Constant(time.Second)))
		_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || pgCode(err) != "40001" {
			t.Errorf("error = %v, want the 40001 and the caller's deadline", err)
		}
		checkLog(t, []string{"begin", savepointRestart, "INSERT a", rollbackRestart, "rollback"}, db.Log())
	})
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
