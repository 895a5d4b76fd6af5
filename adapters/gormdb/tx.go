package gormdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"gorm.io/gorm"
)

// InTx returns an operation that runs fn in a transaction of its own each
// time it runs: one run, one transaction. It is scopes.InTx for GORM: per
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
// Errors are classified by [Classifier](db), or by [WithClassifier]'s
// classifier. A COMMIT error is judged as DB-REFERENCE §6 says for the
// driver underneath: an error raised before anything was sent, or a server
// error answering the COMMIT, means "not committed" and is classified like
// any other; a network or context error after the send leaves the outcome
// unknown and is returned as a *scopes.AmbiguousCommitError with the
// verdict dbop.Ambiguous, retried only by a retry marked dbop.Idempotent.
//
// database/sql ends the transaction with the context given to Begin: COMMIT
// and ROLLBACK run with it, and when it ends database/sql rolls the
// transaction back by itself (DB-REFERENCE §7). So a per-attempt
// dbop.WithTimeout listed after the retry bounds the whole transaction,
// COMMIT included (and with pgx and go-sql-driver its expiry closes the
// connection), and the rollback after a failure is bounded by that
// context, not by a rollback timeout of its own; prefer the server-side
// [LockTimeout] and [StatementTimeout].
//
// db must not be inside a transaction: BEGIN then fails with
// gorm.ErrInvalidTransaction, NotRetryable. Use [InSavepoint] there. Before
// beginning, InTx checks db.Error: GORM would otherwise begin a transaction
// and hand back a handle carrying the old error, which looks like a failed
// BEGIN and leaves the transaction open. Such an error is returned as
// NotRetryable, and nothing is begun.
//
// The operation is safe for concurrent use if fn is: each run has its own
// transaction. InTx panics if db or fn is nil, an option is nil, or an
// option does not fit db's dialector ([LockTimeout] and [StatementTimeout]
// outside postgres, an [Isolation] level the driver refuses).
func InTx[T any](db *gorm.DB, fn func(ctx context.Context, tx *gorm.DB) (T, error), opts ...Option) dbop.Op[T] {
	if db == nil {
		panic("gormdb: InTx: the *gorm.DB is nil")
	}
	if fn == nil {
		panic("gormdb: InTx: the function to run in the transaction is nil")
	}
	c := newConfig(db, opts)
	b := &beginner{
		db:        db,
		isolation: c.isolation,
		setLocal:  setLocalSQL(c.lockTimeout, c.statementTimeout),
	}
	sopts := []scopes.Option{
		scopes.ClassifyBy(classifierFor(dialectorName(db), c.classifier)),
		scopes.CommitOutcome(commitOutcomeFor(dialectorName(db))),
	}
	if c.readOnly {
		sopts = append(sopts, scopes.ReadOnly())
	}
	return scopes.InTx(b.begin, func(ctx context.Context, t *txn) (T, error) {
		return fn(ctx, t.db)
	}, sopts...)
}

// beginner begins the transactions of one InTx.
type beginner struct {
	db        *gorm.DB
	isolation sql.IsolationLevel
	setLocal  string // run right after BEGIN; "" for none
}

// begin is InTx's scopes.BeginFunc.
func (b *beginner) begin(ctx context.Context, o scopes.TxOptions) (*txn, error) {
	if err := b.db.Error; err != nil {
		return nil, dbop.Permanent(fmt.Errorf("gormdb: the *gorm.DB given to InTx carries an error: %w", err))
	}
	tx := b.db.WithContext(ctx).Begin(&sql.TxOptions{Isolation: b.isolation, ReadOnly: o.ReadOnly})
	if err := tx.Error; err != nil {
		return nil, err
	}
	t := &txn{db: tx}
	if b.setLocal != "" {
		if err := tx.Exec(b.setLocal).Error; err != nil {
			// scopes.InTx does not roll back after a BEGIN error: do it here.
			if rbErr := t.Rollback(ctx); rbErr != nil {
				return nil, fmt.Errorf("gormdb: setting the transaction's timeouts: %w (rollback: %w)", err, rbErr)
			}
			return nil, fmt.Errorf("gormdb: setting the transaction's timeouts: %w", err)
		}
	}
	return t, nil
}

// txn is a GORM transaction as scopes.InTx sees it.
type txn struct {
	db *gorm.DB // from Begin
}

// Commit commits with GORM's Commit and returns its .Error. The context is
// unused: database/sql commits with the context given to Begin.
func (t *txn) Commit(context.Context) error { return t.end((*gorm.DB).Commit) }

// Rollback rolls back with GORM's Rollback and returns its .Error. The
// context is unused, as for Commit. sql.ErrTxDone is not an error here:
// database/sql has already rolled the transaction back, because the
// context given to Begin ended.
func (t *txn) Rollback(context.Context) error {
	err := t.end((*gorm.DB).Rollback)
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// end runs Commit or Rollback on a new session of the transaction whose
// Error is cleared, so that .Error is the outcome of that statement alone:
// GORM adds the outcome to the handle's Error, chaining it after any error
// fn may have added there ("%v; %w", DB-REFERENCE §8), and a successful
// COMMIT would then look failed.
func (t *txn) end(f func(*gorm.DB) *gorm.DB) error {
	s := t.db.Session(&gorm.Session{NewDB: true})
	s.Error = nil
	return f(s).Error
}

// setLocalSQL returns the statement that sets PostgreSQL's lock_timeout
// and statement_timeout for the current transaction only, or "" when
// neither is set. set_config(name, value, true) is SET LOCAL.
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
