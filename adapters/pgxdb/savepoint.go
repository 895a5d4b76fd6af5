package pgxdb

import (
	"context"
	"fmt"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Savepoints returns the [scopes.Savepointer] of tx: it runs SAVEPOINT,
// ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT in tx, with the name quoted
// as an identifier (pgx.Identifier.Sanitize), so any name is safe. It does
// not use pgx's own nested transactions (tx.Begin), whose savepoint names
// are pgx's to choose (docs/backends.md §2.10). It is what [InSavepoint]
// uses, for code that calls [scopes.InSavepoint] directly. It panics if tx
// is nil.
func Savepoints(tx pgx.Tx) scopes.Savepointer {
	if isNil(tx) {
		panic("pgxdb: Savepoints: the transaction is nil" + nilType(tx))
	}
	return savepointer{tx}
}

type savepointer struct{ tx pgx.Tx }

func (s savepointer) Savepoint(ctx context.Context, name string) error {
	return s.exec(ctx, "SAVEPOINT ", name)
}

func (s savepointer) RollbackTo(ctx context.Context, name string) error {
	return s.exec(ctx, "ROLLBACK TO SAVEPOINT ", name)
}

func (s savepointer) Release(ctx context.Context, name string) error {
	return s.exec(ctx, "RELEASE SAVEPOINT ", name)
}

// exec runs stmt for the savepoint name. A connection busy before it holds
// rows or a batch the step left open, and pgx sends nothing on it ("conn
// busy"): the error names that mistake, as InTx's COMMIT does (leftOpen).
func (s savepointer) exec(ctx context.Context, stmt, name string) error {
	conn := s.tx.Conn()
	busy := conn != nil && conn.PgConn().IsBusy()
	_, err := s.tx.Exec(ctx, stmt+pgx.Identifier{name}.Sanitize())
	if busy && err != nil && pgconn.SafeToRetry(err) {
		return fmt.Errorf("pgxdb: %s%s was not sent: the step returned with rows or a batch left open on the transaction's connection "+
			"(close pgx.Rows and pgx.BatchResults before returning): %w", stmt, name, err)
	}
	return err
}

// InSavepoint returns [scopes.InSavepoint] over [Savepoints](tx) with
// [Classifier] wired in: listed after [dbop.WithRetry], it runs each
// attempt of a step in a savepoint of tx, so a statement-level failure (a
// lock timeout, 55P03; a statement timeout, 57014; docs/backends.md §1.7)
// is rolled back to the savepoint and retried without losing the
// transaction's earlier work, while a transaction-level one (40001, 40P01,
// a lost connection) travels out untouched to the retry around the
// transaction:
//
//	step.With(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx, pgxdb.LockTimeout(100*time.Millisecond))).Run(ctx)
//
// Run the step with the context [InTx] handed to fn. A [ClassifyBy] among
// opts is asked before Classifier. [LockTimeout] and [StatementTimeout]
// apply to each attempt inside its savepoint: set at its start with
// set_config(…, true), which is SET LOCAL; undone by the ROLLBACK TO
// SAVEPOINT of a failed attempt (§1.4); and set back to their earlier
// values before the RELEASE SAVEPOINT of a successful one, so the step's
// limits do not leak into the rest of the transaction. Like InTx's, they are
// set as given, over whatever is in force (you chose them), and lowered to
// what the context's deadline leaves, so that a longer one never lifts the
// limit InTx derived from it.
//
// With a deadline on a step attempt's context earlier than the one [InTx]
// derived the transaction's own limits from (any, when InTx's context had none;
// a [dbop.WithTimeout] listed between the retry and InSavepoint; listed after
// InSavepoint, inside the savepoint, it sets its deadline too late), or, in a
// transaction you began yourself, a deadline a WithTimeout listed before
// InSavepoint in the same pipeline set (your own context's deadline alone sets
// nothing), InSavepoint sets server-side limits derived from it for that
// attempt (statement_timeout and lock_timeout, with set_config(…, true)), so
// that the server, not the driver closing the connection, ends a statement that
// would outlast it, and the step is retried at its savepoint while the caller's
// transaction goes on. A limit never rises: each is the smaller of the derived
// value and the one in force (InTx's options, a role's or the session's
// default), which the server computes in the statement that sets it
// (docs/backends.md §1.19). The earlier values are set back however the attempt
// ends: after a successful one before its RELEASE SAVEPOINT, as set_config(…,
// true) inside a savepoint outlives RELEASE; after a failed or panicking one
// its ROLLBACK TO SAVEPOINT has undone them, and nothing is sent on the aborted
// transaction. It costs a round trip to set them and one to set them back per
// such attempt; on a slow link, where the setting round trip ate more than a
// quarter of the margin kept before the deadline, they are set back and set
// again. A deadline no earlier than InTx's is met by the limits InTx set, and a
// dbop.HotSpot's server deadline is InTx's too: then, and without a deadline,
// InSavepoint sends nothing more. The limits bound each statement (and lock
// wait), not the step: a step whose several statements together outlast the
// deadline, or an attempt that starts with a few milliseconds left (a retry's
// last under a deadline around it), can still have its connection closed by the
// driver, which ends the caller's transaction; nothing is applied twice, and
// the transaction's owner decides what follows.
//
// The Decorator is safe for concurrent use, but tx serves one goroutine at
// a time. It panics if tx is nil or an option is nil.
func InSavepoint(tx pgx.Tx, opts ...SavepointOption) dbop.Decorator {
	if isNil(tx) {
		panic("pgxdb: InSavepoint: the transaction is nil" + nilType(tx))
	}
	c := newSavepointConfig(opts)
	return scopes.InSavepoint(Savepoints(tx),
		scopes.ClassifyBy(c.classifier),
		scopes.RollbackTimeout(c.rollbackTimeout),
		savepointLimits(tx, c.settings, c.rollbackTimeout),
	)
}

// savepointLimits returns the option that makes InSavepoint's scope run
// each attempt through resolve.SavepointLimits inside its savepoint
// (txmark.InsideSavepoint): the settings given and,
// when the attempt's context has a deadline earlier than the one InTx
// derived the transaction's limits from (resolve.StepLimit),
// statement_timeout and lock_timeout lowered to what it leaves, never
// above the values in force, set with set_config(name, value, true), which
// is SET LOCAL, by the statement that reads the values they replace. After
// a successful step the earlier values are set back, so that the step's
// limits do not survive the RELEASE SAVEPOINT and last until the end of the
// caller's transaction; after a failed one the ROLLBACK TO SAVEPOINT that
// follows undoes them with everything else the attempt did
// (docs/backends.md §1.4). A failed restore after a successful step is
// returned as the step's error. With neither settings nor such a deadline
// it sends nothing.
func savepointLimits(tx pgx.Tx, settings []setting, restoreTimeout time.Duration) scopes.SavepointOption {
	names, millis := distinctMillis(settings)
	stx := resolve.SavepointTx{
		Who: "pgxdb",
		Query: func(ctx context.Context, query string, args ...any) ([]string, error) {
			rows, err := tx.Query(ctx, query, args...)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
				var prev, set string
				err := row.Scan(&prev, &set)
				return prev, err
			})
		},
		Names:  names,
		Millis: millis,
	}
	return txmark.InsideSavepoint(func(ctx context.Context, next func(context.Context) error) error {
		return resolve.SavepointLimits(ctx, sqldialect.Postgres, stx, restoreTimeout, next)
	}).(scopes.SavepointOption)
}
