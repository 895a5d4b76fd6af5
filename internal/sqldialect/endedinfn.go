package sqldialect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// EndedInFn judges err, what a transaction's function returned on a
// *sql.Tx (sqldb's, gormdb's), for three cases of a transaction the
// function ended itself, committing it or not, which only its end reveals
// (the scope's COMMIT finds the others) and whose outcome is unknown
// (docs/backends.md §10.3):
//
//   - it returned nil after its context ended: the scope would roll back,
//     find the transaction done, and report the context's error, which a
//     retry runs again after a per-attempt deadline, although the
//     function's own COMMIT may have applied its work;
//   - it returned sql.ErrTxDone, the error of a statement sent on the
//     ended transaction (InSavepoint's RELEASE SAVEPOINT after a step that
//     committed, say), whatever its verdict: a final one, which an
//     OrDefault or a Fallback replaced, or a savepoint scope's
//     RetryTransaction, which a retry ran again, committing the work once
//     per attempt;
//   - it returned a driver's error (one it did not classify itself) that
//     classify calls retryable and commitRules, the dialect's rules for a
//     failed COMMIT, unknown (a lost connection, a context error): it may
//     be its own COMMIT's, whose answer was lost, and the retry would apply
//     the work again. A server's answer that proves nothing was committed
//     (a deadlock, a serialization failure) is retried as before.
//
// Each is returned as an Ambiguous error wrapping ended (the adapter's
// "ended inside fn" error) and err; otherwise nil: the function failed, or
// succeeded. done reports whether the transaction has ended ([TxDone]); it
// is asked only on those paths.
func EndedInFn(ctx context.Context, err, ended error, classify dbop.Classifier, commitRules func(error) dbop.Verdict, done func() bool) error {
	switch {
	case err == nil:
		if ctx.Err() != nil && done() {
			return dbop.Classify(fmt.Errorf("%w (%w): %w", ended, txmark.ContextErr(ctx), sql.ErrTxDone), dbop.Ambiguous)
		}
	case retried(classify, err) && commitRules(err) == dbop.Ambiguous && done():
		return dbop.Classify(fmt.Errorf("%w, and returned an error its COMMIT may have returned: %w", ended, err), dbop.Ambiguous)
	case errors.Is(err, sql.ErrTxDone) && done():
		return dbop.Classify(fmt.Errorf("%w, and returned the error of a statement sent after that: %w", ended, err), dbop.Ambiguous)
	}
	return nil
}

// retried reports whether a retry would run the transaction again after
// err, a driver's error as a COMMIT returns it: one that carries no
// verdict of its own (the function's dbop.Classify is its word), and that
// classify calls retryable.
func retried(classify dbop.Classifier, err error) bool {
	if dbop.VerdictOf(err) != dbop.Unclassified {
		return false
	}
	v := classify(err)
	return v == dbop.RetryTransaction || v == dbop.RetryStatement
}

// TxDone reports whether tx has ended, committed or rolled back, without a
// round trip: Tx.StmtContext asks the transaction for its connection
// first, which fails with sql.ErrTxDone on an ended one, and otherwise
// refuses a statement of another database (a zero *sql.Stmt has none)
// without preparing anything (Go 1.26 database/sql, sql.go:
// Tx.StmtContext, Tx.grabConn, Stmt.Close). Its context is never done, so
// that only the transaction's state answers.
func TxDone(tx *sql.Tx) bool {
	return errors.Is(tx.StmtContext(context.Background(), new(sql.Stmt)).Close(), sql.ErrTxDone)
}
