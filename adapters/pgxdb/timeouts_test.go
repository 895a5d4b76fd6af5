package pgxdb_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// session returns the backend pid and the session's lock_timeout and
// statement_timeout on the pool's only connection.
func session(t *testing.T, pool *pgxpool.Pool) (pid uint32, lockTimeout, statementTimeout string) {
	t.Helper()
	err := pool.QueryRow(t.Context(),
		"SELECT pg_backend_pid(), current_setting('lock_timeout'), current_setting('statement_timeout')").
		Scan(&pid, &lockTimeout, &statementTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return pid, lockTimeout, statementTimeout
}

// The per-attempt server limits of InTx fire, the errors they raise are
// classified as statement-level, and nothing is left on the pooled
// connection afterwards: the pool has one connection, and SHOW on it gives
// the values it had before.
func TestPerAttemptTimeoutsFireAndLeaveNothingBehind(t *testing.T) {
	pool := newPool(t, 1)
	other := newPool(t, 1)
	createTable(t, other, "pgxdb_timeouts", "id int PRIMARY KEY",
		"INSERT INTO pgxdb_timeouts VALUES (1)")
	pid0, lock0, stmt0 := session(t, pool)

	tests := []struct {
		name    string
		setting pgxdb.Option
		param   string
		sql     string
		code    string
		message string
		hold    bool // another connection holds row 1
	}{
		{
			name:    "lock_timeout",
			setting: pgxdb.LockTimeout(100 * time.Millisecond),
			param:   "lock_timeout",
			sql:     "SELECT id FROM pgxdb_timeouts WHERE id = 1 FOR UPDATE",
			code:    "55P03",
			message: "canceling statement due to lock timeout",
			hold:    true,
		},
		{
			name:    "statement_timeout",
			setting: pgxdb.StatementTimeout(100 * time.Millisecond),
			param:   "statement_timeout",
			sql:     "SELECT pg_sleep(10)",
			code:    "57014",
			message: "canceling statement due to statement timeout",
		},
	}
	for _, tt := range tests {
		t.Run("InTx "+tt.name, func(t *testing.T) {
			if tt.hold {
				holder, err := other.Begin(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer holder.Rollback(context.Background())
				exec(t, holder, "SELECT id FROM pgxdb_timeouts WHERE id = 1 FOR UPDATE")
			}
			var inside string
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				if err := tx.QueryRow(ctx, "SHOW "+tt.param).Scan(&inside); err != nil {
					return 0, err
				}
				_, err := tx.Exec(ctx, tt.sql)
				return 0, err
			}, tt.setting)

			start := time.Now()
			_, err := op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2))).Run(t.Context())
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("two attempts took %v: the limit did not fire", elapsed)
			}
			if inside != "100ms" {
				t.Errorf("inside the transaction the setting is %q, want 100ms", inside)
			}
			pgErr, ok := errors.AsType[*pgconn.PgError](err)
			if !ok || pgErr.Code != tt.code || pgErr.Message != tt.message {
				t.Fatalf("error = %v, want SQLSTATE %s %q", err, tt.code, tt.message)
			}
			if v := dbop.VerdictOf(err); v != dbop.RetryStatement {
				t.Errorf("verdict = %v, want retry-statement", v)
			}
			if n, ok := attempts(err); !ok || n != 2 {
				t.Errorf("attempts = %d, %t; want 2: a statement-level error is retried", n, ok)
			}

			pid, lock, stmt := session(t, pool)
			if pid != pid0 {
				t.Fatalf("backend %d, want the pool's only connection %d", pid, pid0)
			}
			if lock != lock0 || stmt != stmt0 {
				t.Errorf("after the transaction lock_timeout = %q, statement_timeout = %q; want %q, %q as before",
					lock, stmt, lock0, stmt0)
			}
		})
	}
	t.Run("InSavepoint", func(t *testing.T) { testTimeoutsAroundSavepointStep(t, pool) })
}

// testTimeoutsAroundSavepointStep checks the timeouts of InSavepoint: the
// statement_timeout fires inside the step, the savepoint retry runs the
// step again, and afterwards the transaction has its own setting back —
// after a successful attempt because InSavepoint restores it, after a
// failed one because ROLLBACK TO SAVEPOINT undoes SET LOCAL
// (docs/backends.md §1.4). After the transaction the pooled connection has
// its session values.
func testTimeoutsAroundSavepointStep(t *testing.T, pool *pgxpool.Pool) {
	pid0, lock0, stmt0 := session(t, pool)

	tests := []struct {
		name     string
		attempts int
		wantErr  bool
	}{
		{name: "retried and restored", attempts: 2},
		{name: "failed and rolled back", attempts: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var during []string
			var after string
			var stepErr error
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				runs := 0
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					runs++
					var s string
					if err := tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&s); err != nil {
						return 0, err
					}
					during = append(during, s)
					if runs == 1 {
						_, err := tx.Exec(ctx, "SELECT pg_sleep(10)")
						return 0, err
					}
					return 1, nil
				})
				_, stepErr = step.With(
					dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(tt.attempts)),
					pgxdb.InSavepoint(tx, pgxdb.StatementTimeout(100*time.Millisecond), pgxdb.LockTimeout(time.Second)),
				).Run(ctx)
				// The transaction goes on either way: the savepoint kept it usable.
				err := tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&after)
				return 0, err
			}, pgxdb.StatementTimeout(5*time.Second))
			if _, err := op.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			if (stepErr != nil) != tt.wantErr {
				t.Fatalf("step error = %v, want error: %t", stepErr, tt.wantErr)
			}
			if stepErr != nil {
				if pgCode(stepErr) != "57014" || dbop.VerdictOf(stepErr) != dbop.RetryStatement {
					t.Errorf("step error = %v (verdict %v), want 57014, retry-statement", stepErr, dbop.VerdictOf(stepErr))
				}
			}
			if want := []string{"100ms", "100ms"}[:tt.attempts]; !slices.Equal(during, want) {
				t.Errorf("statement_timeout during the step's attempts: %v, want %v", during, want)
			}
			if after != "5s" {
				t.Errorf("statement_timeout after the step = %q, want the transaction's 5s", after)
			}
			pid, lock, stmt := session(t, pool)
			if pid != pid0 || lock != lock0 || stmt != stmt0 {
				t.Errorf("session after the transaction: backend %d, lock_timeout %q, statement_timeout %q; want %d, %q, %q",
					pid, lock, stmt, pid0, lock0, stmt0)
			}
		})
	}
}
