package gormdb

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
	"gorm.io/gorm"
)

// txPool is the connection pool of the *gorm.DB that InTx hands its
// function on MySQL and MariaDB: the transaction's own pool (a *sql.Tx, or
// a *gorm.PreparedStmtTX under PrepareStmt), through which every statement
// the function runs passes — on tx and on every handle derived from it
// (tx.WithContext, tx.Session, GORM's nested tx.Transaction), whose errors
// GORM adds to the derived handle alone.
//
// Those servers end the whole transaction at a deadlock (1213) and run the
// statements sent afterwards on their own, each committed at once, and a
// COMMIT then succeeds on no transaction (docs/backends.md §3.2). So
// txPool records, in the transaction's state (txmark.State), a statement's
// error that the dialect's classifier calls RetryTransaction or Ambiguous
// (a deadlock, a lost connection), as a retry inside the transaction does
// when it refuses such an error: should the function swallow it and go
// on, InTx does not commit, and returns the Ambiguous error of
// sqldialect.Swallowed. A bare context error is left alone: it says the
// statement took too long, not what became of the transaction.
//
// txPool implements gorm.Tx, so that GORM still sees a transaction in it:
// tx.Transaction nests with SAVEPOINT, tx.Begin fails with
// gorm.ErrInvalidTransaction, and tx.Session(&gorm.Session{PrepareStmt:
// true}) prepares its statements on the transaction (they then run on
// *sql.Stmt values this pool does not see). It implements
// gorm.GetDBConnector, so that tx.DB() still returns the *sql.DB under the
// transaction. Errors met while reading the rows of a query (rows.Err)
// come after the call that sent it, and are not seen.
//
// InTx keeps one in its txn: no allocation of its own.
type txPool struct {
	gorm.Tx                  // the transaction's pool
	state    *txmark.State   // the transaction's, set before the function runs
	classify dbop.Classifier // the dialect's
}

// note records err in the transaction's state when it ends the
// transaction.
func (p *txPool) note(err error) {
	if err == nil || p.state == nil {
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	if v := p.classify(err); v == dbop.RetryTransaction || v == dbop.Ambiguous {
		p.state.Doom(err)
	}
}

// unprepared returns the pool query runs on: the transaction itself for a
// savepoint statement under PrepareStmt, which MySQL cannot prepare (GORM's
// SavePoint and RollbackTo step around its PreparedStmtTX for that reason,
// but do not recognise it inside this pool).
func (p *txPool) unprepared(query string) gorm.ConnPool {
	if ps, ok := p.Tx.(*gorm.PreparedStmtTX); ok && ps.Tx != nil && savepointStatement(query) {
		return ps.Tx
	}
	return p.Tx
}

// savepointStatement reports whether query is SAVEPOINT, ROLLBACK TO
// SAVEPOINT or RELEASE SAVEPOINT, as GORM's mysql dialector and
// InSavepoint write them.
func savepointStatement(query string) bool {
	for _, prefix := range [...]string{"SAVEPOINT ", "ROLLBACK TO SAVEPOINT ", "RELEASE SAVEPOINT "} {
		if len(query) >= len(prefix) && strings.EqualFold(query[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

func (p *txPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := p.unprepared(query).ExecContext(ctx, query, args...)
	p.note(err)
	return r, err
}

func (p *txPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := p.Tx.QueryContext(ctx, query, args...)
	p.note(err)
	return rows, err
}

func (p *txPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	row := p.Tx.QueryRowContext(ctx, query, args...)
	p.note(row.Err()) // the query's error, before any Scan
	return row
}

func (p *txPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	stmt, err := p.Tx.PrepareContext(ctx, query)
	p.note(err)
	return stmt, err
}

// GetDBConn returns the *sql.DB under the transaction, as GORM's DB method
// finds it for the transaction's own pool.
func (p *txPool) GetDBConn() (*sql.DB, error) {
	return (&gorm.DB{Config: &gorm.Config{ConnPool: p.Tx}}).DB()
}
