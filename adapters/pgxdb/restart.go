package pgxdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// The statements of CockroachDB's client-side retry protocol (DB-REFERENCE
// §5).
const (
	savepointRestartSQL  = "SAVEPOINT cockroach_restart"
	releaseRestartSQL    = "RELEASE SAVEPOINT cockroach_restart"
	rollbackToRestartSQL = "ROLLBACK TO SAVEPOINT cockroach_restart"
)

// runRestarts runs fn in tx under CockroachDB's restart protocol, as
// crdb.ExecuteInTx does (DB-REFERENCE §5), with two differences: the number
// of in-place restarts is bounded by c.maxRestarts, after which the 40001
// goes out to the retry around InTx, and a RELEASE error is judged like a
// COMMIT error (CommitOutcome) rather than always ambiguous.
func runRestarts[T any](ctx context.Context, c *config, tx pgx.Tx, fn func(context.Context, pgx.Tx) (T, error)) (T, error) {
	var zero T
	var prev time.Duration
	for n := 1; ; n++ {
		v, err := fn(ctx, tx)
		released := false
		if err == nil {
			err = sendCommit(tx, func() error {
				_, err := tx.Exec(ctx, releaseRestartSQL)
				return err
			})
			if err == nil {
				return v, nil
			}
			released = true
		}
		if !restartable(err) {
			if released {
				return zero, c.releaseError(err)
			}
			return zero, err
		}
		if n > c.maxRestarts {
			return zero, err // restarts used up: the whole transaction again
		}
		if _, rbErr := tx.Exec(ctx, rollbackToRestartSQL); rbErr != nil {
			return zero, dbop.Classify(fmt.Errorf("%w (%s: %w)", err, rollbackToRestartSQL, rbErr), dbop.RetryTransaction)
		}
		// Roll back first, then wait: the failed attempt's locks are not
		// held during the wait.
		delay := max(c.restartBackoff.Delay(n, prev, rand.Uint64()), 0)
		if werr := wait(ctx, delay); werr != nil {
			return zero, fmt.Errorf("%w (restart abandoned: %w)", err, werr)
		}
		if serr := c.applySettings(ctx, tx); serr != nil {
			return zero, serr
		}
		prev = delay
	}
}

// restartable reports whether err asks for a restart: SQLSTATE 40001 or
// CockroachDB's legacy CR000, found as crdb.ExecuteInTx finds them, through
// errors.As on interface{ SQLState() string } (DB-REFERENCE §5).
func restartable(err error) bool {
	se, ok := errors.AsType[interface {
		error
		SQLState() string
	}](err)
	return ok && (se.SQLState() == "40001" || se.SQLState() == "CR000")
}

// releaseError judges an error from RELEASE SAVEPOINT cockroach_restart,
// CockroachDB's commit point, as CommitOutcome judges a COMMIT error. On
// PostgreSQL, where RELEASE does not commit, an ambiguous reading is
// pessimistic but safe: the adapter cannot tell the servers apart.
func (c *config) releaseError(err error) error {
	err = fmt.Errorf("pgxdb: %s: %w", releaseRestartSQL, err)
	switch v := c.commitOutcome(err); v {
	case dbop.Ambiguous:
		return dbop.Classify(&scopes.AmbiguousCommitError{Err: err}, dbop.Ambiguous)
	case dbop.Unclassified:
		return err // scopes.InTx classifies it
	default:
		return dbop.Classifier(func(error) dbop.Verdict { return v }).Classify(err)
	}
}

// wait waits d or until ctx is done, and then returns ctx's cause.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
