package gormdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/scopes"
	"gorm.io/gorm"
)

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs: one run, one transaction. It is [scopes.InTx] for GORM: per
// run it begins a transaction with db.WithContext(ctx).Begin, hands fn the
// transaction's *gorm.DB, and commits when fn succeeds or rolls back when
// it fails or panics. Retrying the operation retries the whole
// transaction, fn's reads included:
//
//	transfer := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int64, error) { … })
//	id, err := transfer.With(dbop.WithRetry(backoff)).Run(ctx)
//
// fn must run every statement on tx (or on tx.WithContext(ctx), so that a
// deadline of ctx applies to it), must return the .Error of each one that
// fails, and must not call tx.Commit or tx.Rollback.
//
// Errors are classified by the [ClassifyBy] classifiers, then GORM's own
// errors, then the dialect's classifier (see [Dialect]). A COMMIT error is
// judged by the dialect's COMMIT rules (docs/backends.md §11): an error
// raised before anything was sent, or a server error answering the COMMIT,
// means "not committed" and is classified like any other; a network or
// context error after the send leaves the outcome unknown and is returned
// as a [*scopes.AmbiguousCommitError] with the verdict [dbop.Ambiguous],
// retried only by a retry marked [dbop.Idempotent].
//
// database/sql ends the transaction with the context given to Begin: COMMIT
// and ROLLBACK run with it, and when it ends database/sql rolls the
// transaction back by itself (§10.3). So a per-attempt dbop.WithTimeout
// listed after the retry bounds the whole transaction, COMMIT included (and
// with pgx and go-sql-driver its expiry closes the connection, §2.7, §4.6);
// prefer the server-side [LockTimeout] and [StatementTimeout]. The rollback
// after a failure is bounded by [RollbackTimeout].
//
// db must not be inside a transaction: BEGIN then fails with
// gorm.ErrInvalidTransaction, NotRetryable. Use [InSavepoint] there. Before
// beginning, InTx checks db.Error: GORM would otherwise begin a transaction
// and hand back a handle carrying the old error, which looks like a failed
// BEGIN and leaves the transaction open. Such an error is returned as
// NotRetryable, and nothing is begun.
//
// The operation is safe for concurrent use if fn is: each run has its own
// transaction. InTx panics if db or fn is nil, an option is nil, db is on
// the mysql dialector without a [Dialect], the Dialect does not fit db's
// dialector, or an option does not fit the dialect ([LockTimeout] and
// [StatementTimeout] outside PostgreSQL, an [Isolation] level the driver
// refuses).
func InTx[T any](db *gorm.DB, fn func(ctx context.Context, tx *gorm.DB) (T, error), opts ...TxOption) dbop.Op[T] {
	if db == nil {
		panic("gormdb: InTx: the *gorm.DB is nil")
	}
	if fn == nil {
		panic("gormdb: InTx: the function to run in the transaction is nil")
	}
	b := newBeginner("InTx", db, opts)
	return scopes.InTx(b.begin, func(ctx context.Context, t *txn) (T, error) {
		return fn(ctx, t.db)
	}, b.scopeOpts...)
}

// Do is [InTx] for work with no result: fn returns only an error, and the
// operation's value is struct{}. It panics as InTx does.
func Do(db *gorm.DB, fn func(ctx context.Context, tx *gorm.DB) error, opts ...TxOption) dbop.Op[struct{}] {
	if db == nil {
		panic("gormdb: Do: the *gorm.DB is nil")
	}
	if fn == nil {
		panic("gormdb: Do: the function to run in the transaction is nil")
	}
	b := newBeginner("Do", db, opts)
	return scopes.Do(b.begin, func(ctx context.Context, t *txn) error {
		return fn(ctx, t.db)
	}, b.scopeOpts...)
}

// beginner begins the transactions of one InTx or Do. It is immutable once
// built.
type beginner struct {
	caller          string
	db              *gorm.DB
	isolation       sql.IsolationLevel
	setLocal        string // run right after BEGIN; "" for none
	rollbackTimeout time.Duration
	scopeOpts       []scopes.TxOption
}

// newBeginner checks the options of InTx or Do, named caller, against db's
// dialect, panicking on a programmer error, and plans their transactions.
func newBeginner(caller string, db *gorm.DB, opts []TxOption) *beginner {
	c := newTxConfig(caller, opts)
	be := backendFor(caller, db, c.dialect)
	if (c.lockTimeout > 0 || c.statementTimeout > 0) && be.family != sqldialect.Postgres {
		panic(fmt.Sprintf("gormdb: %s: LockTimeout and StatementTimeout are implemented for PostgreSQL only, not %s; "+
			"for MySQL and MariaDB see the package documentation", caller, be.name))
	}
	if name := dialectorName(db); !isolationSupported(name, c.isolation) {
		panic(fmt.Sprintf("gormdb: %s: the %s dialector's driver does not support the isolation level %v", caller, name, c.isolation))
	}
	b := &beginner{
		caller:          caller,
		db:              db,
		isolation:       c.isolation,
		setLocal:        setLocalSQL(c.lockTimeout, c.statementTimeout),
		rollbackTimeout: c.rollbackTimeout,
		scopeOpts: []scopes.TxOption{
			scopes.ClassifyBy(c.classifier(be)),
			scopes.CommitOutcome(commitOutcome(be.commitOutcome)),
			scopes.RollbackTimeout(c.rollbackTimeout),
		},
	}
	if c.readOnly {
		b.scopeOpts = append(b.scopeOpts, scopes.ReadOnly())
	}
	return b
}

