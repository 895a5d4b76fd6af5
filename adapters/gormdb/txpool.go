package gormdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/txmark"
	"gorm.io/gorm"
)

// txPool is the connection pool of the *gorm.DB that InTx hands its
// function on MySQL, MariaDB and SQLite: the transaction's own pool (a
// *sql.Tx, or a *gorm.PreparedStmtTX under PrepareStmt), through which
// every statement the function runs passes — on tx and on every handle
// derived from it (tx.WithContext, tx.Session, GORM's nested
// tx.Transaction), whose errors GORM adds to the derived handle alone.
//
// Those servers may end the whole transaction at an error and run the
// statements sent afterwards on their own, each committed at once:
// MySQL and MariaDB at a deadlock (1213), after which a COMMIT succeeds on
// no transaction (docs/backends.md §3.2); SQLite at an interrupted write,
// and maybe at SQLITE_FULL, IOERR, NOMEM or BUSY (§5.5, §5.6). So txPool
// records what the function does past such an error:
//
//   - On MySQL and MariaDB, a statement's error that the dialect's
//     classifier calls RetryTransaction or Ambiguous (a deadlock, a lost
//     connection) dooms the transaction, in its state (txmark.State), as a
//     retry inside the transaction does when it refuses such an error:
//     should the function swallow it and go on, InTx does not commit, and
//     returns the Ambiguous error of sqldialect.Swallowed. A bare context
//     error is left alone: it says the statement took too long, not what
//     became of the transaction (go-sql-driver closes the connection).
//   - On SQLite, whose COMMIT fails when the transaction has ended, no
//     error dooms the transaction; a statement's error that may have ended
//     it is remembered (failed): any but a NotRetryable one such as a
//     constraint's, a context error included, since an interrupted write
//     returns one and the classifier calls FULL and IOERR Unclassified.
//   - A statement sent after the doom (whoever recorded it) or, on
//     SQLite, after such an error is evidence that the function went on
//     (wentOn), even if it then returns the error that ended the
//     transaction: InTx then judges the function's error with it
//     (sqldialect.Swallowed, sqldialect.SwallowedSQLite). SAVEPOINT,
//     ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT do not count: GORM's
//     nested tx.Transaction rolls back to its savepoint after the error,
//     and those statements write nothing; nor do the session settings
//     InSavepoint sets back after an attempt with a deadline
//     (resolve.IsMySQLSavepointLimits). Nor does a statement whose error
//     says it was never sent (driver.ErrBadConn, sql.ErrTxDone). Every
//     other statement counts, reads included, failed or not, and so does
//     preparing one: it cannot be told from here that it wrote nothing.
//   - On SQLite, a SAVEPOINT after an error that may have ended the
//     transaction is sent only once SQLite says the transaction is still
//     open (stillOpen): outside one, it would begin another, which the
//     ROLLBACK or COMMIT InTx asks SQLite with would end instead
//     (docs/backends.md §5.15).
//
// txPool implements gorm.Tx, so that GORM still sees a transaction in it:
// tx.Transaction nests with SAVEPOINT, tx.Begin fails with
// gorm.ErrInvalidTransaction, and tx.Session(&gorm.Session{PrepareStmt:
// true}) prepares its statements on the transaction (they then run on
// *sql.Stmt values this pool does not see). It implements
// gorm.GetDBConnector, so that tx.DB() still returns the *sql.DB under the
// transaction. Errors met while reading the rows of a query (rows.Err)
// come after the call that sent it, and are not seen, nor are the
// statements run on the *sql.Tx that [SQLTx] returns.
//
// InTx keeps one in its txn: no allocation of its own.
type txPool struct {
	gorm.Tx                  // the transaction's pool
	state    *txmark.State   // the transaction's, set before the function runs
	classify dbop.Classifier // the dialect's
	sqlite   bool            // the SQLite family: remember errors, doom nothing
	failed   atomic.Bool     // SQLite: a statement failed with an error that may have ended the transaction
	wentOn   atomic.Bool     // a statement was sent after the doom or a failure that may have ended the transaction
}

// note records err, a statement's error, when it ends the transaction or,
// on SQLite, may have ended it.
func (p *txPool) note(err error) {
	if err == nil {
		return
	}
	ctxErr := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	v := p.classify(err)
	switch {
	case p.sqlite:
		if ctxErr || v != dbop.NotRetryable {
			p.failed.Store(true)
		}
	case ctxErr || p.state == nil:
	case v == dbop.RetryTransaction || v == dbop.Ambiguous:
		p.state.Doom(err)
	}
}

// ended reports whether the doom (whoever recorded it) or, on SQLite, an
// error that may have ended the transaction has been recorded: a statement
// sent now goes on past it.
func (p *txPool) ended() bool {
	return p.failed.Load() || (p.state != nil && p.state.Doomed() != nil)
}

