package sqldb

import (
	"context"
	"database/sql"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/txmark"
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
	return sqldialect.SavepointEnded("sqldb", s.family, name, err)
}

func (s savepoints) Release(ctx context.Context, name string) error {
	_, err := s.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+quote(s.family, name))
	return sqldialect.SavepointEnded("sqldb", s.family, name, err)
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
// savepoints, so ROLLBACK TO would fail with 1305 (docs/backends.md §3.2). A
// step that goes on after such a deadlock without returning it (a rows loop
// that never checks rows.Err()) runs its later statements on their own, each
// committed at once; the scope's RELEASE or ROLLBACK TO then finds no
// savepoint, and the error is Ambiguous, so that the transaction is not run
// again. The same holds on SQLite after an interrupted write.
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
// It panics if tx is nil, d is invalid or an option is nil.
func InSavepoint(tx *sql.Tx, d Dialect, opts ...SavepointOption) dbop.Decorator {
	if tx == nil {
		panic("sqldb: InSavepoint: the transaction tx is a nil *sql.Tx")
	}
	mustBeValid(d, "InSavepoint")
	c := newSavepointConfig(opts)
	opt := []scopes.SavepointOption{c.classifyBy(d), scopes.RollbackTimeout(c.rollbackTimeout)}
	// SQLite gets no limits: a deadline interrupts the statement and keeps
	// the connection (docs/backends.md §5.9).
	if d.Family != sqldialect.SQLite {
		stx := resolve.SavepointTx{
			Who:     "sqldb",
			Session: tx, // InTx records its *sql.Tx (txmark.State.SetSession)
			Exec: func(ctx context.Context, query string) error {
				_, err := tx.ExecContext(ctx, query)
				return err
			},
			Query: func(ctx context.Context, query string, args ...any) ([]string, error) {
				return resolve.FirstColumn(tx.QueryContext(ctx, query, args...))
			},
		}
		opt = append(opt, txmark.InsideSavepoint(func(ctx context.Context, next func(context.Context) error) error {
			return resolve.SavepointLimits(ctx, d.Family, stx, c.rollbackTimeout, next)
		}).(scopes.SavepointOption))
	}
	return scopes.InSavepoint(savepoints{tx: tx, family: d.Family}, opt...)
}
