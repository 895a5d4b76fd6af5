package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func fatal(code, message string) *pgconn.PgError { return severe("FATAL", "FATAL", code, message) }

// severe returns a server error of the given severity, localized
// (lc_messages) and not.
func severe(localized, unlocalized, code, message string) *pgconn.PgError {
	e := dboptest.PgError(code, message)
	e.Severity, e.SeverityUnlocalized = localized, unlocalized
	return e
}

// The errors COMMIT can return, and what they say about the transaction.
var commitErrors = []struct {
	name string
	err  error
	want dbop.Verdict
}{
	{"nil", nil, dbop.Unclassified},
	{"safe to retry: nothing sent", safeErr{safe: true}, dbop.RetryTransaction},
	{"safe to retry, wrapped", fmt.Errorf("commit: %w", safeErr{safe: true}), dbop.RetryTransaction},
	{"context already done before the send", fmt.Errorf("%w: %w", safeErr{safe: true}, context.Canceled), dbop.RetryTransaction},
	{"pgx conn closed: the answer was lost", fmt.Errorf("%w: %w", safeErr{safe: true}, pgconn.ErrConnClosed), dbop.Ambiguous},
	{"not safe to retry", safeErr{safe: false}, dbop.Ambiguous},
	{"commit turned into rollback", pgx.ErrTxCommitRollback, dbop.Unclassified}, // not committed: the classifier decides (NotRetryable)
	{"commit turned into rollback, wrapped", fmt.Errorf("pgxdb: the transaction had failed before COMMIT: %w", pgx.ErrTxCommitRollback), dbop.Unclassified},
	{"conn closed alone", pgconn.ErrConnClosed, dbop.Ambiguous},
	{"40001 at COMMIT under SERIALIZABLE", dboptest.PgError("40001", "could not serialize access due to read/write dependencies among transactions"), dbop.Unclassified},
	{"deferred unique violation", dboptest.PgError("23505", "duplicate key value violates unique constraint"), dbop.Unclassified},
	{"40003 statement completion unknown", dboptest.PgError("40003", "result is ambiguous"), dbop.Ambiguous},
	{"08006 connection failure", dboptest.PgError("08006", "connection failure"), dbop.Ambiguous},
	{"08007 transaction resolution unknown", dboptest.PgError("08007", "transaction resolution unknown"), dbop.Ambiguous},
	{"57P01 admin shutdown", fatal("57P01", "terminating connection due to administrator command"), dbop.Ambiguous},
	{"57P02 crash shutdown", fatal("57P02", "terminating connection because of crash of another server process"), dbop.Ambiguous},
	{"57P01 without severity", dboptest.PgError("57P01", "terminating connection due to administrator command"), dbop.Ambiguous},
	{"another FATAL", fatal("XX000", "internal error"), dbop.Ambiguous},
	{"PANIC", severe("PANIC", "PANIC", "XX000", "internal error"), dbop.Ambiguous},
	{"FATAL under translated messages", severe("ВАЖНО", "FATAL", "XX000", "internal error"), dbop.Ambiguous},
	{"FATAL from a server too old to send it untranslated", severe("FATAL", "", "XX000", "internal error"), dbop.Ambiguous},
	{"an ERROR answering COMMIT", dboptest.PgError("XX000", "internal error"), dbop.Unclassified},
	{"25P03 idle-in-transaction timeout", fatal("25P03", "terminating connection due to idle-in-transaction timeout"), dbop.Unclassified}, // not committed: the classifier decides (RetryTransaction)
	{"unexpected EOF", io.ErrUnexpectedEOF, dbop.Ambiguous},
	{"network error", dboptest.NetworkError(), dbop.Ambiguous},
	{"deadline during COMMIT", context.DeadlineExceeded, dbop.Ambiguous},
}

func TestJudgeCommit(t *testing.T) {
	for _, tt := range commitErrors {
		t.Run(tt.name, func(t *testing.T) {
			if got := pgxdb.JudgeCommit(tt.err); got != tt.want {
				t.Errorf("JudgeCommit(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// What InTx returns, and whether it retries, for each COMMIT error.
func TestInTxCommitErrors(t *testing.T) {
	for _, tt := range commitErrors {
		if tt.err == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			var db fakeDB
			db.FailNext("commit", tt.err)
			op := pgxdb.InTx(&db, func(ctx context.Context, tx pgx.Tx) (int, error) {
				_, err := tx.Exec(ctx, "INSERT a")
				return 1, err
			})
			_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())

			// The verdict InTx attaches: the COMMIT judgement's, or for
			// Unclassified the classifier's.
			want := tt.want
			if want == dbop.Unclassified {
				want = pgxdb.Classifier(tt.err)
			}
			ambiguous := errors.Is(err, scopes.ErrAmbiguousCommit)
			switch want {
			case dbop.RetryTransaction:
				if err != nil || len(db.Log()) != 6 {
					t.Errorf("Run = %v after %v; want a retried transaction that commits", err, db.Log())
				}
				return
			case dbop.Ambiguous:
				if !ambiguous || dbop.VerdictOf(err) != dbop.Ambiguous {
					t.Errorf("error %v (verdict %v) is not an ambiguous commit", err, dbop.VerdictOf(err))
				}
			case dbop.NotRetryable:
				// Not committed, and final (invariant 7: VerdictOf may
				// say Unclassified); a server error answering COMMIT is
				// returned as the driver returned it.
				if ambiguous || !final(dbop.VerdictOf(err)) {
					t.Errorf("error %v: verdict %v, ambiguous %t; want final, not ambiguous", err, dbop.VerdictOf(err), ambiguous)
				}
				if _, isPg := tt.err.(*pgconn.PgError); isPg && err != tt.err {
					t.Errorf("error %v (%T) is not the COMMIT error itself", err, err)
				}
			default:
				if ambiguous || dbop.VerdictOf(err) != want {
					t.Errorf("error %v: verdict %v, ambiguous %t; want %v, not ambiguous", err, dbop.VerdictOf(err), ambiguous, want)
				}
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v does not reach the COMMIT error", err)
			}
			checkLog(t, []string{"begin", "INSERT a", "commit"}, db.Log())
		})
	}
}
