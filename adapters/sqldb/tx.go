package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
)

// Beginner starts transactions. *sql.DB and *sql.Conn satisfy it.
type Beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs, as [scopes.InTx] does, over database/sql: one run, one
// transaction begun on db. Retry it with [dbop.WithRetry] to retry whole
// transactions:
//
//	transfer := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int64, error) {
//		…
//	}, sqldb.LockTimeout(2*time.Second))
//	n, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// The [ClassifyBy] classifiers, then the dialect's classifier
// (Dialect.Classify), classify fn's error and the errors of BEGIN, and the
// dialect's commit rules (Dialect.CommitOutcome) judge a failed COMMIT:
// only a COMMIT whose outcome is unknown becomes an
// [*scopes.AmbiguousCommitError], retried only by a retry marked
// [dbop.Idempotent].
//
// fn receives a context marked [dbop.WithinTx]: run its statements with it.
// fn must neither commit nor roll back tx; InTx does, and reports a
// transaction fn ended as an error no retry acts on. If fn panics, the
// transaction is rolled back and the panic goes on.
//
// [LockTimeout] and [StatementTimeout] apply per attempt (see the package
// documentation); on MySQL, MariaDB and SQLite they need a connection to
// pin, so db must then be a *sql.Conn or have a Conn(ctx) (*sql.Conn, error)
// method as *sql.DB has.
//
// The operation is safe for concurrent use when db is a *sql.DB and fn is;
// a *sql.Conn serves one transaction at a time. InTx panics if db or fn is
// nil, d is invalid, an option is nil, or the options cannot be honoured
// with d and db.
func InTx[T any](db Beginner, d Dialect, fn func(ctx context.Context, tx *sql.Tx) (T, error), opts ...TxOption) dbop.Op[T] {
	if fn == nil {
		panic("sqldb: InTx: the function to run in the transaction is nil")
	}
	b := newBegin("InTx", db, d, opts)
	return scopes.InTx(b.begin, func(ctx context.Context, t *txn) (T, error) {
		return fn(ctx, t.tx)
	}, b.scopeOpts...)
}

// Do is [InTx] for work with no result: fn returns only an error, and the
// operation's value is struct{}. It panics as InTx does.
func Do(db Beginner, d Dialect, fn func(ctx context.Context, tx *sql.Tx) error, opts ...TxOption) dbop.Op[struct{}] {
	if fn == nil {
		panic("sqldb: Do: the function to run in the transaction is nil")
	}
	b := newBegin("Do", db, d, opts)
	return scopes.Do(b.begin, func(ctx context.Context, t *txn) error {
		return fn(ctx, t.tx)
	}, b.scopeOpts...)
}

// begin is the scopes.BeginFunc of InTx and Do, and what it needs. It is
// immutable once built.
type begin struct {
	db        Beginner
	isolation sql.IsolationLevel
	timeouts  timeouts
	src       connSource // where to pin a connection when timeouts.session is set
	restoreTO time.Duration
	scopeOpts []scopes.TxOption
}

// newBegin checks the arguments of InTx or Do, named caller, and plans
// their transactions.
func newBegin(caller string, db Beginner, d Dialect, opts []TxOption) *begin {
	if isNil(db) {
		panic("sqldb: " + caller + ": the Beginner is nil" + nilType(db))
	}
	mustBeValid(d, caller)
	c := newTxConfig(caller, opts)
	b := &begin{
		db:        db,
		isolation: c.isolation,
		timeouts:  newTimeouts(caller, d, c),
		restoreTO: c.rollbackTimeout,
	}
	if b.timeouts.session != nil {
		switch db := db.(type) {
		case *sql.Conn:
			b.src = callerConn{db}
		case interface {
			Conn(context.Context) (*sql.Conn, error)
		}:
			b.src = poolSource{db}
		default:
			panic(fmt.Sprintf("sqldb: %s: %v session timeouts need a connection to pin: pass a *sql.DB or a *sql.Conn, not a %T", caller, d, db))
		}
	}
	b.scopeOpts = []scopes.TxOption{
		c.classifyBy(d),
		scopes.CommitOutcome(commitOutcome(d.CommitOutcome)),
		scopes.RollbackTimeout(c.rollbackTimeout),
	}
	if c.readOnly {
		b.scopeOpts = append(b.scopeOpts, scopes.ReadOnly())
	}
	return b
}

// begin starts one attempt's transaction, with its timeouts applied.
func (b *begin) begin(ctx context.Context, o scopes.BeginOptions) (*txn, error) {
	opts := &sql.TxOptions{Isolation: b.isolation, ReadOnly: o.ReadOnly}
	if b.timeouts.session == nil {
		tx, err := b.db.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		if b.timeouts.local != "" {
			if _, err := tx.ExecContext(ctx, b.timeouts.local); err != nil {
				_ = tx.Rollback()
				return nil, fmt.Errorf("sqldb: %s: %w", b.timeouts.local, err)
			}
		}
		return &txn{tx: tx}, nil
	}
	p, err := pin(ctx, b.src, b.timeouts.session, b.restoreTO)
	if err != nil {
		return nil, err
	}
	tx, err := p.conn.BeginTx(ctx, opts)
	if err != nil {
		p.release(ctx)
		return nil, err
	}
	return &txn{tx: tx, pin: p}, nil
}

// txn adapts *sql.Tx to [scopes.Tx] and releases the pinned connection, if
// any, once the transaction has ended. scopes.InTx calls exactly one of
// Commit and Rollback on it.
type txn struct {
	tx  *sql.Tx
	pin *pinned // nil when no connection was pinned
}

// Commit commits. database/sql's Commit takes no context: the driver uses
// the one given to BeginTx (docs/backends.md §10.3).
func (t *txn) Commit(ctx context.Context) error {
	doneBefore := ctx.Err()
	err := t.tx.Commit()
	if t.pin != nil {
		// After a successful COMMIT a failed restore must not fail the
		// operation (a retry would apply it twice): release discards the
		// connection instead.
		t.pin.release(ctx)
	}
	if err != nil {
		return commitError(ctx, doneBefore, err)
	}
	return nil
}

// Rollback rolls back. database/sql's Rollback takes no context; ctx bounds
// only the restore of the session settings.
func (t *txn) Rollback(ctx context.Context) error {
	err := t.tx.Rollback()
	if t.pin != nil {
		t.pin.release(ctx)
	}
	return err
}
