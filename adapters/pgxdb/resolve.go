package pgxdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ResolveCommit makes [InTx] find out what became of a COMMIT whose answer
// was lost — the connection broke after COMMIT was sent — instead of
// returning an ambiguous error (see [scopes.ResolveCommit]):
//
//   - Just before COMMIT, in a round trip of its own, it reads the
//     transaction's id (pg_current_xact_id_if_assigned(), PostgreSQL 13+),
//     the backend's pid, the identity of the server (its start time and
//     the pids of its auxiliary processes, which a crash-restart
//     replaces) and the transaction's synchronous_commit. A read inside
//     the COMMIT's round trip would be lost with it (docs/backends.md
//     §8.8). A transaction begun READ ONLY skips the read. A transaction
//     that had already failed (fn did not return a statement's error, so
//     the read fails with 25P02) is committed as without ResolveCommit,
//     and InTx returns the error it returns without it.
//   - When the answer is lost, it opens a new connection with the
//     configuration of db (a *pgxpool.Pool's ConnConfig, or the
//     connection's own; the pool's BeforeConnect and AfterConnect hooks do
//     not run) and asks pg_xact_status(id): committed → InTx returns fn's
//     value and a nil error; aborted → an [*scopes.AbortedCommitError],
//     retry-transaction, which a retry runs again without
//     [dbop.Idempotent]; in progress → it ends the old backend with
//     pg_terminate_backend (matched by pid and transaction id, so no other
//     session is touched), which guarantees that a COMMIT still on its way
//     never runs, and asks again until the answer is final.
//   - Committed is reported only once the commit is as durable as its
//     acknowledgement would have made it: under synchronous replication
//     a cancelled wait for the standbys leaves a commit on the primary
//     alone, so the resolver commits a transaction of its own under the
//     same synchronous_commit (an empty logical decoding message with
//     the prefix "dbop"), whose commit waits for the standbys past the
//     lost one; without synchronous standbys it costs one round trip.
//     Under synchronous_commit off or local it is skipped.
//   - A transaction that has no id yet gets one in that round trip: one
//     that wrote no row may still act at COMMIT (a NOTIFY's notification
//     is sent then), so its outcome is asked as any other's. On a standby,
//     where no id can be assigned, and for a READ ONLY transaction, which
//     reads none, nothing was written: the lost answer changes nothing,
//     and InTx returns fn's value — except under SERIALIZABLE (given with
//     Isolation, or not given, when the server's default may be it),
//     where even a read-only transaction can fail at COMMIT, so it is
//     retried instead (it wrote nothing, so running it again is safe).
//     Do not NOTIFY from a READ ONLY transaction whose answer you need
//     resolved.
//   - A server that cannot be reached, one that is not the server that
//     ran the transaction (its identity differs: a failover, a restart, a
//     crash-restart, after which transaction ids may be handed out again),
//     or a commit no synchronous standby confirmed within the bound leaves
//     the outcome unknown: the [*scopes.AmbiguousCommitError] of old, with
//     the reason in its Resolve field.
//
// The resolution runs without the caller's cancellation, bounded by
// [RollbackTimeout]. Report resolutions with [scopes.OnCommitResolved].
//
// It costs one round trip per read-write transaction, whether or not an
// answer is ever lost: about 16 % of an uncontended three-statement
// transaction on a local server (docs/ambiguity.md). It is therefore not
// on by default.
//
// db must be a *pgxpool.Pool, a *pgxpool.Conn or a *pgx.Conn, whose
// configuration the new connection copies; InTx panics otherwise, and
// when CockroachRestart is given too: CockroachDB has no pg_xact_status,
// and its commit point is the RELEASE of cockroach_restart.
func ResolveCommit() TxOption {
	return txOnly(func(c *config) { c.resolve = true })
}

// resolver is what the transactions of one InTx need to resolve a lost
// COMMIT answer. It is immutable once built.
type resolver struct {
	connect      func(ctx context.Context) (*pgx.Conn, error)
	serializable bool // the transactions are SERIALIZABLE
}

