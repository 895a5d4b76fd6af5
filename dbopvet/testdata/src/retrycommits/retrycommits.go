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

// debit, credit, apply and save, at the end of the file, write; read only
// reads. retry-commits counts a transaction as one that commits writes
// only when it sees its function write: a statement whose text begins
// with INSERT, UPDATE or DELETE, or a GORM Create, Save, Update… or
// Delete.

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
	if _, err := scopes.InTx(begin, debit, scopes.ReadOnly()).Run(ctx); err != nil {
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
		if _, err := pgxdb.InTx(pool, debit, pgxdb.ReadOnly()).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := pgxdb.InTx(pool, debit, pgxdb.Isolation(pgx.Serializable), ro).Run(ctx); err != nil {
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
		if _, err := pgxdb.InTx(pool, debit, opts...).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := pgxdb.InTx(pool, debit, opts[0]).Run(ctx); err != nil {
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

// --- after review: true positives ----------------------------------------

// A repository whose methods each run a transaction of their own that
// writes, and return its error; and its wrapper of pgxdb.Do.
type Repo struct{ pool *pgxpool.Pool }

func (r *Repo) Reserve(ctx context.Context, id int64) error { // want Reserve:"writes" Reserve:"commitsTx"
	_, err := pgxdb.Do(r.pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE stock SET n = n - 1 WHERE id = $1", id)
		return err
	}).Run(ctx)
	return err
}

func (r *Repo) Ship(ctx context.Context, id int64) error { // want Ship:"writes" Ship:"commitsTx"
	if err := r.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO shipments (order_id) VALUES ($1)", id)
		return err
	}); err != nil {
		return err
	}
	return nil
}

func (r *Repo) inTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error { // want inTx:"txFunc\\(param 1: tx 1 ctx 0 writes\\)"
	_, err := pgxdb.Do(r.pool, fn).Run(ctx)
	return err
}