// isolationSupported reports whether the driver under the named dialector
// accepts level; other dialectors accept every level (their driver decides
// at BEGIN).
func isolationSupported(dialector string, level sql.IsolationLevel) bool {
	switch level {
	case sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable:
		return true
	case sql.LevelSnapshot:
		// pgx stdlib BeginTx maps it to REPEATABLE READ; go-sql-driver's
		// mapIsolationLevel refuses it.
		return dialector != mysqlDialector
	}
	return dialector != postgresDialector && dialector != mysqlDialector
}

// begin is the scopes.BeginFunc of InTx and Do. The transaction is begun
// with a context of its own, derived from ctx, that Rollback can cancel
// when the rollback outlasts its bound.
func (b *beginner) begin(ctx context.Context, o scopes.BeginOptions) (*txn, error) {
	if err := b.db.Error; err != nil {
		return nil, dbop.Classify(fmt.Errorf("gormdb: the *gorm.DB given to %s carries an error: %w", b.caller, err), dbop.NotRetryable)
	}
	txCtx, cancel := context.WithCancelCause(ctx)
	tx := b.db.WithContext(txCtx).Begin(&sql.TxOptions{Isolation: b.isolation, ReadOnly: o.ReadOnly})
	if err := tx.Error; err != nil {
		cancel(nil)
		return nil, err
	}
	t := &txn{db: tx, cancel: cancel}
	if b.setLocal != "" {
		if err := tx.Exec(b.setLocal).Error; err != nil {
			// scopes.InTx does not roll back after a BEGIN error: do it
			// here, bounded as scopes bounds its own rollbacks.
			rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), b.rollbackTimeout)
			defer stop()
			if rbErr := t.Rollback(rctx); rbErr != nil {
				return nil, fmt.Errorf("gormdb: setting the transaction's timeouts: %w (rollback: %w)", err, rbErr)
			}
			return nil, fmt.Errorf("gormdb: setting the transaction's timeouts: %w", err)
		}
	}
	return t, nil
}

// txn is a GORM transaction as scopes.InTx sees it. scopes.InTx calls
// exactly one of Commit and Rollback on it.
type txn struct {
	db     *gorm.DB                // from Begin
	cancel context.CancelCauseFunc // cancels the context the transaction was begun with
}

// Commit commits with GORM's Commit and returns its .Error. The context is
// unused: database/sql commits with the context given to Begin
// (docs/backends.md §10.3).
func (t *txn) Commit(context.Context) error {
	defer t.cancel(nil)
	return t.end((*gorm.DB).Commit)
}

// Rollback rolls back with GORM's Rollback and returns its .Error, waiting
// no longer than ctx allows (scopes bounds it by the rollback timeout).
// database/sql's Rollback takes no context, so it runs on a goroutine of
// its own; when ctx ends first, Rollback cancels the context the
// transaction was begun with, which pgx's driver reads during ROLLBACK (it
// closes the connection, §2.7), and returns ctx's cause without waiting
// further. sql.ErrTxDone is not an error here: database/sql has already
// rolled the transaction back, because the context given to Begin ended.
func (t *txn) Rollback(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- t.end((*gorm.DB).Rollback) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.cancel(context.Cause(ctx))
		err = fmt.Errorf("gormdb: ROLLBACK did not finish in time: %w", context.Cause(ctx))
	}
	t.cancel(nil)
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// end runs Commit or Rollback on a new session of the transaction whose
// Error is cleared, so that .Error is the outcome of that statement alone:
// GORM adds the outcome to the handle's Error, chaining it after any error
// fn may have added there ("%v; %w", docs/backends.md §9.4), and a
// successful COMMIT would then look failed.
func (t *txn) end(f func(*gorm.DB) *gorm.DB) error {
	s := t.db.Session(&gorm.Session{NewDB: true})
	s.Error = nil
	return f(s).Error
}

// setLocalSQL returns the statement that sets PostgreSQL's lock_timeout
// and statement_timeout for the current transaction only, or "" when
// neither is set. set_config(name, value, true) is SET LOCAL (§1.4).
func setLocalSQL(lock, statement time.Duration) string {
	s := ""
	add := func(name string, d time.Duration) {
		if d <= 0 {
			return
		}
		if s == "" {
			s = "SELECT "
		} else {
			s += ", "
		}
		s += fmt.Sprintf("set_config('%s', '%dms', true)", name, d.Milliseconds())
	}
	add("lock_timeout", lock)
	add("statement_timeout", statement)
	return s
}
