package pgxdb

import (
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Classifier is the classifier of errors that come back through pgx v5: a
// [dbop.Classifier], which [InTx], [Do] and [InSavepoint] use after any
// [ClassifyBy] classifiers, and which code outside them can pass to
// [dbop.ClassifyBy] (or, for pgx's database/sql driver, to
// sqldb.ClassifyBy). It returns the first verdict other than
// [dbop.Unclassified] of, in this order:
//
//  1. [classifiers.CockroachDB], which includes [classifiers.Postgres]: the
//     SQLSTATE codes, pgconn's SafeToRetry capability and its "conn busy";
//  2. pgconn.ErrConnClosed: RetryTransaction;
//  3. [classifiers.Network] and [classifiers.Context], the transport and
//     context errors a broken pgx connection returns;
//  4. last, pgx.ErrTxCommitRollback and pgx.ErrTxClosed: NotRetryable.
//
// The rules of steps 2 and 4 need pgx's own error values, so they live
// here rather than in the driver-free package classifiers:
//
//   - pgconn.ErrConnClosed: pgx had already closed the connection, so the
//     transaction on it is gone; only the whole transaction, on another
//     connection, can succeed (docs/backends.md §2.3, §2.8).
//   - pgx.ErrTxCommitRollback is COMMIT answered by ROLLBACK: the
//     transaction had already failed, and nothing was committed, but the
//     error that failed it is not part of the answer (§1.2, §2.11), so
//     whether trying again can help is unknown, and it is not retried
//     blindly. fn's own error, when InTx has it, is what to classify.
//   - pgx.ErrTxClosed ("tx is closed") is a statement, COMMIT or ROLLBACK on
//     a pgx.Tx already committed or rolled back (§2.11), such as a COMMIT
//     of fn's own before InTx's: a bug each attempt would repeat.
//     Unclassified would be final as well; the explicit verdict stops a
//     classifier asked after this one from calling it retryable.
//
// Both come after every other rule, so that an error joined to them (a
// deadline of a per-attempt [dbop.WithTimeout], say) decides first.
//
// Any other error is Unclassified. Classifier is a function, not a
// variable, so that nothing can change it at run time; it is safe for
// concurrent use.
func Classifier(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if v := classifiers.CockroachDB(err); v != dbop.Unclassified {
		return v
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		return dbop.RetryTransaction
	}
	if v := classifiers.Network(err); v != dbop.Unclassified {
		return v
	}
	if v := classifiers.Context(err); v != dbop.Unclassified {
		return v
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) || errors.Is(err, pgx.ErrTxClosed) {
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
