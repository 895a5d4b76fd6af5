package pgxdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// The statements of CockroachDB's client-side retry protocol
// (docs/backends.md §6.2).
const (
	savepointRestartSQL  = "SAVEPOINT cockroach_restart"
	releaseRestartSQL    = "RELEASE SAVEPOINT cockroach_restart"
	rollbackToRestartSQL = "ROLLBACK TO SAVEPOINT cockroach_restart"
)

// CockroachRestart makes each attempt of [InTx] follow CockroachDB's
// client-side retry protocol (docs/backends.md §6.2), restarting the
// transaction in place after a 40001 instead of beginning a new one:
//
//	BEGIN
//	SAVEPOINT cockroach_restart
//	SET LOCAL …                             (the per-attempt settings, if any)
//	fn
//	RELEASE SAVEPOINT cockroach_restart     (commits, on CockroachDB)
//	COMMIT
//
// When fn or the RELEASE fails with SQLSTATE 40001 (or CockroachDB's legacy
// CR000, found as crdb.ExecuteInTx finds them, §6.4), the transaction runs
// ROLLBACK TO SAVEPOINT cockroach_restart, applies the per-attempt settings
// again and runs fn again, reads included, in the same transaction. A
// restart keeps the transaction's identity; on CockroachDB that keeps its
// priority, so a transaction that keeps losing conflicts ends up winning
// them.
//
// The restarts are driven by one retry, dbop.WithRetry(dbop.Constant(0),
// opts...), around fn inside the transaction: [dbop.MaxAttempts] bounds
// them (the first run included; the default is WithRetry's), and
// [dbop.OnRetry], [dbop.Observe], [dbop.Named], [dbop.WithBudget],
// [dbop.MaxElapsed] and [dbop.WithRand] apply as to any retry. It restarts
// at once, with no backoff: waiting would hold the transaction's locks
// (crdb.ExecuteInTx does not wait either, §6.4). Each restart is certified
// by the ROLLBACK TO SAVEPOINT that undid the failed run, which is what
// lets a retry run again inside a transaction (see "Safety" in the package
// documentation); any other error, and a 40001 once the restarts are used
// up, leaves the transaction: InTx rolls it back, and a [dbop.WithRetry]
// around InTx begins a new one, with its own backoff and limits.
//
// RELEASE SAVEPOINT cockroach_restart is CockroachDB's commit point, so its
// errors are judged like COMMIT's: a network or context error after the
// RELEASE was sent is an [*scopes.AmbiguousCommitError] with the verdict
// [dbop.Ambiguous], as crdb.ExecuteInTx reports it (§6.3, §6.4); an error
// raised before anything was sent, or a server error answering the
// RELEASE, means nothing was committed.
//
// # On PostgreSQL
//
// The protocol runs unchanged on PostgreSQL, where cockroach_restart is an
// ordinary savepoint and COMMIT is the commit point. But a PostgreSQL
// REPEATABLE READ or SERIALIZABLE transaction keeps its snapshot across
// ROLLBACK TO SAVEPOINT, so a restart reads the same stale rows and fails
// with 40001 again (§1.6, §6.5): only a new transaction heals it
// (TestCockroachRestart shows it). On PostgreSQL, leave CockroachRestart
// out and rely on the retry around InTx.
//
// If several CockroachRestart options are given, the last wins. It panics
// if an option is nil, or on what dbop.WithRetry panics on.
func CockroachRestart(opts ...dbop.RetryOption) TxOption {
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("pgxdb: CockroachRestart: option %d of %d is nil", i+1, len(opts)))
		}
	}
	retry := dbop.WithRetry(dbop.Constant(0), opts...)
	return txOnly(func(c *config) { c.restart = retry })
}

// restartKey identifies one transaction to the restart scope's AroundTx.
// It is not empty, so that two of them are never the same pointer.
type restartKey struct{ tx pgx.Tx }

// runRestarts runs fn in tx under CockroachDB's restart protocol, as
// crdb.ExecuteInTx does (docs/backends.md §6.4), with three differences:
// the restarts are driven by the retry CockroachRestart built, whose limits
// end them, after which the 40001 goes out to the retry around InTx; a
// RELEASE error is judged like a COMMIT error (commitOutcome) rather than
// always ambiguous; and only a 40001 or CR000 restarts.
func runRestarts[T any](ctx context.Context, c *config, tx pgx.Tx, setSQL string, fn func(context.Context, pgx.Tx) (T, error)) (T, error) {
	key := &restartKey{tx}
	placed := false // SAVEPOINT cockroach_restart has run
	scope := dbop.AroundTx(key, func(ctx context.Context, next func(context.Context) error) error {
		if !placed {
			// Once, before any other statement of fn: CockroachDB wants the
			// restart savepoint outermost (§6.2), and ROLLBACK TO leaves it
			// in place for the next run (§1.3).
			if _, err := tx.Exec(ctx, savepointRestartSQL); err != nil {
				return c.doomRestart(key, c.classify(fmt.Errorf("pgxdb: %s: %w", savepointRestartSQL, err)))
			}
			placed = true
		}
		return c.restartRun(ctx, tx, key, setSQL, next)
	})
	txmark.Certify(scope) // its Undone marks certify the ROLLBACK TO
	op := dbop.Op[T](func(ctx context.Context) (T, error) { return fn(ctx, tx) })
	return op.With(c.restart, scope).Run(ctx)
}

