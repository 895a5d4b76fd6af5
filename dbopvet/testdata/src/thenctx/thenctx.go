// Package thenctx holds the cases of the then-ctx check: a step of
// dbop.Then, a function literal, that ignores the context Then hands it
// and runs its work with another one, which Then cannot count.
package thenctx

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

type (
	User  struct{ ID int64 }
	Order struct{ ID int64 }
)

var (
	backoff = dbop.Exponential(time.Millisecond, time.Second)
	pool    *pgxpool.Pool
)

func getUser(id int64) dbop.Op[User] {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (User, error) {
		return User{ID: id}, tx.QueryRow(ctx, "SELECT id FROM users WHERE id = $1", id).Scan(&id)
	})
}

func createOrder(u User) dbop.Op[Order] {
	return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (Order, error) {
		_, err := tx.Exec(ctx, "INSERT INTO orders (user_id) VALUES ($1)", u.ID)
		return Order{}, err
	})
}

func insertOrder(ctx context.Context, tx pgx.Tx) (Order, error) {
	_, err := tx.Exec(ctx, "INSERT INTO orders (user_id) VALUES (1)")
	return Order{}, err
}

type Handler struct{}

// --- true positives ---------------------------------------------------

// The shape found live: the handler's ctx, not the Then's.
func (h *Handler) Checkout(ctx context.Context, id int64) error { // want Checkout:"writes"
	op := dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		return createOrder(u).Run(ctx) // want `^this step of dbop.Then runs createOrder\(u\) with ctx, not with the context Then handed it \(the parameter is _\): Then counts the transactions a step commits through its context, and a retry around the Then \(line 55\) would run this committed step again; name the parameter and pass it$`
	})
	_, err := op.With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// A parameter named, but never used: the body runs with the outer ctx.
func unused(ctx context.Context, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(stepCtx context.Context, u User) (Order, error) {
		return createOrder(u).Run(ctx) // want `^this step of dbop.Then runs createOrder\(u\) with ctx, not with the context Then handed it \(the parameter stepCtx is never used\): Then counts the transactions a step commits through its context, and a retry around the Then \(line 63\) would run this committed step again; pass stepCtx$`
	}).With(dbop.WithRetry(backoff, dbop.MaxAttempts(3))).Run(ctx)
}

// An unnamed parameter, context.Background(), an InTx run right there,
// and no retry in sight: the message names none.
func unnamed(id int64) dbop.Op[Order] {
	return dbop.Then(getUser(id), func(context.Context, User) (Order, error) {
		return pgxdb.InTx(pool, insertOrder).Run(context.Background()) // want `^this step of dbop.Then runs pgxdb.InTx with context.Background\(\), not with the context Then handed it \(the parameter is unnamed\): Then counts the transactions a step commits through its context, and a retry around this Then, if one is added, would run this committed step again; name the parameter and pass it$`
	})
}

// context.TODO(), through a With list and a variable; the retry through a
// variable too.
func todo(ctx context.Context, id int64) error {
	step := dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		create := createOrder(u).With(dbop.WithTimeout(time.Second))
		return create.Run(context.TODO()) // want `runs create with context.TODO\(\), .* \(the parameter is _\).*Then \(line 81\) would run`
	})
	retried := step.With(dbop.WithRetry(backoff))
	_, err := retried.Run(ctx)
	return err
}