// newResolver builds the resolver of InTx or Do, named caller, over db,
// panicking when db has no configuration to copy or CockroachRestart is
// given.
func newResolver(caller string, db Beginner, c *config) *resolver {
	if c.restart != nil {
		panic("pgxdb: " + caller + ": ResolveCommit does not work with CockroachRestart: CockroachDB has no pg_xact_status (see docs/ambiguity.md)")
	}
	var cfg *pgx.ConnConfig
	switch db := db.(type) {
	case *pgxpool.Pool:
		cfg = db.Config().ConnConfig
	case *pgxpool.Conn:
		cfg = db.Conn().Config().Copy()
	case *pgx.Conn:
		cfg = db.Config().Copy()
	default:
		panic(fmt.Sprintf("pgxdb: %s: ResolveCommit needs a *pgxpool.Pool, *pgxpool.Conn or *pgx.Conn, whose configuration it copies to ask on another connection, not a %T", caller, db))
	}
	level := isoLevel(c.txOptions.IsoLevel) // as the server reads it
	return &resolver{
		connect: func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg.Copy()) },
		// Not given, the server's default (default_transaction_isolation)
		// may be SERIALIZABLE.
		serializable: level == pgx.Serializable || level == "",
	}
}

// readID reads, before COMMIT, what the resolution needs. If the read
// fails, COMMIT is not sent: the transaction is rolled back (InTx does not
// roll back after a failed Commit) and the error, a *beforeCommitError,
// is judged "not committed". The read runs in the connection's own query
// mode: under pgx's default, a prepared statement whose plan is kept,
// which the simple protocol would plan again in every transaction.
//
// A read that fails with 25P02 found the transaction already failed: fn
// did not return a statement's error (resolve.FailedBeforeCommit). That is
// no error of the read's: t.failed is set and readID returns nil, so that
// Commit sends COMMIT as without ResolveCommit, and the caller gets the
// error it gets without the option ("the transaction had failed before
// COMMIT", pgx.ErrTxCommitRollback, not retried), not one that blames the
// read or the server's version.
func (t *txn) readID(ctx context.Context) error {
	err := t.Tx.QueryRow(ctx, resolve.PGTxSQL).Scan(t.pg.Dest()...)
	switch {
	case err == nil:
		t.idRead = true
		return nil
	case resolve.FailedBeforeCommit(err):
		t.failed = true
		return nil
	case errors.Is(err, pgx.ErrTxClosed):
		// fn committed or rolled back the transaction: not a read that
		// failed before COMMIT, an outcome InTx cannot know.
		return t.endedInFn(err)
	}
	_ = t.Tx.Rollback(ctx)
	return &beforeCommitError{fmt.Errorf("pgxdb: ResolveCommit: reading the transaction id (PostgreSQL 13 or later): %w", err)}
}

// ResolveCommit implements scopes.CommitResolver (see the option
// ResolveCommit).
func (t *txn) ResolveCommit(ctx context.Context, _ error) (scopes.Resolution, error) {
	switch {
	case t.res == nil:
		return scopes.Unresolved, errors.New("pgxdb: ResolveCommit was not given")
	case t.fnEnded:
		// Before readOnly: fn may have written after its end, in
		// autocommit on tx.Conn() (endedByStatement).
		return scopes.Unresolved, errors.New("pgxdb: fn ended the transaction itself, and its id was not read")
	case t.readOnly, t.idRead && !t.pg.Written():
		if t.res.serializable {
			return scopes.Aborted, nil
		}
		return scopes.NotWritten, nil
	case t.failed:
		// Its COMMIT could only roll back; a lost answer to it is
		// ambiguous without ResolveCommit, and stays so, with the reason.
		return scopes.Unresolved, fmt.Errorf("pgxdb: %w", resolve.ErrFailedBeforeCommit)
	case !t.idRead:
		return scopes.Unresolved, errors.New("pgxdb: the transaction id was not read")
	}
	conn, err := t.res.connect(ctx)
	if err != nil {
		return scopes.Unresolved, fmt.Errorf("pgxdb: connecting to ask pg_xact_status: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return t.pg.Resolve(ctx, resolve.PGConn{
		QueryRow: func(ctx context.Context, query string, args []any, dest ...any) error {
			return conn.QueryRow(ctx, query, args...).Scan(dest...)
		},
		Exec: func(ctx context.Context, query string) (int64, error) {
			_, err := conn.Exec(ctx, query, pgx.QueryExecModeSimpleProtocol)
			return 0, err
		},
	})
}

// beforeCommitError is the error of a statement InTx runs before COMMIT
// (the read of ResolveCommit): COMMIT was not sent, so nothing was
// committed, and the error is classified as any other.
type beforeCommitError struct{ err error }

func (e *beforeCommitError) Error() string { return e.err.Error() }
func (e *beforeCommitError) Unwrap() error { return e.err }
