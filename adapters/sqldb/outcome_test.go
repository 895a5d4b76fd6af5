package sqldb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// safeToRetry is an error with pgconn's SafeToRetry capability, as pgx
// returns when nothing was sent, and, at COMMIT, after a lost answer too.
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "write failed" }
func (safeToRetry) SafeToRetry() bool { return true }

type outcomeCase struct {
	name string
	err  error
	want dbop.Verdict
}

func checkOutcomes(t *testing.T, d sqldb.Dialect, cases []outcomeCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.CommitOutcome(tt.err); got != tt.want {
				t.Errorf("%v.CommitOutcome(%v) = %v, want %v", d, tt.err, got, tt.want)
			}
			// Wrapping does not change the judgement.
			if got := d.CommitOutcome(fmt.Errorf("commit: %w", tt.err)); got != tt.want {
				t.Errorf("%v.CommitOutcome(wrapped %v) = %v, want %v", d, tt.err, got, tt.want)
			}
		})
	}
}

// fatal is a PostgreSQL error of severity FATAL.
func fatal(code, message string) error {
	e := dboptest.PgError(code, message)
	e.Severity, e.SeverityUnlocalized = "FATAL", "FATAL"
	return e
}

// docs/backends.md §2, §11: a server error answers the COMMIT unless it
// says the session broke; network and context errors after the send are
// ambiguous. pgx's "conn closed" (SafeToRetry) and lib/pq's ErrBadConn can
// come after the send too, and without pgx's types a SafeToRetry error
// raised before sending cannot be told apart from a lost answer: ambiguous.
// The MySQL and MariaDB rules are tested with them, in
// github.com/dbop-go/dbop/adapters/mysqldb.
func TestCommitOutcomePostgres(t *testing.T) {
	checkOutcomes(t, sqldb.Postgres, []outcomeCase{
		{"ErrBadConn (lib/pq: also after the send)", dboptest.BadConn(), dbop.Ambiguous},
		{"SafeToRetry: sent or not, only pgx knows", safeToRetry{}, dbop.Ambiguous},
		{"conn closed (pgx: also after the send)", pgconn.ErrConnClosed, dbop.Ambiguous},
		{"conn closed, claiming SafeToRetry", errors.Join(pgconn.ErrConnClosed, safeToRetry{}), dbop.Ambiguous},
		{"25P03 idle in transaction timeout", fatal("25P03", "terminating connection due to idle-in-transaction timeout"), dbop.Unclassified},
		{"FATAL answering COMMIT: severity is pgx's", fatal("XX000", "terminating connection"), dbop.Unclassified},
		{"40001 answering COMMIT", dboptest.PgError("40001", "could not serialize access"), dbop.Unclassified},
		{"40P01 answering COMMIT", dboptest.PgError("40P01", "deadlock detected"), dbop.Unclassified},
		{"23505 deferred constraint", dboptest.PgError("23505", "duplicate key value"), dbop.Unclassified},
		{"ErrTxCommitRollback: pgx's sentinel, the safe side", pgx.ErrTxCommitRollback, dbop.Ambiguous},
		{"08006 connection failure", dboptest.PgError("08006", "connection failure"), dbop.Ambiguous},
		{"08007 transaction resolution unknown", dboptest.PgError("08007", "transaction resolution unknown"), dbop.Ambiguous},
		{"57P01 admin shutdown", dboptest.PgError("57P01", "terminating connection due to administrator command"), dbop.Ambiguous},
		{"57P02 crash shutdown", dboptest.PgError("57P02", "terminating connection"), dbop.Ambiguous},
		{"40003 completion unknown", dboptest.PgError("40003", "result is ambiguous"), dbop.Ambiguous},
		{"network error", dboptest.NetworkError(), dbop.Ambiguous},
		{"context deadline", context.DeadlineExceeded, dbop.Ambiguous},
		{"context canceled", context.Canceled, dbop.Ambiguous},
	})
}

// docs/backends.md §5.10: modernc's failed Commit forces a ROLLBACK, so an
// engine error means not committed; a context error is judged ambiguous.
func TestCommitOutcomeSQLite(t *testing.T) {
	checkOutcomes(t, sqldb.SQLite, []outcomeCase{
		{"BUSY", dboptest.SQLiteBusy(t), dbop.Unclassified},
		{"BUSY_SNAPSHOT", dboptest.SQLiteBusySnapshot(t), dbop.Unclassified},
		{"CONSTRAINT_UNIQUE", dboptest.SQLiteConstraintUnique(t), dbop.Unclassified},
		{"ErrBadConn", dboptest.BadConn(), dbop.RetryTransaction},
		{"context deadline", context.DeadlineExceeded, dbop.Ambiguous},
		{"context canceled", context.Canceled, dbop.Ambiguous},
		{"unknown error", errors.New("what happened"), dbop.Ambiguous},
	})
}

func TestCommitOutcomeNil(t *testing.T) {
	for _, d := range []sqldb.Dialect{sqldb.Postgres, sqldb.SQLite} {
		if got := d.CommitOutcome(nil); got != dbop.Unclassified {
			t.Errorf("%v.CommitOutcome(nil) = %v, want unclassified", d, got)
		}
	}
}
