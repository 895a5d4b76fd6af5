package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/scopes"
)

// savepoints is the [scopes.Savepointer] of a *sql.Tx: SAVEPOINT, ROLLBACK
// TO SAVEPOINT and RELEASE SAVEPOINT run in tx, the name quoted as the
// family wants it. It is comparable, as scopes.InSavepoint requires, and
// two built for the same transaction are equal.
type savepoints struct {
	tx     *sql.Tx
	family sqldialect.Family
}

func (s savepoints) Savepoint(ctx context.Context, name string) error {
	_, err := s.tx.ExecContext(ctx, "SAVEPOINT "+quote(s.family, name))
	return err
}

func (s savepoints) RollbackTo(ctx context.Context, name string) error {
	_, err := s.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+quote(s.family, name))
	return savepointEnded(s.family, name, err)
}

func (s savepoints) Release(ctx context.Context, name string) error {
	_, err := s.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+quote(s.family, name))
	return savepointEnded(s.family, name, err)
}

// savepointEnded returns err, the error of ROLLBACK TO SAVEPOINT name or RELEASE
// SAVEPOINT name, as Ambiguous when it says that the savepoint no longer
// exists on MySQL, MariaDB or SQLite. The scope created it before the
// step, and the step's own errors that end the transaction never reach
// these statements (the scope leaves them to the transaction's owner): the
// server ended the transaction while the step ran and the step went on (a
// deadlock, 1213, that it did not return, as a rows loop that never checks
// rows.Err() does; an interrupted write on SQLite) or the step committed
// it (DDL commits implicitly on MySQL). Those servers run the statements
// that follow on their own, each committed at once (docs/backends.md §3.2,
// §5.5): what the step ran after the transaction ended was applied, and
// running the transaction again could apply it twice. On PostgreSQL an
// error the step went on after aborts the transaction instead, and err is
// returned as it is.
func savepointEnded(f sqldialect.Family, name string, err error) error {
	if err == nil || !savepointGone(f, name, err) {
		return err
	}
	return dbop.Classify(fmt.Errorf("sqldb: savepoint %s no longer exists: %v ended the transaction while the step ran, "+
		"and the step went on (a deadlock it did not return, as from a rows loop that never checks rows.Err(), "+
		"an interrupted write on SQLite, or a statement that commits): the statements it ran after that were committed on their own, "+
		"so what was applied is unknown: return the error instead of going on: %w", name, f, err), dbop.Ambiguous)
}

// savepointGone reports whether err says that the savepoint name does not
// exist: MySQL's and MariaDB's 1305 ER_SP_DOES_NOT_EXIST, "SAVEPOINT name
// does not exist", which go-sql-driver/mysql reports as "Error 1305
// (42000): …" (this package links no driver, so it reads the message); or
// SQLite's "no such savepoint: name" (modernc.org/sqlite prefixes "SQL
// logic error: ", mattn/go-sqlite3 returns the message alone).
func savepointGone(f sqldialect.Family, name string, err error) bool {
	msg := err.Error()
	switch f {
	case sqldialect.MySQL, sqldialect.MariaDB:
		return strings.Contains(msg, "Error 1305 (") || strings.Contains(msg, "Error 1305:") ||
			strings.Contains(msg, "SAVEPOINT "+name+" does not exist")
	case sqldialect.SQLite:
		return strings.Contains(msg, "no such savepoint: "+name)
	}
	return false
}

// InSavepoint returns a decorator that runs each attempt of the decorated
// operation in a savepoint of tx ([scopes.InSavepoint]), the name quoted as
// d wants it ("name" on PostgreSQL and SQLite, `name` on MySQL and
// MariaDB), with the [ClassifyBy] classifiers and then the dialect's
// classifier wired in. Listed after [dbop.WithRetry], it retries a step at
// a savepoint of tx, keeping the transaction's earlier work:
//
//	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { … tx.ExecContext(ctx, …) … })
//	n, err := step.With(dbop.WithRetry(backoff), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
//
// Run it with the context [InTx] gave fn. Statement-level errors (lock wait
// timeouts, statement time limits) are retried at the savepoint;
// transaction-level ones (deadlocks, BUSY_SNAPSHOT, lost connections) pass
// out untouched, without a ROLLBACK TO, to the retry around InTx. On MySQL
// and MariaDB that matters: a deadlock ends the whole transaction and its
// savepoints, so ROLLBACK TO would fail with 1305 (docs/backends.md §3.2).
// A step that goes on after such a deadlock without returning it (a rows
// loop that never checks rows.Err()) runs its later statements on their
// own, each committed at once; the scope's RELEASE or ROLLBACK TO then
// finds no savepoint, and the error is Ambiguous, so that the transaction
// is not run again. The same holds on SQLite after an interrupted write.
// It panics if tx is nil, d is invalid or an option is nil.
func InSavepoint(tx *sql.Tx, d Dialect, opts ...SavepointOption) dbop.Decorator {
	if tx == nil {
		panic("sqldb: InSavepoint: the transaction tx is a nil *sql.Tx")
	}
	mustBeValid(d, "InSavepoint")
	c := newSavepointConfig(opts)
	return scopes.InSavepoint(savepoints{tx: tx, family: d.Family},
		c.classifyBy(d),
		scopes.RollbackTimeout(c.rollbackTimeout),
	)
}
