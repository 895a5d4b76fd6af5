// Package sharedsettings holds the cases of the shared-settings check: a
// function run by a pgxdb InTx or Do given pgxdb.ShareCommits(), whose
// transaction the attempts of other operations share, that changes the
// transaction's settings.
package sharedsettings

import (
	"context"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// --- true positives ---------------------------------------------------

func setLocal(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '100ms'"); err != nil { // want `^tx.Exec runs SET LOCAL lock_timeout in the transaction pgxdb.Do shares with other operations' attempts \(pgxdb.ShareCommits\(\)\): unless this attempt is rolled back, it stays in force for the attempts that run after it in the same transaction; set the limit with pgxdb.LockTimeout\(d\) among the operation's options instead, which holds for every attempt that shares the transaction, or drop pgxdb.ShareCommits\(\) from this operation$`
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - 1 WHERE id = 1")
		return err
	}, pgxdb.ShareCommits()).Run(ctx)
	return err
}

func setConfigLocal(ctx context.Context, pool *pgxpool.Pool, user string) (int64, error) {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		var ok string
		if err := tx.QueryRow(ctx, "SELECT set_config('app.user', $1, true)", user).Scan(&ok); err != nil { // want `^tx.QueryRow runs set_config\('app.user', …, true\) in the transaction pgxdb.InTx shares with other operations' attempts \(pgxdb.ShareCommits\(\)\): unless this attempt is rolled back, it stays in force for the attempts that run after it in the same transaction; drop pgxdb.ShareCommits\(\) from this operation$`
			return 0, err
		}
		var n int64
		err := tx.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)
		return n, err
	}, pgxdb.Isolation(pgx.Serializable), pgxdb.ShareCommits()).Run(ctx)
}

func setConstraints(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil { // want `^tx.Exec runs SET CONSTRAINTS in the transaction pgxdb.Do shares .*; drop pgxdb.ShareCommits\(\) from this operation$`
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO children (parent) VALUES (1)")
		return err
	}, pgxdb.ShareCommits()).Run(ctx)
	return err
}

func setTransaction(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "set transaction isolation level serializable") // want `^tx.Exec runs SET TRANSACTION in the transaction pgxdb.Do shares .*; set the level with pgxdb.Isolation\(level\) among the operation's options instead, or drop pgxdb.ShareCommits\(\) from this operation$`
		return err
	}, pgxdb.ShareCommits()).Run(ctx)
	return err
}

// The option through a variable assigned once, the statement after
// another in the same text, and a comment before it.
func optionVariable(ctx context.Context, pool *pgxpool.Pool) error {
	share := pgxdb.ShareCommits()
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE t SET note = 'a;b'; /* why */ set local statement_timeout to 500") // want `^tx.Exec runs SET LOCAL statement_timeout in the transaction pgxdb.Do shares .*; set the limit with pgxdb.StatementTimeout\(d\) among`
		return err
	}, share).Run(ctx)
	return err
}

// A named function, and set_config with true as a string cast to boolean.
func setUp(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SELECT pg_catalog.set_config('lock_timeout', '1s', 'on'::boolean)") // want `^tx.Exec runs set_config\('lock_timeout', …, true\) in the transaction pgxdb.Do shares .*pgxdb.LockTimeout\(d\)`
	return err
}

func namedFunction(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, setUp, pgxdb.ShareCommits()).Run(ctx)
	return err
}

// A step run inside the shared function, on its transaction.
func inStep(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			tag, err := tx.Exec(ctx, "SET LOCAL search_path = app") // want `^tx.Exec runs SET LOCAL search_path in the transaction pgxdb.Do shares`
			return tag.RowsAffected(), err
		})
		_, err := step.With(pgxdb.InSavepoint(tx)).Run(ctx)
		return err
	}, pgxdb.ShareCommits()).Run(ctx)
	return err
}

// --- true negatives ---------------------------------------------------

// The same statements, in a transaction of its own.
func notShared(ctx context.Context, pool *pgxpool.Pool, user string) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '100ms'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('app.user', $1, true)", user); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
		return err
	}, pgxdb.Isolation(pgx.Serializable)).Run(ctx)
	return err
}

// What changes the session, or no setting of the transaction.
func notLocal(ctx context.Context, pool *pgxpool.Pool, local bool, query string) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		for _, q := range []string{
			"SELECT set_config('app.user', 'ann', false)",
			"SET lock_timeout = '100ms'",
			"SET SESSION statement_timeout = 0",
			"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('app.user', 'ann', false)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('app.user', 'ann', $1)", local); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT 'set_config(''a'', ''b'', true)'; -- SET LOCAL a = 1"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO log (line) VALUES ($$SET LOCAL a = 1$$)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE t SET local = 1, my_set_config = true"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, query) // not a constant
		return err
	}, pgxdb.ShareCommits()).Run(ctx)
	return err
}

// A SET LOCAL outside the shared function: on a transaction begun by
// hand, and in the function of another, unshared scope.
func outsideShared(ctx context.Context, pool *pgxpool.Pool) error {
	own, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer own.Rollback(ctx)
	if _, err := own.Exec(ctx, "SET LOCAL lock_timeout = '1s'"); err != nil {
		return err
	}
	if _, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE t SET n = n + 1")
		return err
	}, pgxdb.ShareCommits()).Run(ctx); err != nil {
		return err
	}
	if _, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '1s'")
		return err
	}, pgxdb.LockTimeout(0)).Run(ctx); err != nil {
		return err
	}
	return own.Commit(ctx)
}

// Options given as a slice are not looked into.
func optionSlice(ctx context.Context, pool *pgxpool.Pool) error {
	opts := []pgxdb.TxOption{pgxdb.ShareCommits()}
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '1s'")
		return err
	}, opts...).Run(ctx)
	return err
}
