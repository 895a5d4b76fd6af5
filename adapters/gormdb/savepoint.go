package gormdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/sqldialect"
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
	return scopes.InSavepoint(savepointer{tx: tx, backquote: b.backquotes(), family: b.family},
		scopes.ClassifyBy(c.classifier(b)),
		scopes.RollbackTimeout(c.rollbackTimeout),
	)
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
	if err := s.tx.Error; err != nil {
		return fmt.Errorf("gormdb: %s: the *gorm.DB carries an error: %w", stmt, err)
	}
	db := s.tx.Session(&gorm.Session{NewDB: true, Context: ctx}) // a copy of the statement: tx is untouched
	switch pool := db.Statement.ConnPool.(type) {
	case *gorm.PreparedStmtTX:
		db.Statement.ConnPool = pool.Tx // as gorm's SavePoint does: no prepared SAVEPOINT
	case gorm.TxCommitter:
	default:
		// SAVEPOINT on a pool would run on whichever connection is free.
		return fmt.Errorf("gormdb: %s: the *gorm.DB is not inside a transaction: %w", stmt, gorm.ErrInvalidTransaction)
	}
	return db.Exec(stmt).Error
}

// quote quotes name as an identifier.
func (s savepointer) quote(name string) string {
	q := `"`
	if s.backquote {
		q = "`"
	}
	return q + strings.ReplaceAll(name, q, q+q) + q
}
