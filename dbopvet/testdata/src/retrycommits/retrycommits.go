// Package retrycommits holds the cases of the retry-commits check: an
// operation of the user's own, under a retry not marked Idempotent, whose
// function runs a transaction after another committed, or one in a loop.
package retrycommits

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

var (
	backoff = dbop.Exponential(time.Millisecond, time.Second)
	pool    *pgxpool.Pool
	db      *sql.DB
	gdb     *gorm.DB
	begin   scopes.BeginFunc[pgx.Tx]
)

func debit(ctx context.Context, tx pgx.Tx) (int, error)  { return 0, nil }
func credit(ctx context.Context, tx pgx.Tx) (int, error) { return 0, nil }
func read(ctx context.Context, tx pgx.Tx) (int, error)   { return 0, nil }
func apply(ctx context.Context, tx *sql.Tx) error        { return nil }
func save(ctx context.Context, tx *gorm.DB) error        { return nil }

// --- true positives ---------------------------------------------------

func twoTransactions(ctx context.Context) (int, error) {
	op := dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).Run(ctx) // want `pgxdb.InTx \(line 40\) commits before this pgxdb.InTx runs, under dbop.WithRetry \(line 44\) without dbop.Idempotent\(\): if this one fails with an error the retry acts on, the retry runs the function again and the committed transaction is applied twice; build the operation with dbop.Then \(its retry refuses to run a committed step again\), put the retry on each transaction, or make the transactions idempotent and mark the retry dbop.Idempotent\(\)`
	}).With(dbop.WithRetry(dbop.Exponential(time.Millisecond, time.Second)))
	return op.Run(ctx)
}

func inALoop(ctx context.Context, accounts []int64) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		for range accounts {
			if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil { // want `pgxdb.InTx runs in the loop over accounts \(line 50\), under dbop.WithRetry \(line 56\) without dbop.Idempotent\(\): if the transaction of a later iteration fails with an error the retry acts on, the retry runs the function again and the transactions of the earlier iterations, committed, are applied twice; build the operation with dbop.Then or dbop.All \(their retry refuses to run a committed step again\), put the retry on each transaction, or make the transactions idempotent and mark the retry dbop.Idempotent\(\)`
				return 0, err
			}
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff, dbop.MaxAttempts(5))).Run(ctx)
	return err
}

func inAForLoop(ctx context.Context, n int) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		for i := 0; i < n; i++ {
			_, err := sqldb.Do(db, sqldb.Postgres, apply).Run(ctx) // want `sqldb.Do runs in the for loop \(line 62\)`
			if err != nil {
				return 0, err
			}
			if i%2 == 0 {
				continue
			}
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// The With list through a Chain in a variable; the scopes in variables,
// one with a With of its own.
var resilient = dbop.Chain(dbop.WithTimeout(time.Second), dbop.WithRetry(backoff))

func throughVariables(ctx context.Context) error {
	first := sqldb.Do(db, sqldb.Postgres, apply, sqldb.Isolation(sql.LevelSerializable))
	second := gormdb.Do(gdb, save).With(dbop.WithTimeout(time.Second))
	op := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
		if _, err := first.Run(ctx); err != nil {
			return struct{}{}, err
		}
		return second.Run(ctx) // want `sqldb.Do \(line 84\) commits before this gormdb.Do runs, under dbop.WithRetry in resilient \(line 89\)`
	})
	_, err := op.With(resilient).Run(ctx)
	return err
}

// A named function; a read-only transaction first, which commits nothing,
// then two that write.
func transfer(ctx context.Context) (int, error) {
	if _, err := scopes.InTx(begin, read, scopes.ReadOnly()).Run(ctx); err != nil {
		return 0, err
	}
	if _, err := scopes.InTx(begin, debit).Run(ctx); err != nil {
		return 0, err
	}
	return scopes.InTx(begin, credit).Run(ctx) // want `scopes.InTx \(line 99\) commits before this scopes.InTx runs, under dbop.WithRetry \(line 106\)`
}

func namedFunction(ctx context.Context) (int, error) {
	return dbop.Op[int](transfer).With(dbop.WithRetry(backoff)).Run(ctx)
}

