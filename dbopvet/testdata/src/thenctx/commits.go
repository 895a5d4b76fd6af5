package thenctx

// The then-ctx check reports work run with another context only when it
// is known to commit a transaction that writes; the cases below, from a
// review, run work that commits nothing Then could count, or that the
// analyzer does not see write: silent.

import (
	"context"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
)

// A read-only transaction commits nothing Then counts.
func readProfile(u User) dbop.Op[string] {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (string, error) {
		var s string
		return s, tx.QueryRow(ctx, "SELECT name FROM profiles WHERE id = $1", u.ID).Scan(&s)
	}, pgxdb.ReadOnly())
}

// An Op that is not a transaction at all (a cache or HTTP call).
func fromCache(u User) dbop.Op[string] {
	return dbop.Op[string](func(ctx context.Context) (string, error) { return "", nil })
}

// A step with a detached context for a read-only transaction.
func ReadOnlyStep(ctx context.Context, id int64) error {
	_, err := dbop.Then(getUser(id), func(_ context.Context, u User) (string, error) {
		return readProfile(u).Run(context.WithoutCancel(ctx))
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// A step running a non-transactional Op with a background context.
func CacheStep(ctx context.Context, id int64) error {
	_, err := dbop.Then(getUser(id), func(_ context.Context, u User) (string, error) {
		return fromCache(u).Run(context.Background())
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// A Then with no retry anywhere, running a read-only transaction.
func NoRetry(ctx context.Context, id int64) error {
	_, err := dbop.Then(getUser(id), func(_ context.Context, u User) (string, error) {
		return readProfile(u).Run(ctx)
	}).Run(ctx)
	return err
}

// A writing function in a transaction made read-only by an option held in
// a variable: the same.
func readOnlyOption(ctx context.Context, id int64) (Order, error) {
	ro := pgxdb.ReadOnly()
	return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		return pgxdb.InTx(pool, insertOrder, ro).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// An InTx whose function the analyzer does not see write (a SELECT), and
// one whose function comes from a parameter.
func notSeenWriting(ctx context.Context, id int64, fn func(context.Context, pgx.Tx) (Order, error)) (Order, error) { // want notSeenWriting:"txFunc\\(param 2: tx 1 ctx 0 writes\\)"
	return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		if _, err := getUser(u.ID).Run(ctx); err != nil {
			return Order{}, err
		}
		return pgxdb.InTx(pool, fn).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// An operation from a parameter, and one a function builds in more than a
// return: the analyzer cannot see what they run.
func orderOf(u User, fast bool) dbop.Op[Order] {
	if fast {
		return createOrder(u)
	}
	return createOrder(u).With(dbop.WithTimeout(time.Second))
}

func unseen(ctx context.Context, id int64, op dbop.Op[Order]) (Order, error) {
	return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		if _, err := op.Run(ctx); err != nil {
			return Order{}, err
		}
		return orderOf(u, true).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A savepoint scope, or a decorator the analyzer cannot see into, in the
// With list: the transaction may be one the caller owns.
func savepointOrUnknown(ctx context.Context, tx pgx.Tx, d dbop.Decorator, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		if _, err := createOrder(u).With(pgxdb.InSavepoint(tx)).Run(ctx); err != nil {
			return Order{}, err
		}
		return createOrder(u).With(d).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A wrapper of InTx called with a function that does not write.
func readsThroughWrapper(ctx context.Context, s *Store, id int64) error {
	_, err := dbop.Then(getUser(id), func(_ context.Context, u User) (int, error) {
		return 0, s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT 1 FROM users WHERE id = $1", u.ID).Scan(new(int))
		})
	}).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// Work known to write, with no retry in sight: reported, and the message
// says what a retry would do, not that there is one.
func noRetryWrites(ctx context.Context, id int64) error {
	_, err := dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		return pgxdb.InTx(pool, insertOrder).With(dbop.WithTimeout(time.Second)).Run(ctx) // want `^this step of dbop.Then runs pgxdb.InTx with ctx, not with the context Then handed it \(the parameter is _\): Then counts the transactions a step commits through its context, and a retry around this Then, if one is added, would run this committed step again; name the parameter and pass it$`
	}).Run(ctx)
	return err
}
