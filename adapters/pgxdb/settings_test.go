package pgxdb_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// Each timeout becomes one SET LOCAL in milliseconds, rounded up.
func TestSettingsSQL(t *testing.T) {
	tests := []struct {
		opts []pgxdb.TxOption
		want string
	}{
		{[]pgxdb.TxOption{pgxdb.LockTimeout(100 * time.Millisecond)}, "SET LOCAL lock_timeout = 100"},
		{[]pgxdb.TxOption{pgxdb.LockTimeout(2 * time.Second)}, "SET LOCAL lock_timeout = 2000"},
		{[]pgxdb.TxOption{pgxdb.LockTimeout(0)}, "SET LOCAL lock_timeout = 0"},
		{[]pgxdb.TxOption{pgxdb.LockTimeout(time.Nanosecond)}, "SET LOCAL lock_timeout = 1"}, // never rounded down to "no limit"
		{[]pgxdb.TxOption{pgxdb.StatementTimeout(1500 * time.Microsecond)}, "SET LOCAL statement_timeout = 2"},
		{[]pgxdb.TxOption{pgxdb.StatementTimeout((1<<31 - 1) * time.Millisecond)}, "SET LOCAL statement_timeout = 2147483647"},
		// Given twice, the last wins, in the place of the first.
		{[]pgxdb.TxOption{pgxdb.LockTimeout(time.Second), pgxdb.StatementTimeout(time.Minute), pgxdb.LockTimeout(2 * time.Second)},
			"SET LOCAL lock_timeout = 2000; SET LOCAL statement_timeout = 60000"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var db fakeDB
			op := pgxdb.InTx(&db, func(context.Context, pgx.Tx) (int, error) { return 1, nil }, tt.opts...)
			if _, err := op.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			checkLog(t, []string{"begin; " + tt.want, "commit"}, db.Log())
		})
	}
}

// The settings travel with each attempt's BEGIN, in one round trip.
func TestInTxAppliesSettingsPerAttempt(t *testing.T) {
	var db fakeDB
	db.FailNext("INSERT a", errDeadlock())
	op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
		_, err := tx.Exec(ctx, "INSERT a")
		return 1, err
	}, pgxdb.Isolation(pgx.Serializable), pgxdb.LockTimeout(time.Second), pgxdb.StatementTimeout(time.Minute))
	if _, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	begin := "begin isolation level serializable; SET LOCAL lock_timeout = 1000; SET LOCAL statement_timeout = 60000"
	checkLog(t, []string{begin, "INSERT a", "rollback", begin, "INSERT a", "commit"}, db.Log())
}

// A failed BEGIN with its SET LOCAL is classified like any error; fn does
// not run.
func TestInTxSettingsFailure(t *testing.T) {
	var db fakeDB
	db.FailNext("begin; SET LOCAL lock_timeout = 1000", safeErr{safe: true})
	var runs int
	op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		return 1, nil
	}, pgxdb.LockTimeout(time.Second))
	if _, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if runs != 1 {
		t.Errorf("fn ran %d times, want 1", runs)
	}
	checkLog(t, []string{"begin; SET LOCAL lock_timeout = 1000", "begin; SET LOCAL lock_timeout = 1000", "commit"}, db.Log())
}

func TestInTxTransactionModes(t *testing.T) {
	var db fakeDB
	op := pgxdb.InTx(&db, func(context.Context, pgx.Tx) (int, error) { return 1, nil },
		pgxdb.Isolation(pgx.Serializable), pgxdb.ReadOnly(), pgxdb.Deferrable())
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{"begin serializable read only deferrable", "commit"}, db.Log())
}

// A panic in fn rolls the transaction back and goes on unchanged.
func TestInTxPanic(t *testing.T) {
	var db fakeDB
	type boom struct{}
	op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
		_, _ = tx.Exec(ctx, "INSERT a")
		panic(boom{})
	}, pgxdb.LockTimeout(time.Second))
	if got := mustPanic(t, func() { _, _ = op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context()) }); got != (boom{}) {
		t.Errorf("panic value = %v, want boom{}", got)
	}
	checkLog(t, []string{"begin; SET LOCAL lock_timeout = 1000", "INSERT a", "rollback"}, db.Log())
}

// least is the set_config call that sets the PostgreSQL parameter name to
// the least of ms and the value in force (0 in force: ms), which the server
// computes.
func least(name, ms string) string {
	return "set_config('" + name + "', CASE WHEN current_setting('" + name + "') = '0' OR (current_setting('" + name + "') || CASE WHEN strpos('0123456789', right(current_setting('" + name + "'), 1)) > 0 THEN 'ms' ELSE '' END)::interval > '" + ms + "ms' THEN '" + ms + "' ELSE current_setting('" + name + "') END, true)"
}

// With a deadline on the context, each attempt's BEGIN lowers
// statement_timeout and lock_timeout to the time left less the margin
// (the smaller of 10 % and 50 ms). A parameter given is SET LOCAL to the
// smaller of the given and the derived value (an explicit 0, "no limit",
// does not win); one not given is set, with set_config in one SELECT, to
// the least of the derived value and the value in force on the server, so
// that a lower default is never raised. Without a deadline nothing is
// added.
func TestInTxDerivesServerLimitsFromTheDeadline(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // 0: no deadline
		opts    []pgxdb.TxOption
		want    string
	}{
		{name: "no deadline", want: "begin"},
		{name: "two seconds", timeout: 2 * time.Second,
			want: "begin; SELECT " + least("statement_timeout", "1950") + ", " + least("lock_timeout", "1950")},
		{name: "200ms keeps 10 percent", timeout: 200 * time.Millisecond,
			want: "begin; SELECT " + least("statement_timeout", "180") + ", " + least("lock_timeout", "180")},
		{name: "a smaller explicit limit wins, a larger one is lowered", timeout: 2 * time.Second,
			opts: []pgxdb.TxOption{pgxdb.LockTimeout(100 * time.Millisecond), pgxdb.StatementTimeout(time.Minute)},
			want: "begin; SET LOCAL lock_timeout = 100; SET LOCAL statement_timeout = 1950"},
		{name: "an explicit 0 is no limit", timeout: 2 * time.Second,
			opts: []pgxdb.TxOption{pgxdb.StatementTimeout(0), pgxdb.Isolation(pgx.RepeatableRead)},
			want: "begin isolation level repeatable read; SET LOCAL statement_timeout = 1950; SELECT " + least("lock_timeout", "1950")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var db fakeDB
				op := pgxdb.InTx(&db, func(context.Context, pgx.Tx) (int, error) { return 1, nil }, tt.opts...)
				ctx := t.Context()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				if _, err := op.Run(ctx); err != nil {
					t.Fatal(err)
				}
				checkLog(t, []string{tt.want, "commit"}, db.Log())
			})
		})
	}
}
