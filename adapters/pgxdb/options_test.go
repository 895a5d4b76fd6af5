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
	do := func(context.Context, pgx.Tx) error { return nil }
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
		{"nil *pgxpool.Tx", func() { pgxdb.InSavepoint((*pgxpool.Tx)(nil)) }, "pgxdb: InSavepoint: the transaction is nil (a nil *pgxpool.Tx)"},
		{"nil fn", func() { pgxdb.InTx[int](&db, nil) }, "pgxdb: InTx: the function to run in the transaction is nil"},
		{"nil option", func() { pgxdb.InTx(&db, fn, pgxdb.ReadOnly(), nil) }, "pgxdb: InTx: option 2 of 2 is nil"},
		{"Do: nil Beginner", func() { pgxdb.Do((*pgxpool.Pool)(nil), do) }, "pgxdb: Do: the Beginner is nil (a nil *pgxpool.Pool)"},
		{"Do: nil fn", func() { pgxdb.Do(&db, nil) }, "pgxdb: Do: the function to run in the transaction is nil"},
		{"Do: nil option", func() { pgxdb.Do(&db, do, nil) }, "pgxdb: Do: option 1 of 1 is nil"},
		{"no classifier", func() { pgxdb.ClassifyBy() }, "pgxdb: ClassifyBy(): a Classifier is required"},
		{"nil classifier", func() { pgxdb.ClassifyBy(pgxdb.Classifier, nil) }, "pgxdb: ClassifyBy: classifier 2 of 2 is nil"},
		{"zero rollback timeout", func() { pgxdb.RollbackTimeout(0) }, "pgxdb: RollbackTimeout(0s): the timeout must be positive"},
		{"nil restart option", func() { pgxdb.CockroachRestart(dbop.MaxAttempts(3), nil) }, "pgxdb: CockroachRestart: option 2 of 2 is nil"},
		{"negative lock timeout", func() { pgxdb.LockTimeout(-time.Second) }, "pgxdb: LockTimeout(-1s): the timeout must not be negative"},
		{"huge statement timeout", func() { pgxdb.StatementTimeout(1 << 31 * time.Millisecond) }, "pgxdb: StatementTimeout(596h31m23.648s): PostgreSQL accepts at most 2147483647 ms"},
		{"Savepoints without tx", func() { pgxdb.Savepoints(nil) }, "pgxdb: Savepoints: the transaction is nil"},
		{"InSavepoint without tx", func() { pgxdb.InSavepoint(nil) }, "pgxdb: InSavepoint: the transaction is nil"},
		{"InSavepoint: nil option", func() { pgxdb.InSavepoint(&fakeTx{db: &db}, pgxdb.LockTimeout(time.Second), nil) }, "pgxdb: InSavepoint: option 2 of 2 is nil"},
		// A savepoint step listed before the retry would run every attempt
		// in one savepoint: refused when the pipeline is built.
		{"InSavepoint before WithRetry", func() {
			dbop.Op[int](func(context.Context) (int, error) { return 0, nil }).
				With(pgxdb.InSavepoint(&fakeTx{db: &db}, pgxdb.LockTimeout(time.Second)), dbop.WithRetry(retryAtOnce))
		}, "dbop: a transaction scope such as InSavepoint (decorator 1) is listed before WithRetry (decorator 2): " +
			"every attempt would run inside the same savepoint, which cannot undo a failed attempt; list WithRetry first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustPanic(t, tt.build); got != tt.want {
				t.Errorf("panic = %q, want %q", got, tt.want)
			}
		})
	}
}

// The options that fit savepoints are Options; the transaction-only ones
// are not SavepointOptions, so giving one to InSavepoint does not compile.
func TestOptionKinds(t *testing.T) {
	var (
		_ pgxdb.Option = pgxdb.ClassifyBy(pgxdb.Classifier)
		_ pgxdb.Option = pgxdb.RollbackTimeout(time.Second)
		_ pgxdb.Option = pgxdb.LockTimeout(time.Second)
		_ pgxdb.Option = pgxdb.StatementTimeout(time.Second)
	)
	txOnly := map[string]pgxdb.TxOption{
		"ReadOnly":         pgxdb.ReadOnly(),
		"Isolation":        pgxdb.Isolation(pgx.Serializable),
		"Deferrable":       pgxdb.Deferrable(),
		"CockroachRestart": pgxdb.CockroachRestart(),
	}
	for name, o := range txOnly {
		if _, ok := o.(pgxdb.SavepointOption); ok {
			t.Errorf("%s is a SavepointOption; want a transaction-only option", name)
		}
	}
}