// restartRun runs one run of fn (next) after the restart savepoint: the
// settings (setSQL, the attempt's), fn, and RELEASE SAVEPOINT
// cockroach_restart. It certifies a
// run undone after a 40001 (txmark.Undone), so that the retry of
// CockroachRestart may restart in place, and marks any other error that a
// retry could act on as dooming the transaction (txmark.Doomed), so that it
// goes out to InTx.
func (c *config) restartRun(ctx context.Context, tx pgx.Tx, key *restartKey, setSQL string, next func(context.Context) error) error {
	if err := applySettings(ctx, tx, setSQL); err != nil {
		return c.doomRestart(key, c.classify(err))
	}
	// fn runs with a state of its own, as in a transaction of its own: a
	// savepoint step inside it that sees the transaction doomed records it
	// there, and the ROLLBACK TO below ends that doom with the run.
	state := new(txmark.State)
	rctx := txmark.WithState(ctx, state)
	err := next(rctx)
	if err == nil {
		err = state.Doomed() // fn swallowed a step's error that doomed the transaction
	}
	if n := txmark.CommitsOf(rctx); err != nil && n.Count() > 0 && txmark.CommitIn(err) == nil {
		// fn ran a transaction of its own that committed: the ROLLBACK TO
		// below does not undo it, and the restart must not run fn again
		// (dbop.ErrAlreadyCommitted), as scopes.InTx tells the retry
		// around it.
		err = &txmark.After{Err: err}
	}
	released := false
	if err == nil {
		err = sendCommit(tx, func() error {
			_, err := tx.Exec(ctx, releaseRestartSQL)
			return err
		})
		if err == nil {
			return nil
		}
		released = true
	}
	if restartable(err) {
		if _, rbErr := tx.Exec(ctx, rollbackToRestartSQL); rbErr != nil {
			return c.doomRestart(key, dbop.Classify(fmt.Errorf("%w (%s: %w)", err, rollbackToRestartSQL, rbErr), dbop.RetryTransaction))
		}
		return &txmark.Mark{Kind: txmark.Undone, Key: key, Err: undone(c.classify(err))}
	}
	if released {
		return c.doomRestart(key, c.releaseError(err))
	}
	return c.doomRestart(key, c.classify(err))
}

// restartable reports whether err asks for a restart: SQLSTATE 40001 or
// CockroachDB's legacy CR000, found as crdb.ExecuteInTx finds them, through
// errors.As on interface{ SQLState() string } (docs/backends.md §6.4).
func restartable(err error) bool {
	se, ok := errors.AsType[interface {
		error
		SQLState() string
	}](err)
	return ok && (se.SQLState() == "40001" || se.SQLState() == "CR000")
}

// doomRestart marks err, when a retry could act on it, as dooming the
// transaction key stands for, so that the retry of CockroachRestart does
// not run fn again and err goes out to InTx. An error no retry acts on is
// returned as it is.
func (c *config) doomRestart(key *restartKey, err error) error {
	switch dbop.VerdictOf(err) {
	case dbop.RetryStatement, dbop.RetryTransaction, dbop.Ambiguous:
		return &txmark.Mark{Kind: txmark.Doomed, Key: key, Err: err}
	}
	return err
}

// releaseError judges an error from RELEASE SAVEPOINT cockroach_restart,
// CockroachDB's commit point, as a COMMIT error is judged. On PostgreSQL,
// where RELEASE does not commit, an ambiguous reading is pessimistic but
// safe: the adapter cannot tell the servers apart.
func (c *config) releaseError(err error) error {
	err = fmt.Errorf("pgxdb: %s: %w", releaseRestartSQL, err)
	switch v := c.commitVerdict(err); v {
	case dbop.Ambiguous:
		return dbop.Classify(&scopes.AmbiguousCommitError{Err: err}, dbop.Ambiguous)
	case dbop.Unclassified:
		return c.classify(err)
	default:
		return dbop.Classifier(func(error) dbop.Verdict { return v }).Classify(err)
	}
}

// undone returns err, the error of a run that ROLLBACK TO SAVEPOINT
// cockroach_restart undid, for the restart. When savepoint steps inside fn
// marked err as dooming the transaction, those marks no longer hold: the
// rollback took the transaction back to before the steps. The retry would
// still read them, and refuse to run those steps in the restarted
// transaction; so err is then hidden behind a *restartedError, which
// errors.Is and errors.As see through but the marks do not, with its
// verdict attached again. A commit a Then or All inside fn recorded
// (txmark.After) is not undone by the rollback — it was another
// transaction's — and stays in sight: the restart must not run it again.
func undone(err error) error {
	if len(txmark.DoomKeys(err)) == 0 {
		return err
	}
	var hidden error = &restartedError{err}
	if a := txmark.CommitIn(err); a != nil {
		hidden = &txmark.After{Err: hidden}
	}
	return dbop.Classify(hidden, dbop.VerdictOf(err))
}

// restartedError is the error of a run undone by a restart whose chain
// holds marks of savepoint steps inside it; see undone. It reaches err
// through Is and As, not Unwrap, so the marks stay out of sight.
type restartedError struct{ err error }

func (e *restartedError) Error() string        { return e.err.Error() }
func (e *restartedError) Is(target error) bool { return errors.Is(e.err, target) }
func (e *restartedError) As(target any) bool   { return errors.As(e.err, target) }