func repositoryMethods(ctx context.Context, r *Repo, ids []int64) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		if err := r.Reserve(ctx, 1); err != nil {
			return 0, err
		}
		return 0, r.Ship(ctx, 1) // want `r.Reserve \(line \d+\) commits before this r.Ship runs, under dbop.WithRetry`
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	if err != nil {
		return err
	}
	_, err = dbop.Op[int](func(ctx context.Context) (int, error) {
		for _, id := range ids {
			if err := r.Reserve(ctx, id); err != nil { // want `r.Reserve runs in the loop over ids`
				return 0, err
			}
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// A wrapper method is named as it is called.
func wrapperMethod(ctx context.Context, r *Repo) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		if err := r.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error { _, err := debit(ctx, tx); return err }); err != nil {
			return 0, err
		}
		err := r.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error { _, err := credit(ctx, tx); return err }) // want `r.inTx \(line \d+\) commits before this r.inTx runs`
		return 0, errors.Join(errors.New("credit"), err)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// Loops left on a cancelled context or on a count: they go on after an
// iteration that committed.
func loopsWithOtherExits(ctx context.Context, batches [][]int64) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		for range batches {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			default:
			}
			if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil { // want `pgxdb.InTx runs in the loop over batches`
				return 0, err
			}
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	if err != nil {
		return err
	}
	_, err = dbop.Op[int](func(ctx context.Context) (int, error) {
		for {
			n, err := pgxdb.InTx(pool, debit).Run(ctx) // want `pgxdb.InTx runs in the for loop`
			if err != nil {
				return 0, err
			}
			if n == 0 {
				break
			}
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// case err == nil of a tagless switch is the success path.
func successCase(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := pgxdb.InTx(pool, debit).Run(ctx)
		switch {
		case err == nil:
			return pgxdb.InTx(pool, credit).Run(ctx) // want `pgxdb.InTx \(line \d+\) commits before this pgxdb.InTx runs`
		default:
			return 0, err
		}
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// --- after review: negatives ----------------------------------------------

// The clauses of a tagless switch after case err == nil, and case
// err != nil, run when the first failed.
func failureCases(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := pgxdb.InTx(pool, debit).Run(ctx)
		switch {
		case err == nil:
			return 1, nil
		case errors.Is(err, context.Canceled):
			return 0, err
		default:
			return pgxdb.InTx(pool, credit).Run(ctx)
		}
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

func failureCase(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := pgxdb.InTx(pool, debit).Run(ctx)
		switch {
		case err != nil:
			return pgxdb.InTx(pool, credit).Run(ctx)
		}
		return 1, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// The later transaction's error never reaches the retry: handled and not
// returned, or discarded.
func errorNotReturned(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := pgxdb.InTx(pool, credit).Run(ctx); err != nil {
			logError(err)
		}
		_, _ = sqldb.Do(db, sqldb.Postgres, apply).Run(ctx)
		return 1, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A first transaction whose function only reads, or one the analyzer
// cannot see.
func readsFirst(ctx context.Context) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if _, err := pgxdb.InTx(pool, read).Run(ctx); err != nil {
			return 0, err
		}
		if _, err := pgxdb.InTx(pool, opaque).Run(ctx); err != nil {
			return 0, err
		}
		return pgxdb.InTx(pool, credit).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Loops whose transactions' errors do not reach the retry: logged and
// skipped, or replaced by OrDefault.
func loopsNotReturning(ctx context.Context, ids []int64) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		failed := 0
		for range ids {
			if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
				logError(err)
				failed++
				continue
			}
		}
		return failed, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	if err != nil {
		return err
	}
	_, err = dbop.Op[int](func(ctx context.Context) (int, error) {
		for range ids {
			n, err := pgxdb.InTx(pool, debit).With(dbop.OrDefault(0)).Run(ctx)
			if err != nil {
				return n, err
			}
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// A transaction on the failing iteration's error path, followed by a
// return: it runs at most once.
func markFailed(ctx context.Context, ids []int64) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		for range ids {
			if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil { // want `pgxdb.InTx runs in the loop over ids`
				_, markErr := pgxdb.InTx(pool, credit).Run(ctx)
				return 0, errors.Join(err, markErr)
			}
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// The second runs only when the first failed.
func shortCircuit(ctx context.Context, r *Repo) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if r.Reserve(ctx, 1) == nil || r.Ship(ctx, 1) == nil {
			return 1, nil
		}
		return 0, errors.New("both failed")
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Conditions the analyzer cannot compare, in two ifs.
func byKind(ctx context.Context, kind string) (int, error) {
	return dbop.Op[int](func(ctx context.Context) (int, error) {
		if kind == "debit" {
			if _, err := pgxdb.InTx(pool, debit).Run(ctx); err != nil {
				return 0, err
			}
		}
		if kind == "credit" {
			return pgxdb.InTx(pool, credit).Run(ctx)
		}
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A retry by hand, left when the run succeeded or on a count.
func retryByHandCount(ctx context.Context, r *Repo) error {
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		var err error
		for i := 0; ; i++ {
			if err = r.Reserve(ctx, 1); err == nil || i == 3 {
				break
			}
		}
		return 0, err
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// --- the functions the transactions run ---------------------------------

// The functions the transactions run: those that write, and one that only
// reads. retry-commits counts a transaction as one that commits writes
// only when it sees its function write.
func debit(ctx context.Context, tx pgx.Tx) (int, error) {
	_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - 1 WHERE id = 1")
	return 0, err
}

func credit(ctx context.Context, tx pgx.Tx) (int, error) {
	_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + 1 WHERE id = 2")
	return 0, err
}

func read(ctx context.Context, tx pgx.Tx) (int, error) {
	var n int
	err := tx.QueryRow(ctx, "SELECT balance FROM accounts WHERE id = 1").Scan(&n)
	return n, err
}

func apply(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM holds WHERE expired")
	return err
}

func save(ctx context.Context, tx *gorm.DB) error { return tx.Create(&struct{}{}).Error }

func logError(err error) {}

// opaque is a function the analyzer cannot see.
var opaque func(context.Context, pgx.Tx) (int, error)