// On the success path of the first.
func onSuccess(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err == nil {
			return pgxdb.InTx(pool, credit).Run(ctx) // want `pgxdb.InTx \(line 112\) commits before this pgxdb.InTx runs`
		}
		return 0, errors.New("no")
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Silenced, with a reason.
func silenced(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		//dbopvet:ignore credit checks the debit's id and does nothing the second time
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// --- negatives ----------------------------------------------------------

// A read-only transaction first: it committed nothing.
func readOnlyFirst(ctx context.Context) (int, error) {
	ro := pgxdb.ReadOnly()
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, read, pgxdb.ReadOnly()).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := pgxdb.InTx(pool, read, pgxdb.Isolation(pgx.Serializable), ro).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := gormdb.Do(gdb, save, gormdb.ReadOnly()).With(dbop.WithTimeout(time.Second)).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := sqldb.Do(db, sqldb.Postgres, apply, sqldb.ReadOnly()).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Options the analyzer cannot see on the first: one may be ReadOnly.
func unknownTxOptions(ctx context.Context, opts ...pgxdb.TxOption) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, read, opts...).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := pgxdb.InTx(pool, read, opts[0]).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// The retry is marked Idempotent.
func idempotent(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff, dbop.Idempotent())).Run(ctx)
}

// Retry options the analyzer cannot see: one of them may be Idempotent.
func unknownRetryOptions(ctx context.Context, opts ...dbop.RetryOption) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff, opts...)).Run(ctx)
}

// No retry.
func noRetry(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithTimeout(time.Second)).Run(ctx)
}

// One transaction, then plain code.
func oneTransaction(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		n, err := pgxdb.InTx(pool, debit).Run(ctx)
		if err != nil {
			return 0, err
		}
		var total int
		err = pool.QueryRow(ctx, "SELECT sum(n) FROM t").Scan(&total)
		return n + total, err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// dbop.Then: the retry refuses to run a step that committed again.
func then(ctx context.Context) (int, error) {
	return dbop.Then(pgxdb.InTx(pool, debit), func(ctx context.Context, _ int) (int, error) {
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Branches that exclude each other.
func branches(ctx context.Context, which int) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if which == 0 {
			_, _ = pgxdb.InTx(pool, debit).Run(ctx)
		} else if which == 1 {
			_, _ = pgxdb.InTx(pool, credit).Run(ctx)
		} else {
			_, _ = pgxdb.InTx(pool, credit).Run(ctx)
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

func cases(ctx context.Context, which int) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		switch which {
		case 1:
			_, _ = pgxdb.InTx(pool, debit).Run(ctx)
		case 2:
			_, _ = pgxdb.InTx(pool, credit).Run(ctx)
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// The function returns after the first transaction.
func returns(ctx context.Context, which int) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if which == 3 {
			n, err := pgxdb.InTx(pool, debit).Run(ctx)
			return n, err
		}
		if which == 4 {
			return pgxdb.InTx(pool, debit).Run(ctx)
		}
		if n, err := pgxdb.InTx(pool, debit).Run(ctx); err == nil {
			return n, nil
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// The later transaction runs when the first failed: nothing committed.
func compensates(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		n, err := pgxdb.InTx(pool, debit).Run(ctx)
		if err != nil {
			_, _ = pgxdb.InTx(pool, credit).Run(ctx)
			return 0, err
		}
		return n, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A loop that stops at the first transaction that succeeds: a retry
// written by hand.
func retryByHand(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		var err error
		for i := 0; i < 3; i++ {
			var n int
			if n, err = pgxdb.InTx(pool, debit).Run(ctx); err == nil {
				return n, nil
			}
		}
		for {
			if _, err = pgxdb.InTx(pool, credit).Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
				break
			}
		}
		return 0, err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Transactions run elsewhere than in the function's own path: deferred,
// on another goroutine, in a function literal, inside the function of
// another transaction.
func elsewhere(ctx context.Context, run func(func() error)) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		defer pgxdb.InTx(pool, debit).Run(ctx)
		go pgxdb.InTx(pool, debit).Run(ctx)
		run(func() error {
			_, err := pgxdb.InTx(pool, debit).Run(ctx)
			return err
		})
		return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
				return 0, err
			}
			return pgxdb.InTx(pool, credit).Run(ctx)
		}).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// The later transaction's error does not reach the retry.
func defaulted(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).With(dbop.OrDefault(0)).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A goto: the order of the source is not the order of the runs.
func withGoto(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		n := 0
	again:
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		n++
		if n < 2 {
			goto again
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}
