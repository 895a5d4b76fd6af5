package classifiers

import (
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/dbop-go/dbop"
)

// The commit classifiers judge an error returned by COMMIT: was the
// transaction committed? They return
//
//   - [dbop.Ambiguous] when it may have been: the COMMIT was sent and the
//     answer was lost, or the answer was the session ending;
//   - [dbop.RetryTransaction] when the COMMIT was certainly never sent;
//   - [dbop.Unclassified] when the server (or SQLite's engine) answered the
//     COMMIT with an error, so nothing was committed and the error is to be
//     classified like any other (40001 at the commit of a SERIALIZABLE
//     transaction retries it, a deferred 23505 does not).
//
// They are what the adapters pass to scopes.CommitOutcome, and are exported
// for code that runs its own scopes.InTx. Only the first and last answers
// are safe defaults: an error they do not recognise is Ambiguous
// (docs/backends.md §11).

// PostgresCommit judges a COMMIT error from a PostgreSQL driver — pgx v5,
// native or through its database/sql driver, or lib/pq — by capability,
// without importing one:
//
//	error                                            committed?  verdict
//	pgconn "conn busy" (shape and status text)       no          Unclassified
//	other SafeToRetry() == true                      unknown     Ambiguous
//	driver.ErrBadConn                                unknown     Ambiguous
//	SQLSTATE 25P03                                   no          Unclassified
//	SQLSTATE 40003, class 08, 57P01, 57P02, 57P03    unknown     Ambiguous
//	any other SQLSTATE error                         no          Unclassified
//	anything else                                    unknown     Ambiguous
//
// Why (docs/backends.md §11, §12):
//
//   - "conn busy" is pgconn refusing to send the COMMIT on a connection
//     still busy with another request, typically the rows of a query the
//     function left open: not committed, but a bug in the program, not a
//     broken connection, so it is classified like any other error, and
//     [Postgres] calls it NotRetryable (§2.3).
//   - SafeToRetry is not "nothing sent" at COMMIT: pgx v5.12.0 reports a
//     connection lost while it waits for the answer to a statement sent
//     with the simple protocol — and COMMIT is always sent so — as "conn
//     closed", whose SafeToRetry is true although the server may have
//     committed (§2.4, §2.5; adapters/pgxdb's
//     TestPgxReportsLostAnswerAsConnClosed shows it committing). Telling
//     that error apart from one raised before sending needs pgx's own
//     pgconn.ErrConnClosed, so without it every SafeToRetry error at
//     COMMIT is ambiguous.
//   - lib/pq turns a FATAL answer or io.EOF while reading COMMIT's answer
//     into driver.ErrBadConn, against database/sql's rule (§2.15, §10.2),
//     so here it proves nothing.
//   - A server error answering COMMIT means the server refused to commit —
//     unless the answer is the session ending: class 08 (08007
//     transaction_resolution_unknown among them), 57P01 admin_shutdown,
//     57P02 crash_shutdown and 57P03 say the session died, not whether the
//     commit record was written first (§1.9, §8.4). 40003 is CockroachDB's
//     "result is ambiguous" (§6.3).
//   - 25P03 ends the session too, but the server raises it only at a session
//     idle in its transaction, before it read the COMMIT: not committed
//     (§1.9; adapters/pgxdb's TestIdleInTransactionTimeoutBeforeCommitIsRetried).
//
// # What needs pgx's own types
//
// Three judgements need pgx's types, so PostgresCommit cannot make them:
//
//   - pgx.ErrTxCommitRollback, the server answering COMMIT with ROLLBACK
//     (§1.2), means not committed; without pgx's sentinel it is an error
//     like any other: Ambiguous, the safe side;
//   - SafeToRetry errors other than "conn closed" were raised before
//     sending, so not committed; without pgconn.ErrConnClosed they cannot
//     be told from a lost answer: Ambiguous, the safe side;
//   - a *pgconn.PgError of severity FATAL or PANIC, with a code not listed
//     above, ended the session, so the outcome is unknown; the severity is a
//     field of pgx's type, so here the error counts as the server's refusal
//     (Unclassified), and is classified as usual. lib/pq reports a FATAL
//     answer as driver.ErrBadConn, which is Ambiguous.
//
// github.com/dbop-go/dbop/adapters/pgxdb judges these precisely, and checks
// before sending whether the connection is already closed. Over
// database/sql with pgx's driver, the same precision needs a dialect of the
// sqldb adapter whose CommitOutcome applies pgx's rules before these.
//
// PostgresCommit is safe for concurrent use.
func PostgresCommit(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if connBusy(err) {
		return dbop.Unclassified
	}
	if r, ok := errors.AsType[safeToRetrier](err); ok && r.SafeToRetry() {
		return dbop.Ambiguous
	}
	if errors.Is(err, driver.ErrBadConn) {
		return dbop.Ambiguous
	}
	if se, ok := errors.AsType[sqlStater](err); ok {
		switch code := se.SQLState(); {
		case code == "25P03":
			return dbop.Unclassified
		case code == "40003", code == "57P01", code == "57P02", code == "57P03",
			strings.HasPrefix(code, "08"):
			return dbop.Ambiguous
		}
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}

// SQLiteCommit judges a COMMIT error from modernc.org/sqlite
// (docs/backends.md §5.10, §11):
//
//	error                                   committed?  verdict
//	driver.ErrBadConn                       no          RetryTransaction
//	an error with a SQLite result code      no          Unclassified
//	a context error, anything else          unknown     Ambiguous
//
// "A failed Commit forces a ROLLBACK if still inside the transaction": the
// engine refused the COMMIT and nothing was committed, so the error is
// classified as usual (BUSY retries the whole transaction). A context error
// means the COMMIT was interrupted: judged ambiguous, the safe side.
// mattn/go-sqlite3's errors have no Code method (§5.11), so through this
// rule every engine error of mattn's is ambiguous. SQLiteCommit is safe for
// concurrent use.
func SQLiteCommit(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	if errors.Is(err, driver.ErrBadConn) {
		return dbop.RetryTransaction
	}
	if _, ok := errors.AsType[sqliteCoder](err); ok {
		return dbop.Unclassified
	}
	return dbop.Ambiguous
}