// A test's context.
func TestCheckout(t *testing.T) { // want TestCheckout:"writes"
	op := dbop.Then(getUser(1), func(_ context.Context, u User) (Order, error) {
		return createOrder(u).Run(t.Context()) // want `runs createOrder\(u\) with t.Context\(\)`
	})
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A wrapper of InTx, and a repository method that runs a transaction
// that writes, called with the outer context.
type Store struct{ pool *pgxpool.Pool }

func (s *Store) inTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error { // want inTx:"txFunc\\(param 1: tx 1 ctx 0 writes\\)"
	_, err := pgxdb.Do(s.pool, fn).Run(ctx)
	return err
}

func (s *Store) Reserve(ctx context.Context, id int64) error { // want Reserve:"writes" Reserve:"commitsTx"
	_, err := pgxdb.InTx(s.pool, insertOrder).Run(ctx)
	return err
}

func wrappers(ctx context.Context, s *Store, id int64) error {
	op := dbop.Then(getUser(id), func(_ context.Context, u User) (int, error) {
		if err := s.Reserve(ctx, u.ID); err != nil { // want `runs s.Reserve with ctx, .* \(the parameter is _\)`
			return 0, err
		}
		return 0, s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error { // want `runs s.inTx with ctx, .* \(the parameter is _\)`
			_, err := tx.Exec(ctx, "UPDATE users SET orders = orders + 1 WHERE id = $1", u.ID)
			return err
		})
	})
	_, err := op.With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// A deferred run is part of the step.
func deferred(ctx context.Context, id int64) error {
	_, err := dbop.Then(getUser(id), func(_ context.Context, u User) (int, error) {
		defer createOrder(u).Run(ctx) // want `runs createOrder\(u\) with ctx`
		return 0, nil
	}).Run(ctx)
	return err
}

// --- negatives --------------------------------------------------------

// The context Then hands the step, named and used.
func used(ctx context.Context, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(ctx context.Context, u User) (Order, error) {
		return createOrder(u).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Used at all, even for one call among others with the outer one: the
// analyzer cannot tell which the author meant.
func usedOnce(ctx context.Context, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(stepCtx context.Context, u User) (Order, error) {
		if _, err := createOrder(u).Run(stepCtx); err != nil {
			return Order{}, err
		}
		return createOrder(u).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Used, derived.
func derived(ctx context.Context, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(stepCtx context.Context, u User) (Order, error) {
		c, cancel := context.WithTimeout(stepCtx, time.Second)
		defer cancel()
		return createOrder(u).Run(c)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Used only in a function literal inside the step.
func usedInLiteral(ctx context.Context, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(stepCtx context.Context, u User) (Order, error) {
		run := func() (Order, error) { return createOrder(u).Run(stepCtx) }
		return run()
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// The outer ctx run inside a function literal within the step: that
// literal runs when, and with the context, its caller decides; not looked
// into.
func nestedLiteral(ctx context.Context, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		run := func() (Order, error) { return createOrder(u).Run(ctx) }
		return run()
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Started as a goroutine: it may commit after the step returned.
func goroutine(ctx context.Context, id int64) (int, error) {
	return dbop.Then(getUser(id), func(_ context.Context, u User) (int, error) {
		go createOrder(u).Run(ctx)
		return 0, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A step that runs no work: nothing to count.
func noRun(ctx context.Context, id int64) (string, error) {
	return dbop.Then(getUser(id), func(_ context.Context, u User) (string, error) {
		return "user", nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// A call with the outer context of a function that commits nothing the
// analyzer sees.
func logs(ctx context.Context, id int64) (int64, error) {
	return dbop.Then(getUser(id), func(_ context.Context, u User) (int64, error) {
		slog.InfoContext(ctx, "user", "id", u.ID)
		return u.ID, nil
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}

// Work run with the transaction's own context, inside it (handed in by
// InTx, or marked by dbop.WithinTx): dbop counts the savepoints a step
// releases into the transaction the Then runs in.
func inTransaction(ctx context.Context, tx pgx.Tx, id int64) (Order, error) {
	op := pgxdb.InTx(pool, func(txctx context.Context, tx pgx.Tx) (Order, error) {
		return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
			return createOrder(u).With(pgxdb.InSavepoint(tx)).Run(txctx)
		}).With(dbop.WithRetry(backoff)).Run(txctx)
	})
	if _, err := op.Run(ctx); err != nil {
		return Order{}, err
	}
	marked := dbop.WithinTx(ctx)
	return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		return createOrder(u).With(pgxdb.InSavepoint(tx)).Run(marked)
	}).With(dbop.WithRetry(backoff)).Run(marked)
}

// A named function or a method value as the step: no literal.
func placeOrder(ctx context.Context, u User) (Order, error) {
	return createOrder(u).Run(context.Background())
}

func (h *Handler) place(_ context.Context, u User) (Order, error) {
	return createOrder(u).Run(context.Background())
}

func named(ctx context.Context, h *Handler, id int64) error {
	if _, err := dbop.Then(getUser(id), placeOrder).With(dbop.WithRetry(backoff)).Run(ctx); err != nil {
		return err
	}
	_, err := dbop.Then(getUser(id), h.place).With(dbop.WithRetry(backoff)).Run(ctx)
	return err
}

// Silenced.
func silenced(ctx context.Context, id int64) (Order, error) {
	return dbop.Then(getUser(id), func(_ context.Context, u User) (Order, error) {
		//dbopvet:ignore the order service deduplicates by request id, on purpose outside the count
		return createOrder(u).Run(ctx)
	}).With(dbop.WithRetry(backoff)).Run(ctx)
}
