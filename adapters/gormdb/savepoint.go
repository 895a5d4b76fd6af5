package gormdb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"gorm.io/gorm"
)

// Savepoints returns the scopes.Savepointer of tx, a *gorm.DB inside a
// transaction (the one [InTx] hands to its function, or one from
// db.Begin). It runs SAVEPOINT, ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT
// with tx.Exec and returns the .Error of that very statement.
//
// GORM's own tx.SavePoint and tx.RollbackTo call the dialector, and the
// postgres dialector runs the statement and returns nil whatever happened
// (DB-REFERENCE §8): a failed ROLLBACK TO SAVEPOINT goes unnoticed, and the
// transaction stays aborted. GORM never issues RELEASE SAVEPOINT at all.
// This Savepointer sees every failure and returns the driver's error as it
// is (*pgconn.PgError, *mysql.MySQLError), unless TranslateError translated
// it.
//
// Names are quoted as identifiers: with backquotes for the mysql
// dialector, with double quotes (SQL standard) for every other one. Each
// statement runs on a new session of tx with ctx, so tx itself is left as
// it was; with PrepareStmt, the statement bypasses the prepared-statement
// cache, as GORM's own SavePoint does (GORM cites MySQL's limits on what
// a prepared statement may contain).
//
// A statement fails with an error matching gorm.ErrInvalidTransaction,
// without reaching the database, when tx is not inside a transaction
// (SAVEPOINT on a pool would run on whichever connection is free), and
// with tx.Error when tx carries an error. A Savepointer serves one
// goroutine at a time, as its transaction does. Savepoints panics if tx is
// nil.
func Savepoints(tx *gorm.DB) scopes.Savepointer {
	if tx == nil {
		panic("gormdb: Savepoints: the *gorm.DB is nil")
	}
	return savepointer{tx: tx, backquote: dialectorName(tx) == mysqlDialect}
}

// InSavepoint returns scopes.InSavepoint for tx, a *gorm.DB inside a
// transaction, with [Classifier](tx) wired in: each attempt of the
// decorated operation runs between SAVEPOINT and RELEASE SAVEPOINT, and a
// failed attempt whose verdict allows it is undone with ROLLBACK TO
// SAVEPOINT, keeping the transaction's earlier work. Listed after
// dbop.WithRetry, it makes the retry a statement-level one:
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
// opts are scopes options (ClassifyBy, RollbackTimeout); a classifier
// given with scopes.ClassifyBy is asked before Classifier(tx). The
// statements run through [Savepoints](tx). InSavepoint panics if tx is
// nil, an option is nil, or scopes.ReadOnly or scopes.CommitOutcome is
// given.
func InSavepoint(tx *gorm.DB, opts ...scopes.Option) dbop.Decorator {
	sp := Savepoints(tx)
	return scopes.InSavepoint(sp, slices.Concat(opts, []scopes.Option{scopes.ClassifyBy(Classifier(tx))})...)
}

// savepointer is the scopes.Savepointer of a GORM transaction.
type savepointer struct {
	tx        *gorm.DB
	backquote bool // quote names with ` (mysql) rather than "
}

func (s savepointer) Savepoint(ctx context.Context, name string) error {
	return s.exec(ctx, "SAVEPOINT "+s.quote(name))
}

func (s savepointer) RollbackTo(ctx context.Context, name string) error {
	return s.exec(ctx, "ROLLBACK TO SAVEPOINT "+s.quote(name))
}

func (s savepointer) Release(ctx context.Context, name string) error {
	return s.exec(ctx, "RELEASE SAVEPOINT "+s.quote(name))
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
