package pgxdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// TestFnThatEndsTheTransactionWithAStatement: fn ends the transaction InTx
// handed it not with tx.Commit or tx.Rollback but with a statement: a
// COMMIT or ROLLBACK sent with tx.Exec or on tx.Conn(), or a transaction
// of its own begun on tx.Conn() (pgx.BeginFunc), whose BEGIN the server
// ignores inside the block and whose COMMIT ends InTx's transaction
// (docs/backends.md §1.21). pgx's Tx does not know: InTx's COMMIT or
// ROLLBACK then finds no transaction (a warning, no error). The statements
// fn ran after that ran in autocommit. What fn ran before may have been
// committed: the outcome is Ambiguous, neither retried after fn's 40001
// (the row would be written once per attempt), nor replaced by a default
// after fn's unique violation, nor reported committed after fn's ROLLBACK.
func TestFnThatEndsTheTransactionWithAStatement(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_ended_by_sql", "id serial PRIMARY KEY")
	retry3 := dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))
	ends := map[string]func(ctx context.Context, tx pgx.Tx) error{
		"tx.Exec COMMIT": func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "COMMIT")
			return err
		},
		"tx.Conn().Exec COMMIT": func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Conn().Exec(ctx, "COMMIT")
			return err
		},
		"pgx.BeginFunc on tx.Conn()": func(ctx context.Context, tx pgx.Tx) error {
			return pgx.BeginFunc(ctx, tx.Conn(), func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "SELECT 1")
				return err
			})
		},
		"tx.Exec ROLLBACK": func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "ROLLBACK")
			return err
		},
	}
	for endName, end := range ends {
		for _, then := range []string{"40001", "40001 under a per-attempt WithTimeout", "23505 under OrDefault", "nil", "nil with ResolveCommit under OrDefault"} {
			t.Run(endName+", then "+then, func(t *testing.T) {
				exec(t, pool, "TRUNCATE pgxdb_ended_by_sql")
				runs, ended := 0, 0
				var opts []pgxdb.TxOption
				if then == "nil with ResolveCommit under OrDefault" {
					opts = append(opts, pgxdb.ResolveCommit())
				}
				op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
					runs++
					if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_ended_by_sql DEFAULT VALUES"); err != nil {
						return err
					}
					if err := end(ctx, tx); err != nil {
						return err
					}
					ended++
					switch then {
					case "40001", "40001 under a per-attempt WithTimeout":
						_, err := tx.Exec(ctx, raise40001)
						return err
					case "23505 under OrDefault":
						_, err := tx.Exec(ctx, "INSERT INTO pgxdb_ended_by_sql (id) VALUES (1), (1)")
						return err
					}
					return nil
				}, opts...)
				with := []dbop.Decorator{retry3}
				switch then {
				case "23505 under OrDefault", "nil with ResolveCommit under OrDefault":
					with = []dbop.Decorator{dbop.OrDefault(struct{}{}), retry3}
				case "40001 under a per-attempt WithTimeout":
					with = []dbop.Decorator{retry3, dbop.WithTimeout(5 * time.Second)}
				}
				_, err := op.With(with...).Run(t.Context())
				rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_ended_by_sql")
				t.Logf("Run: %v; runs %d, rows %d", err, runs, rows)
				if ended == 0 {
					t.Fatalf("fn never ended its transaction (runs %d)", runs)
				}
				if runs != 1 {
					t.Errorf("fn ran %d times (%d rows), want once", runs, rows)
				}
				if dbop.VerdictOf(err) != dbop.Ambiguous || !errors.Is(err, scopes.ErrAmbiguousCommit) {
					t.Errorf("Run: %v (verdict %v), want an ambiguous commit: fn ended the transaction", err, dbop.VerdictOf(err))
				}
			})
		}
	}
}

// TestReadOnlyFnThatCommitsWithAStatementAndWrites: a READ ONLY
// transaction under ResolveCommit, whose fn sends COMMIT with tx.Exec and
// then writes on the connection, in autocommit, and returns. Its id was
// never read: "read only, nothing written" must not resolve the outcome,
// and the write must not be applied again.
func TestReadOnlyFnThatCommitsWithAStatementAndWrites(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_ended_by_sql_ro", "id serial PRIMARY KEY")
	runs := 0
	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		if _, err := tx.Exec(ctx, "COMMIT"); err != nil { //dbopvet:ignore the misuse under test: fn commits with a statement
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO pgxdb_ended_by_sql_ro DEFAULT VALUES")
		return err
	}, pgxdb.ReadOnly(), pgxdb.ResolveCommit())
	_, err := op.With(dbop.OrDefault(struct{}{}), dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(t.Context())
	rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_ended_by_sql_ro")
	t.Logf("Run: %v; runs %d, rows %d", err, runs, rows)
	if rows == 0 {
		t.Fatal("fn's write after its COMMIT was not applied")
	}
	if runs != 1 || rows != 1 || dbop.VerdictOf(err) != dbop.Ambiguous {
		t.Errorf("fn ran %d times, %d rows, Run: %v (verdict %v); want once, 1 row, ambiguous", runs, rows, err, dbop.VerdictOf(err))
	}
}

// TestSavepointStepThatCommitsWithAStatement: a retried savepoint step
// sends COMMIT with tx.Exec, ending InTx's transaction, then fails with a
// 40001 in autocommit. The step's ROLLBACK TO SAVEPOINT finds no
// transaction; neither the step's retry nor the one around InTx may run
// the committed INSERT again, and OrDefault must not replace the outcome.
func TestSavepointStepThatCommitsWithAStatement(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_ended_by_sql_sp", "id serial PRIMARY KEY")
	runs := 0
	op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		step := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
			runs++
			if _, err := tx.Exec(ctx, "INSERT INTO pgxdb_ended_by_sql_sp DEFAULT VALUES"); err != nil {
				return struct{}{}, err
			}
			if _, err := tx.Exec(ctx, "COMMIT"); err != nil { //dbopvet:ignore the misuse under test: a step commits with a statement
				return struct{}{}, err
			}
			_, err := tx.Exec(ctx, raise40001)
			return struct{}{}, err
		})
		_, err := step.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), pgxdb.InSavepoint(tx)).Run(ctx)
		return err
	})
	_, err := op.With(dbop.OrDefault(struct{}{}), dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(t.Context())
	rows := queryInt(t, pool, "SELECT count(*) FROM pgxdb_ended_by_sql_sp")
	t.Logf("Run: %v; runs %d, rows %d", err, runs, rows)
	if runs == 0 {
		t.Fatal("the step never ran")
	}
	if runs != 1 || rows != 1 || dbop.VerdictOf(err) != dbop.Ambiguous {
		t.Errorf("the step ran %d times, %d rows, Run: %v (verdict %v); want once, 1 row, ambiguous", runs, rows, err, dbop.VerdictOf(err))
	}
}
