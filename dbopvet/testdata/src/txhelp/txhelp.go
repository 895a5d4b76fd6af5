// Package txhelp wraps the InTx functions, as applications do; the
// analyzer learns the wrappers through facts and checks their callers in
// package usetxhelp.
package txhelp

import (
	"context"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

type Store struct{ Pool *pgxpool.Pool }

// InTx passes fn on to pgxdb.Do.
func (s *Store) InTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error { // want InTx:"txFunc\\(param 1: tx 1 ctx 0 writes\\)"
	_, err := pgxdb.Do(s.Pool, fn).Run(ctx)
	return err
}

// WithTx calls fn, with the transaction only, inside pgxdb.Do's function.
func WithTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error { // want WithTx:"txFunc\\(param 2: tx 0 ctx -1 db 1 writes\\)"
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return fn(tx)
	}).Run(ctx)
	return err
}

// Tx passes fn on to the wrapper above.
func Tx(ctx context.Context, s *Store, fn func(context.Context, pgx.Tx) error) error { // want Tx:"txFunc\\(param 2: tx 1 ctx 0 writes\\)"
	return s.InTx(ctx, fn)
}

// Read runs fn in a read-only transaction: it commits no writes.
func (s *Store) Read(ctx context.Context, fn func(context.Context, pgx.Tx) error) error { // want Read:"txFunc\\(param 1: tx 1 ctx 0\\)"
	_, err := pgxdb.Do(s.Pool, fn, pgxdb.ReadOnly()).Run(ctx)
	return err
}

// Op returns the operation that runs fn in a transaction, for the caller
// to run; through Tx, it may be read-only.
func (s *Store) Op(fn func(context.Context, pgx.Tx) error, readOnly bool) dbop.Op[struct{}] { // want Op:"txFunc\\(param 0: tx 1 ctx 0\\)"
	if readOnly {
		return pgxdb.Do(s.Pool, fn, pgxdb.ReadOnly())
	}
	return pgxdb.Do(s.Pool, fn)
}

// Shared runs fn in a transaction other operations' attempts share.
func (s *Store) Shared(ctx context.Context, fn func(context.Context, pgx.Tx) error) error { // want Shared:"txFunc\\(param 1: tx 1 ctx 0 writes shares\\)"
	_, err := pgxdb.Do(s.Pool, fn, pgxdb.ShareCommits()).Run(ctx)
	return err
}

// SharedWithTx calls fn, with the transaction only, inside the function
// of a pgxdb.Do that shares commits.
func SharedWithTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error { // want SharedWithTx:"txFunc\\(param 2: tx 0 ctx -1 db 1 writes shares\\)"
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return fn(tx)
	}, pgxdb.ShareCommits()).Run(ctx)
	return err
}

// Done commits tx.
func Done(ctx context.Context, tx pgx.Tx) error { // want Done:"endsTx\\(param 1 commits\\)"
	return tx.Commit(ctx)
}

// Abandon rolls tx back, through Discard.
func Abandon(ctx context.Context, tx pgx.Tx) { // want Abandon:"endsTx\\(param 1 rolls back\\)"
	discard(ctx, tx)
}

func discard(ctx context.Context, tx pgx.Tx) { // want discard:"endsTx\\(param 1 rolls back\\)"
	defer func() { _ = tx.Rollback(ctx) }()
}

// Reserve runs a transaction of its own that writes, and returns its
// error: its callers count a call of it as a run of a transaction.
func (s *Store) Reserve(ctx context.Context, id int64) error { // want Reserve:"writes" Reserve:"commitsTx"
	_, err := pgxdb.Do(s.Pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE stock SET n = n - 1 WHERE id = $1", id)
		return err
	}).Run(ctx)
	return err
}

// OnConn runs fn in a transaction begun on db, a parameter.
func OnConn(ctx context.Context, db pgxdb.Beginner, fn func(context.Context, pgx.Tx) error) error { // want OnConn:"txFunc\\(param 2: tx 1 ctx 0 db 1 writes\\)"
	_, err := pgxdb.Do(db, fn).Run(ctx)
	return err
}

// OnConnAgain passes db and fn on to OnConn.
func OnConnAgain(ctx context.Context, db pgxdb.Beginner, fn func(context.Context, pgx.Tx) error) error { // want OnConnAgain:"txFunc\\(param 2: tx 1 ctx 0 db 1 writes\\)"
	return OnConn(ctx, db, fn)
}
