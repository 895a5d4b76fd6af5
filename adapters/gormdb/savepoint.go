package gormdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/dbop-go/dbop/scopes"
	"gorm.io/gorm"
)

// InSavepoint returns [scopes.InSavepoint] for tx, a *gorm.DB inside a
// transaction (the one [InTx] hands to its function, or one from
// db.Begin): each attempt of the decorated operation runs between
// SAVEPOINT and RELEASE SAVEPOINT, and a failed attempt whose verdict
// allows it is undone with ROLLBACK TO SAVEPOINT, keeping the
// transaction's earlier work. Listed after dbop.WithRetry, it makes the
// retry a statement-level one:
//
//	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
//		r := tx.WithContext(ctx).Exec("UPDATE stock SET n = n - 1 WHERE id = ?", id)
//		return r.RowsAffected, r.Error
//	})
//	n, err := step.With(dbop.WithRetry(backoff), gormdb.InSavepoint(tx)).Run(ctx)
//
// Run it with the context InTx handed you, so that a transaction-level
// failure (a deadlock, a serialization failure) travels out to the retry
// around InTx instead of being retried here.
//
// Errors are classified as InTx classifies them: the [ClassifyBy]
// classifiers, GORM's errors, then the dialect's classifier; on the mysql
// dialector pass the [Dialect] here too. On MySQL, MariaDB and SQLite a
// RELEASE or ROLLBACK TO that finds no savepoint is Ambiguous: the server
// ended the transaction under the step (a deadlock, an interrupted write)
// and the step went on, its later statements each committed on their own,
// so the transaction must not run again.
//
// InSavepoint runs the three statements itself, with tx.Exec on a new
// session of tx, and returns each one's own error. GORM's tx.SavePoint and
// tx.RollbackTo go through the dialector, and the postgres and sqlite
// dialectors return nil even when the statement failed: a failed ROLLBACK
// TO SAVEPOINT would go unnoticed, the transaction left aborted
// (docs/backends.md §9.3). GORM never releases a savepoint either. Names
// are quoted as identifiers: with backquotes for MySQL and MariaDB, with
// double quotes (SQL standard) for every other dialect. With PrepareStmt,
// the statements bypass the prepared-statement cache, as GORM's own
// SavePoint does. A statement fails with an error matching
// gorm.ErrInvalidTransaction, without reaching the database, when tx is
// not inside a transaction, and with tx.Error when tx carries an error.
//
// With a deadline on a step attempt's context earlier than the one [InTx]
// derived the transaction's own limits from (any, when InTx's context had none;
// a [dbop.WithTimeout] listed between the retry and InSavepoint; listed after
// InSavepoint, inside the savepoint, it sets its deadline too late), or, on
// PostgreSQL in a transaction you began yourself, a deadline a WithTimeout
// listed before InSavepoint in the same pipeline set (your own context's
// deadline alone sets nothing), InSavepoint sets server-side limits derived
// from it for that attempt (statement_timeout and lock_timeout on PostgreSQL;
// max_statement_time on MariaDB; max_execution_time and
// innodb_lock_wait_timeout on MySQL, session settings whose earlier values are
// kept in user variables; nothing on SQLite, where a deadline interrupts the
// statement and keeps the connection), so that the server, not the driver
// closing the connection, ends a statement that would outlast it, and the step
// is retried at its savepoint while the caller's transaction goes on. A limit
// never rises: each is the smaller of the derived value and the one in force
// (InTx's options, a role's or the session's default), which the server
// computes in the statement that sets it (docs/backends.md §1.19, §3.16). The
// earlier values are set back however the attempt ends; on PostgreSQL after a
// successful attempt, before its RELEASE SAVEPOINT, which set_config(…, true)
// inside a savepoint outlives, while after a failed or panicking one its
// ROLLBACK TO SAVEPOINT has undone them and nothing is sent on the aborted
// transaction; on MySQL and MariaDB, whose session settings neither ROLLBACK TO
// nor the transaction's end undoes, after every attempt, a deadlock's or a
// panic's included, before the step's error or panic leaves InSavepoint and so
// before the connection can go back to the pool. On MySQL and MariaDB only in a
// transaction [InTx] began: in one you began, database/sql rolls the
// transaction back by itself when your context ends and puts the connection
// back in its pool, maybe before the step has set its limits back, so there a
// step's deadline closes the connection as it did before (it sets nothing). On
// MySQL, max_execution_time bounds read-only SELECTs only and
// innodb_lock_wait_timeout whole seconds, so a deadline under a second does not
// bound an UPDATE's lock wait (docs/backends.md §3.6). It costs a round trip to
// set them and one to set them back per such attempt; on a slow link, where the
// setting round trip ate more than a quarter of the margin kept before the
// deadline, they are set back and set again. A deadline no earlier than InTx's
// is met by the limits InTx set, and a dbop.HotSpot's server deadline is InTx's
// too: then, and without a deadline, InSavepoint sends nothing more. The limits
// bound each statement (and lock wait), not the step: a step whose several
// statements together outlast the deadline, or an attempt that starts with a
// few milliseconds left (a retry's last under a deadline around it), can still
// have its connection closed by the driver, which ends the caller's
// transaction; nothing is applied twice, and the transaction's owner decides
// what follows.
//
// The Decorator is safe for concurrent use, but tx serves one goroutine at
// a time. InSavepoint panics if tx is nil, an option is nil, tx is on the
// mysql dialector without a Dialect, or the Dialect does not fit tx's
// dialector.
func InSavepoint(tx *gorm.DB, opts ...SavepointOption) dbop.Decorator {
	if tx == nil {
		panic("gormdb: InSavepoint: the *gorm.DB is nil")
	}
	c := newSavepointConfig(opts)
	b := backendFor("InSavepoint", tx, c.dialect)
	sp := savepointer{tx: tx, backquote: b.backquotes(), family: b.family}
	opt := []scopes.SavepointOption{
		scopes.ClassifyBy(c.classifier(b)),
		scopes.RollbackTimeout(c.rollbackTimeout),
	}
	// SQLite gets no limits: a deadline interrupts the statement and keeps
	// the connection (docs/backends.md §5.9).
	if b.family == sqldialect.Postgres || b.backquotes() {
		stx := resolve.SavepointTx{
			Who:     "gormdb",
			Session: sessionOf(tx), // InTx records its pool (txn.watch)
			Exec:    sp.exec,
			Query: func(ctx context.Context, query string, args ...any) ([]string, error) {
				db, err := sp.session(ctx, query)
				if err != nil {
					return nil, err
				}
				return resolve.FirstColumn(db.Raw(query, args...).Rows())
			},
			Placeholder: func(int) string { return "?" },
		}
		opt = append(opt, txmark.InsideSavepoint(func(ctx context.Context, next func(context.Context) error) error {
			return resolve.SavepointLimits(ctx, b.family, stx, c.rollbackTimeout, next)
		}).(scopes.SavepointOption))
	}
	return scopes.InSavepoint(sp, opt...)
}

