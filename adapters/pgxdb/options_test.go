package pgxdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The handles pgx users hold are Beginners; a pgx.Tx is not (see Beginner).
var (
	_ pgxdb.Beginner = (*pgxpool.Pool)(nil)
	_ pgxdb.Beginner = (*pgxpool.Conn)(nil)
	_ pgxdb.Beginner = (*pgx.Conn)(nil)
)

func errDeadlock() error { return dboptest.PgError("40P01", "deadlock detected") }

// mustPanic returns the value f panics with, failing t if it does not.
func mustPanic(t *testing.T, f func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	f()
	t.Fatal("did not panic")
	return nil
}

func TestPanicsOnProgrammerError(t *testing.T) {
	var db fakeDB
	fn := func(context.Context, pgx.Tx) (int, error) { return 0, nil }
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"nil Beginner", func() { pgxdb.InTx(nil, fn) }, "pgxdb: InTx: the Beginner is nil"},
		// Typed nils pass a nil check on the interface and would panic
		// deep inside Run (issue 12, I5): refused at construction.
		{"nil *pgxpool.Pool", func() { pgxdb.InTx((*pgxpool.Pool)(nil), fn) }, "pgxdb: InTx: the Beginner is nil (a nil *pgxpool.Pool)"},
		{"nil *pgxpool.Conn", func() { pgxdb.InTx((*pgxpool.Conn)(nil), fn) }, "pgxdb: InTx: the Beginner is nil (a nil *pgxpool.Conn)"},
		{"nil *pgx.Conn", func() { pgxdb.InTx((*pgx.Conn)(nil), fn) }, "pgxdb: InTx: the Beginner is nil (a nil *pgx.Conn)"},
		{"nil *pgxpool.Tx", func() { pgxdb.InSavepoint((*pgxpool.Tx)(nil)) }, "pgxdb: Savepoints: the transaction is nil (a nil *pgxpool.Tx)"},
		{"nil fn", func() { pgxdb.InTx[int](&db, nil) }, "pgxdb: InTx: the function to run in the transaction is nil"},
		{"nil option", func() { pgxdb.InTx(&db, fn, pgxdb.ReadOnly(), nil) }, "pgxdb: InTx: option 2 of 2 is nil"},
		{"nil classifier", func() { pgxdb.WithClassifier(nil) }, "pgxdb: WithClassifier(nil): a Classifier is required"},
		{"zero rollback timeout", func() { pgxdb.RollbackTimeout(0) }, "pgxdb: RollbackTimeout(0s): the timeout must be positive"},
		{"negative restarts", func() { pgxdb.CockroachRestart(-1, dbop.Constant(0)) }, "pgxdb: CockroachRestart(-1, …): the number of restarts must not be negative"},
		{"nil restart backoff", func() { pgxdb.CockroachRestart(1, nil) }, "pgxdb: CockroachRestart: a Backoff is required (use dbop.Constant(0) to restart at once)"},
		{"negative lock timeout", func() { pgxdb.LockTimeout(-time.Second) }, "pgxdb: LockTimeout(-1s): the timeout must not be negative"},
		{"huge statement timeout", func() { pgxdb.StatementTimeout(1 << 31 * time.Millisecond) }, "pgxdb: StatementTimeout(596h31m23.648s): PostgreSQL accepts at most 2147483647 ms"},
		{"Timeouts without tx", func() { pgxdb.Timeouts(nil, pgxdb.LockTimeout(time.Second)) }, "pgxdb: Timeouts: the transaction is nil"},
		{"Timeouts without settings", func() { pgxdb.Timeouts(&fakeTx{db: &db}) }, "pgxdb: Timeouts: no setting given"},
		{"Savepoints without tx", func() { pgxdb.Savepoints(nil) }, "pgxdb: Savepoints: the transaction is nil"},
		{"InSavepoint without tx", func() { pgxdb.InSavepoint(nil) }, "pgxdb: Savepoints: the transaction is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPanic(t, tt.build); got != tt.want {
				t.Errorf("panic = %q, want %q", got, tt.want)
			}
		})
	}
}