// sent records, for wentOn, that query went out after the transaction may
// have ended (after, from ended before it was sent), unless it is a
// savepoint statement or its error says that nothing was sent:
// driver.ErrBadConn, which a driver returns only then (docs/backends.md
// §10.1), and database/sql's refusals of a transaction or connection it
// had already closed. A connection lost at the error that ended the
// transaction answers every later statement so, and sends nothing.
func (p *txPool) sent(after bool, query string, err error) {
	if !after || savepointStatement(query) || resolve.IsMySQLSavepointLimits(query) {
		return
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrTxDone) || errors.Is(err, sql.ErrConnDone) {
		return
	}
	p.wentOn.Store(true)
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

// newSavepoint reports whether query is SAVEPOINT, which outside a
// transaction begins one on SQLite (docs/backends.md §5.15).
func newSavepoint(query string) bool {
	const prefix = "SAVEPOINT "
	return len(query) >= len(prefix) && strings.EqualFold(query[:len(prefix)], prefix)
}

// stillOpen asks SQLite, before query, a SAVEPOINT sent after an error that
// may have ended the transaction (failed), whether the transaction is still
// open, and refuses query when it is not. Outside a transaction SQLite's
// SAVEPOINT begins a new one (docs/backends.md §5.15): GORM's nested
// tx.Transaction, which never releases its savepoint, would leave it open,
// and the ROLLBACK or COMMIT by which InTx learns whether the transaction
// had ended (sqldialect.SwallowedSQLite, sqldialect.TxEnded) would end that
// one instead: a COMMIT reporting success for a transaction whose earlier
// work SQLite had rolled back, a ROLLBACK that let the retry run again what
// had been committed on its own. BEGIN asks without changing an open
// transaction, which refuses it (§5.15); when it begins one, the
// transaction had ended, and this one is rolled back at once. The refusal
// is RetryTransaction: what was sent after the end, if anything, InTx's
// ROLLBACK or COMMIT finds, with no transaction open, and reports
// Ambiguous.
func (p *txPool) stillOpen(ctx context.Context, query string) error {
	raw := p.Tx
	if ps, ok := raw.(*gorm.PreparedStmtTX); ok && ps.Tx != nil {
		raw = ps.Tx // as for the savepoint statements (unprepared)
	}
	_, err := raw.ExecContext(ctx, "BEGIN")
	switch {
	case err != nil && strings.Contains(err.Error(), "cannot start a transaction within a transaction"):
		return nil // still open
	case err != nil:
		return fmt.Errorf("gormdb: %s: asking SQLite whether the transaction is still open after an error: %w", query, err)
	}
	_, rerr := raw.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	err = fmt.Errorf("gormdb: %s: SQLite had already ended the transaction after an error the function went on after "+
		"(an interrupted write rolls it back, and SQLITE_FULL, IOERR, NOMEM or BUSY may), and a SAVEPOINT would begin another: "+
		"return that error at once instead of going on", query)
	if rerr != nil {
		err = fmt.Errorf("%w (rolling back the transaction BEGIN began: %w)", err, rerr)
	}
	return dbop.Classify(err, dbop.RetryTransaction)
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
	if p.sqlite && p.failed.Load() && newSavepoint(query) {
		if err := p.stillOpen(ctx, query); err != nil {
			return nil, err
		}
	}
	after := p.ended()
	r, err := p.unprepared(query).ExecContext(ctx, query, args...)
	p.note(err)
	p.sent(after, query, err)
	return r, err
}

func (p *txPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	after := p.ended()
	rows, err := p.Tx.QueryContext(ctx, query, args...)
	p.note(err)
	p.sent(after, query, err)
	return rows, err
}

func (p *txPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	after := p.ended()
	row := p.Tx.QueryRowContext(ctx, query, args...)
	p.note(row.Err()) // the query's error, before any Scan
	p.sent(after, query, row.Err())
	return row
}

func (p *txPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	after := p.ended()
	stmt, err := p.Tx.PrepareContext(ctx, query)
	p.note(err)
	p.sent(after, query, err)
	return stmt, err
}

// GetDBConn returns the *sql.DB under the transaction, as GORM's DB method
// finds it for the transaction's own pool.
func (p *txPool) GetDBConn() (*sql.DB, error) {
	return (&gorm.DB{Config: &gorm.Config{ConnPool: p.Tx}}).DB()
}

// SQLTx returns the *sql.Tx that tx, a *gorm.DB in a transaction (the one
// InTx or Do hands its function, or a handle derived from it), runs its
// statements on, for code that takes a *sql.Tx, such as sqlc's or sqlx's.
// tx.Statement.ConnPool is not always that *sql.Tx: on MySQL, MariaDB and
// SQLite InTx runs the function's statements through a pool of its own that
// watches them (see [InTx]), and under gorm.Config{PrepareStmt: true} GORM
// runs them through a *gorm.PreparedStmtTX. SQLTx looks through both. ok is
// false when tx runs on no *sql.Tx: outside a transaction, or on a pool of
// another kind, such as a resolver plugin's.
//
// Statements run on the *sql.Tx bypass that watch. An error there that ends
// the transaction (a MySQL or MariaDB deadlock, an interrupted SQLite write)
// is seen only if the function returns it, and a statement run there after
// such an error is not seen going on: return the error at once.
func SQLTx(tx *gorm.DB) (*sql.Tx, bool) {
	if tx == nil {
		return nil, false
	}
	pool := statementPool(tx)
	for {
		switch p := pool.(type) {
		case *sql.Tx:
			return p, p != nil
		case *txPool:
			pool = p.Tx
		case *gorm.PreparedStmtTX:
			pool = p.Tx
		default:
			return nil, false
		}
	}
}