// savepointer is the scopes.Savepointer of a GORM transaction. It is
// comparable, as scopes.InSavepoint requires.
type savepointer struct {
	tx        *gorm.DB
	backquote bool              // quote names with ` (MySQL, MariaDB) rather than "
	family    sqldialect.Family // 0 for a dialector this package does not know
}

func (s savepointer) Savepoint(ctx context.Context, name string) error {
	return s.exec(ctx, "SAVEPOINT "+s.quote(name))
}

func (s savepointer) RollbackTo(ctx context.Context, name string) error {
	return sqldialect.SavepointEnded("gormdb", s.family, name, s.exec(ctx, "ROLLBACK TO SAVEPOINT "+s.quote(name)))
}

func (s savepointer) Release(ctx context.Context, name string) error {
	return sqldialect.SavepointEnded("gormdb", s.family, name, s.exec(ctx, "RELEASE SAVEPOINT "+s.quote(name)))
}

// exec runs stmt in the transaction and returns its own error.
func (s savepointer) exec(ctx context.Context, stmt string) error {
	db, err := s.session(ctx, stmt)
	if err != nil {
		return err
	}
	return db.Exec(stmt).Error
}

// session returns a new session of the transaction, with ctx, to run stmt
// in, or an error if tx carries one or is not inside a transaction.
func (s savepointer) session(ctx context.Context, stmt string) (*gorm.DB, error) {
	if err := s.tx.Error; err != nil {
		return nil, fmt.Errorf("gormdb: %s: the *gorm.DB carries an error: %w", stmt, err)
	}
	db := s.tx.Session(&gorm.Session{NewDB: true, Context: ctx}) // a copy of the statement: tx is untouched
	switch pool := db.Statement.ConnPool.(type) {
	case *gorm.PreparedStmtTX:
		db.Statement.ConnPool = pool.Tx // as gorm's SavePoint does: no prepared SAVEPOINT
	case gorm.TxCommitter:
	default:
		// SAVEPOINT on a pool would run on whichever connection is free.
		return nil, fmt.Errorf("gormdb: %s: the *gorm.DB is not inside a transaction: %w", stmt, gorm.ErrInvalidTransaction)
	}
	return db, nil
}

// quote quotes name as an identifier.
func (s savepointer) quote(name string) string {
	q := `"`
	if s.backquote {
		q = "`"
	}
	return q + strings.ReplaceAll(name, q, q+q) + q
}

// sessionOf returns the handle of the transaction tx runs its statements
// in, as InTx records it in the transaction's state (txn.watch): the pool
// InTx gives the function's *gorm.DB on MySQL, MariaDB and SQLite, which
// sessions derived from it (WithContext, Session) keep; nil for any other.
func sessionOf(tx *gorm.DB) any {
	pool := statementPool(tx)
	if ps, ok := pool.(*gorm.PreparedStmtTX); ok {
		// A session with PrepareStmt wraps the pool it was made from
		// (found by a review).
		pool = ps.Tx
	}
	if p, ok := pool.(*txPool); ok {
		return p
	}
	return nil
}
