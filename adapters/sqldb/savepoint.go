package sqldb

import (
	"context"
	"database/sql"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
)

// Savepoints returns a [scopes.Savepointer] that runs SAVEPOINT, ROLLBACK TO
// SAVEPOINT and RELEASE SAVEPOINT in tx, quoting the name as d wants it:
// "name" for PostgreSQL and SQLite, `name` for MySQL and MariaDB. It panics
// if tx is nil or d is invalid.
func Savepoints(tx *sql.Tx, d Dialect) scopes.Savepointer {
	if tx == nil {
		panic("sqldb: Savepoints: the transaction tx is a nil *sql.Tx")
	}
	d.mustBeValid("Savepoints")
	return savepoints{tx: tx, d: d}
}

type savepoints struct {
	tx *sql.Tx
	d  Dialect
}

func (s savepoints) Savepoint(ctx context.Context, name string) error {
	_, err := s.tx.ExecContext(ctx, "SAVEPOINT "+s.d.quote(name))
	return err
}

func (s savepoints) RollbackTo(ctx context.Context, name string) error {
	_, err := s.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+s.d.quote(name))
	return err
}

func (s savepoints) Release(ctx context.Context, name string) error {
	_, err := s.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+s.d.quote(name))
	return err
}

// InSavepoint returns [scopes.InSavepoint] over [Savepoints](tx, d), with the
// dialect's classifier ([Dialect.Classify]) wired in after any
// [scopes.ClassifyBy] among opts. Listed after [dbop.WithRetry], it retries
// a step at a savepoint of tx, keeping the transaction's earlier work:
//
//	step := dbop.Op[int64](func(ctx context.Context) (int64, error) { … tx.ExecContext(ctx, …) … })
//	n, err := step.With(dbop.WithRetry(backoff), sqldb.InSavepoint(tx, sqldb.MariaDB)).Run(ctx)
//
// Run it with the context [InTx] gave fn. Statement-level errors (lock wait
// timeouts, statement time limits) are retried at the savepoint;
// transaction-level ones (deadlocks, BUSY_SNAPSHOT, lost connections) pass
// out untouched, without a ROLLBACK TO, to the retry around InTx. On MySQL
// and MariaDB that matters: a deadlock ends the whole transaction and its
// savepoints, so ROLLBACK TO would fail with 1305 (see the package
// documentation). It panics as Savepoints and scopes.InSavepoint do.
func InSavepoint(tx *sql.Tx, d Dialect, opts ...scopes.Option) dbop.Decorator {
	sp := Savepoints(tx, d)
	all := append(append([]scopes.Option(nil), opts...), scopes.ClassifyBy(d.Classify))
	return scopes.InSavepoint(sp, all...)
}
