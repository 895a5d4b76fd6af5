package gormdb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// retry retries at once, up to three attempts.
var retry = dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))

// final reports whether v ends a retry: the error was not recognised as
// retryable (Unclassified) or was called NotRetryable. A classifier that
// calls an error NotRetryable leaves it unwrapped when nothing would retry
// it anyway (invariant 7), so VerdictOf then reports Unclassified.
func final(v dbop.Verdict) bool { return v == dbop.Unclassified || v == dbop.NotRetryable }

func checkLog(t *testing.T, want, got []string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statement log mismatch (-want +got):\n%s", diff)
	}
}

func update(ctx context.Context, tx *gorm.DB) (int64, error) {
	r := tx.WithContext(ctx).Exec("UPDATE t SET n = n + 1")
	return r.RowsAffected, r.Error
}

// updateOnly is update for Do.
func updateOnly(ctx context.Context, tx *gorm.DB) error {
	_, err := update(ctx, tx)
	return err
}

func TestInTxStatements(t *testing.T) {
	tests := []struct {
		name string
		opts []gormdb.TxOption
		want []string
	}{
		{"plain", nil, []string{"BEGIN", "UPDATE t SET n = n + 1", "COMMIT"}},
		{"read only", []gormdb.TxOption{gormdb.ReadOnly()},
			[]string{"BEGIN READ ONLY", "UPDATE t SET n = n + 1", "COMMIT"}},
		{"isolation", []gormdb.TxOption{gormdb.Isolation(sql.LevelSerializable)},
			[]string{"BEGIN ISOLATION LEVEL SERIALIZABLE", "UPDATE t SET n = n + 1", "COMMIT"}},
		{"lock timeout", []gormdb.TxOption{gormdb.LockTimeout(250 * time.Millisecond)}, []string{
			"BEGIN",
			"SELECT set_config('lock_timeout', '250ms', true)",
			"UPDATE t SET n = n + 1", "COMMIT"}},
		{"both timeouts, rounded up to milliseconds", []gormdb.TxOption{
			gormdb.StatementTimeout(1500 * time.Microsecond), gormdb.LockTimeout(time.Nanosecond)}, []string{
			"BEGIN",
			"SELECT set_config('lock_timeout', '1ms', true), set_config('statement_timeout', '2ms', true)",
			"UPDATE t SET n = n + 1", "COMMIT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, fake := fakeGORM(t, "postgres", nil)
			n, err := gormdb.InTx(db, update, tt.opts...).Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			checkLog(t, tt.want, fake.Log())
		})
	}
}

// Do is InTx for a function with no result, with the same options and
// the same retries.
func TestDo(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	fake.failNext("UPDATE t SET n = n + 1", dboptest.PgError("40001", "could not serialize access"))
	_, err := gormdb.Do(db, updateOnly, gormdb.ReadOnly(), gormdb.LockTimeout(time.Second)).With(retry).Run(t.Context())
	if err != nil {
		t.Fatalf("Run = %v; want nil", err)
	}
	setup := "SELECT set_config('lock_timeout', '1000ms', true)"
	checkLog(t, []string{
		"BEGIN READ ONLY", setup, "UPDATE t SET n = n + 1", "ROLLBACK",
		"BEGIN READ ONLY", setup, "UPDATE t SET n = n + 1", "COMMIT",
	}, fake.Log())

	my, fake := fakeGORM(t, "mysql", nil)
	fake.failNext("UPDATE t SET n = n + 1", dboptest.MySQLError(1062, "Duplicate entry"))
	_, err = gormdb.Do(my, updateOnly, gormdb.Dialect(mysqldb.MariaDB)).With(retry).Run(t.Context())
	if !isMySQL(err, 1062) || !final(dbop.VerdictOf(err)) {
		t.Errorf("Run = %v (verdict %v); want the 1062, final", err, dbop.VerdictOf(err))
	}
	checkLog(t, []string{"BEGIN", "UPDATE t SET n = n + 1", "ROLLBACK"}, fake.Log())
}

// A transaction-level error rolls back, and the retry around InTx runs the
// whole transaction again.
func TestInTxRetriesTheTransaction(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	fake.failNext("UPDATE t SET n = n + 1", dboptest.PgError("40P01", "deadlock detected"))
	n, err := gormdb.InTx(db, update).With(retry).Run(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Run = %d, %v; want 1, nil", n, err)
	}
	checkLog(t, []string{
		"BEGIN", "UPDATE t SET n = n + 1", "ROLLBACK",
		"BEGIN", "UPDATE t SET n = n + 1", "COMMIT",
	}, fake.Log())
}

// GORM's errors are NotRetryable: a record not found is not retried, and
// is returned as fn returned it (invariant 7: a final error is not wrapped).
func TestInTxGORMErrorIsNotRetried(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	calls := 0
	op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		calls++
		return 0, gorm.ErrRecordNotFound
	}).With(retry)
	_, err := op.Run(t.Context())
	if err != gorm.ErrRecordNotFound || !final(dbop.VerdictOf(err)) || calls != 1 {
		t.Errorf("Run = %v (verdict %v) after %d calls; want gorm.ErrRecordNotFound itself, final, 1 call", err, dbop.VerdictOf(err), calls)
	}
	checkLog(t, []string{"BEGIN", "ROLLBACK"}, fake.Log())
}

func TestInTxCommitErrors(t *testing.T) {
	tests := []struct {
		name        string
		commitErr   error
		ambiguous   bool
		wantVerdict dbop.Verdict // NotRetryable: final, the COMMIT error itself
	}{
		{"postgres: ErrBadConn proves nothing (lib/pq returns it after sending COMMIT)", dboptest.BadConn(), true, dbop.Ambiguous},
		{"server answered", dboptest.PgError("40001", "could not serialize access"), false, dbop.RetryTransaction},
		{"server answered with a constraint", dboptest.PgError("23505", "duplicate key"), false, dbop.NotRetryable},
		{"server shutting down", dboptest.PgError("57P01", "terminating connection due to administrator command"), true, dbop.Ambiguous},
		{"connection exception", dboptest.PgError("08006", "connection failure"), true, dbop.Ambiguous},
		{"idle in transaction timeout", fatal(dboptest.PgError("25P03", "terminating connection due to idle-in-transaction timeout")), false, dbop.RetryTransaction},
		{"mysql: server answered", dboptest.MySQLError(1213, "Deadlock found"), false, dbop.RetryTransaction},
		{"mysql: read failed after the write", dboptest.InvalidConn(), true, dbop.Ambiguous},
		{"mysql: nothing sent", dboptest.BadConn(), false, dbop.RetryTransaction},
		{"mysql: connection killed", dboptest.MySQLError(1927, "Connection was killed"), true, dbop.Ambiguous},
		{"network error after the send", dboptest.NetworkError(), true, dbop.Ambiguous},
		{"context", context.DeadlineExceeded, true, dbop.Ambiguous},
		{"unknown", errScripted, true, dbop.Ambiguous},
		{"pgx: conn closed while waiting for the answer", connClosed{}, true, dbop.Ambiguous},
		{"transaction already ended", sql.ErrTxDone, true, dbop.Ambiguous},
		// What only pgx's own types tell apart (classifiers.PostgresCommit,
		// "What needs pgx's own types"): gormdb links no driver, so
		// sqldb.Postgres judges them without pgx. pgx.ErrTxCommitRollback
		// and a SafeToRetry error other than "conn closed" mean "not
		// committed", but are ambiguous here, the safe side; a FATAL answer
		// of an unlisted code counts as the server's refusal.
		{"pgx: nothing sent, not told from conn closed", safeToRetry{}, true, dbop.Ambiguous},
		{"server answered ROLLBACK, not told without pgx", pgx.ErrTxCommitRollback, true, dbop.Ambiguous},
		{"session ended with an unlisted code", fatal(dboptest.PgError("XX000", "internal error")), false, dbop.NotRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialector := "postgres"
			var opts []gormdb.TxOption
			if strings.HasPrefix(tt.name, "mysql: ") {
				dialector = "mysql"
				opts = append(opts, gormdb.Dialect(mysqldb.MariaDB))
			}
			db, fake := fakeGORM(t, dialector, nil)
			fake.failNext("COMMIT", tt.commitErr)
			_, err := gormdb.InTx(db, update, opts...).Run(t.Context())
			if !errors.Is(err, tt.commitErr) {
				t.Errorf("Run = %v; want it to wrap the COMMIT error %v", err, tt.commitErr)
			}
			if got := errors.Is(err, scopes.ErrAmbiguousCommit); got != tt.ambiguous {
				t.Errorf("errors.Is(err, scopes.ErrAmbiguousCommit) = %v; want %v (err: %v)", got, tt.ambiguous, err)
			}
			got := dbop.VerdictOf(err)
			switch {
			case tt.wantVerdict == dbop.NotRetryable:
				// Not committed, and final: the COMMIT error is returned
				// as the driver returned it, unwrapped (invariant 7).
				if !final(got) || err != tt.commitErr {
					t.Errorf("Run = %v (verdict %v); want the COMMIT error itself, final", err, got)
				}
			case got != tt.wantVerdict:
				t.Errorf("verdict = %v; want %v", got, tt.wantVerdict)
			}
			want := []string{"BEGIN", "UPDATE t SET n = n + 1", "COMMIT"}
			if dialector == "mysql" && !errors.Is(tt.commitErr, driver.ErrBadConn) {
				// The COMMIT failed: the guard asks whether it left the
				// transaction open (docs/backends.md §7.11). After
				// driver.ErrBadConn database/sql has closed the connection.
				want = append(want, "SELECT @@in_transaction")
			}
			checkLog(t, want, fake.Log())
		})
	}
}

// A Dialect given to InTx brings its own COMMIT rules: here a copy of
// sqldb.Postgres that knows pgx's sentinel, so that a COMMIT answered with
// ROLLBACK is "not committed", classified as usual (final), instead of
// ambiguous. sql.ErrTxDone stays ambiguous whatever the dialect says.
func TestInTxDialectCommitOutcome(t *testing.T) {
	d := sqldb.Postgres
	d.Name = "postgres+pgx"
	d.CommitOutcome = func(err error) dbop.Verdict {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			return dbop.Unclassified
		}
		return sqldb.Postgres.CommitOutcome(err)
	}
	for _, tt := range []struct {
		commitErr error
		ambiguous bool
	}{
		{pgx.ErrTxCommitRollback, false},
		{sql.ErrTxDone, true},
	} {
		db, fake := fakeGORM(t, "postgres", nil)
		fake.failNext("COMMIT", tt.commitErr)
		_, err := gormdb.InTx(db, update, gormdb.Dialect(d)).Run(t.Context())
		if got := errors.Is(err, scopes.ErrAmbiguousCommit); got != tt.ambiguous || !errors.Is(err, tt.commitErr) {
			t.Errorf("COMMIT error %v: Run = %v, ambiguous %v; want ambiguous %v", tt.commitErr, err, got, tt.ambiguous)
		}
		if !tt.ambiguous && (err != tt.commitErr || !final(dbop.VerdictOf(err))) {
			t.Errorf("Run = %v (verdict %v); want the COMMIT error itself, final", err, dbop.VerdictOf(err))
		}
	}
}

// safeToRetry is an error with pgconn's SafeToRetry capability, as pgx
// returns when nothing was sent.
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "write failed before anything was sent" }
func (safeToRetry) SafeToRetry() bool { return true }

// fatal makes e an error that ends the session.
func fatal(e *pgconn.PgError) *pgconn.PgError {
	e.Severity, e.SeverityUnlocalized = "FATAL", "FATAL"
	return e
}

// connClosed is what pgx v5.12.0 returns when the connection is lost while
// it waits for COMMIT's answer: pgconn.ErrConnClosed, with SafeToRetry true
// (TestLiveAmbiguousCommit shows the real one).
type connClosed struct{}

func (connClosed) Error() string     { return "conn closed" }
func (connClosed) SafeToRetry() bool { return true }
func (connClosed) Unwrap() error     { return pgconn.ErrConnClosed }

// An ambiguous COMMIT is retried only by an idempotent retry.
func TestInTxAmbiguousCommitRetry(t *testing.T) {
	for _, idempotent := range []bool{false, true} {
		db, fake := fakeGORM(t, "postgres", nil)
		fake.failNext("COMMIT", dboptest.NetworkError())
		opts := []dbop.RetryOption{dbop.MaxAttempts(3)}
		if idempotent {
			opts = append(opts, dbop.Idempotent())
		}
		_, err := gormdb.InTx(db, update).With(dbop.WithRetry(dbop.Constant(0), opts...)).Run(t.Context())
		commits := 0
		for _, s := range fake.Log() {
			if s == "COMMIT" {
				commits++
			}
		}
		if idempotent && (err != nil || commits != 2) {
			t.Errorf("idempotent: Run = %v after %d COMMITs; want nil after 2", err, commits)
		}
		if !idempotent && (!errors.Is(err, scopes.ErrAmbiguousCommit) || commits != 1) {
			t.Errorf("not idempotent: Run = %v after %d COMMITs; want an ambiguous commit after 1", err, commits)
		}
	}
}

// GORM chains an outcome onto the error already on a *gorm.DB ("%v; %w"),
// so GORM's own tx.Commit().Error reports a successful COMMIT as failed
// when fn left an error on tx. InTx reports the COMMIT's own outcome.
func TestInTxCommitIgnoresErrorLeftOnHandle(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	v, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		_ = tx.AddError(errScripted) // a stale error fn chose to ignore
		return 7, nil
	}).Run(t.Context())
	if err != nil || v != 7 {
		t.Errorf("Run = %d, %v; want 7, nil", v, err)
	}
	checkLog(t, []string{"BEGIN", "COMMIT"}, fake.Log())

	// What GORM does with the same handle.
	tx := db.Begin()
	_ = tx.AddError(errScripted)
	if err := tx.Commit().Error; !errors.Is(err, errScripted) {
		t.Errorf("GORM's tx.Commit().Error = %v; want the stale error (GORM's behaviour changed?)", err)
	}
}

// A *gorm.DB carrying an error is refused before BEGIN: GORM would begin a
// transaction and return a handle with the old error, leaving it open.
func TestInTxRefusesDBWithError(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	bad := db.Session(&gorm.Session{})
	_ = bad.AddError(dboptest.PgError("40P01", "deadlock detected"))
	calls := 0
	_, err := gormdb.InTx(bad, func(ctx context.Context, tx *gorm.DB) (int, error) {
		calls++
		return 0, nil
	}).With(retry).Run(t.Context())
	if err == nil || dbop.VerdictOf(err) != dbop.NotRetryable || calls != 0 {
		t.Errorf("Run = %v (verdict %v), fn called %d times; want a not-retryable error, no call", err, dbop.VerdictOf(err), calls)
	}
	checkLog(t, nil, fake.Log())
}

// InTx on a *gorm.DB already inside a transaction cannot begin.
func TestInTxInsideATransaction(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	tx := db.Begin()
	defer tx.Rollback()
	_, err := gormdb.InTx(tx, update).With(retry).Run(t.Context())
	// Final (invariant 7: NotRetryable leaves it unclassified); wrapped by
	// the BEGIN error's "scopes: begin: " prefix, so errors.Is.
	if !errors.Is(err, gorm.ErrInvalidTransaction) || !final(dbop.VerdictOf(err)) {
		t.Errorf("Run = %v (verdict %v); want gorm.ErrInvalidTransaction, final", err, dbop.VerdictOf(err))
	}
	checkLog(t, []string{"BEGIN"}, fake.Log())
}

func TestInTxBeginError(t *testing.T) {
	db, fake := fakeGORM(t, "mysql", nil)
	fake.failNext("BEGIN", dboptest.MySQLError(1040, "Too many connections"))
	n, err := gormdb.InTx(db, update, gormdb.Dialect(mysqldb.MariaDB)).With(retry).Run(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Run = %d, %v; want 1, nil", n, err)
	}
	checkLog(t, []string{"BEGIN", "BEGIN", "UPDATE t SET n = n + 1", "COMMIT"}, fake.Log())
}

// When setting the timeouts fails, the transaction just begun is rolled
// back, and the error is classified.
func TestInTxTimeoutSetupFails(t *testing.T) {
	db, fake := fakeGORM(t, "postgres", nil)
	setup := "SELECT set_config('lock_timeout', '100ms', true)"
	fake.failNext(setup, dboptest.NetworkError())
	n, err := gormdb.InTx(db, update, gormdb.LockTimeout(100*time.Millisecond)).With(retry).Run(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Run = %d, %v; want 1, nil", n, err)
	}
	checkLog(t, []string{"BEGIN", setup, "ROLLBACK", "BEGIN", setup, "UPDATE t SET n = n + 1", "COMMIT"}, fake.Log())
}

// A failed rollback is joined to fn's error, which keeps its verdict; a
// rollback that finds the transaction already ended is no error.
func TestInTxRollbackErrors(t *testing.T) {
	t.Run("failed", func(t *testing.T) {
		db, fake := fakeGORM(t, "postgres", nil)
		lockTimeout := dboptest.PgError("55P03", "canceling statement due to lock timeout")
		fake.failNext("UPDATE t SET n = n + 1", lockTimeout)
		fake.failNext("ROLLBACK", dboptest.NetworkError())
		_, err := gormdb.InTx(db, update).Run(t.Context())
		if !errors.Is(err, lockTimeout) || dbop.VerdictOf(err) != dbop.RetryStatement {
			t.Errorf("Run = %v (verdict %v); want the lock timeout, retry-statement", err, dbop.VerdictOf(err))
		}
	})
	t.Run("already done", func(t *testing.T) {
		db, fake := fakeGORM(t, "postgres", nil)
		fake.failNext("UPDATE t SET n = n + 1", errScripted)
		fake.failNext("ROLLBACK", sql.ErrTxDone)
		_, err := gormdb.InTx(db, update).Run(t.Context())
		if !errors.Is(err, errScripted) || errors.Is(err, sql.ErrTxDone) {
			t.Errorf("Run = %v; want the scripted error alone", err)
		}
	})
}

// RollbackTimeout bounds the ROLLBACK after a failed attempt, although
// database/sql's Rollback takes no context: here the driver never answers
// it, and InTx returns fn's error, its verdict kept, with the rollback's
// deadline joined, once the bound has passed (fake time: synctest).
func TestInTxRollbackTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, fake := fakeGORM(t, "postgres", nil)
		lockTimeout := dboptest.PgError("55P03", "canceling statement due to lock timeout")
		fake.failNext("UPDATE t SET n = n + 1", lockTimeout)
		release := fake.blockNext("ROLLBACK")
		start := time.Now()
		_, err := gormdb.InTx(db, update, gormdb.RollbackTimeout(250*time.Millisecond)).Run(t.Context())
		if elapsed := time.Since(start); elapsed != 250*time.Millisecond {
			t.Errorf("Run returned after %v; want 250ms, the rollback timeout", elapsed)
		}
		if !errors.Is(err, lockTimeout) || dbop.VerdictOf(err) != dbop.RetryStatement {
			t.Errorf("Run = %v (verdict %v); want the lock timeout, retry-statement", err, dbop.VerdictOf(err))
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ROLLBACK did not finish in time") {
			t.Errorf("Run = %v; want the rollback's deadline joined", err)
		}
		release() // the driver answers at last; the rollback ends in the background
		synctest.Wait()
		checkLog(t, []string{"BEGIN", "UPDATE t SET n = n + 1", "ROLLBACK"}, fake.Log())
	})
}

// ClassifyBy is asked before GORM's errors and the dialect's classifier:
// it decides the errors it knows, and leaves the rest to them.
func TestInTxClassifyBy(t *testing.T) {
	db, _ := fakeGORM(t, "postgres", nil)
	custom := func(err error) dbop.Verdict {
		if errors.Is(err, errScripted) {
			return dbop.RetryStatement
		}
		return dbop.Unclassified
	}
	for _, tt := range []struct {
		err  error
		want dbop.Verdict
	}{
		{errScripted, dbop.RetryStatement},
		// Left to GORM's rules: NotRetryable, so final, returned as fn
		// returned it (invariant 7).
		{gorm.ErrRecordNotFound, dbop.NotRetryable},
		// Left to the dialect's classifier, classifiers.Postgres's rules.
		{dboptest.PgError("55P03", "canceling statement due to lock timeout"), dbop.RetryStatement},
	} {
		_, err := gormdb.InTx(db, func(context.Context, *gorm.DB) (int, error) { return 0, tt.err },
			gormdb.ClassifyBy(custom)).Run(t.Context())
		got := dbop.VerdictOf(err)
		if tt.want == dbop.NotRetryable {
			if !final(got) || err != tt.err {
				t.Errorf("Run = %v (verdict %v); want %v itself, final", err, got, tt.err)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("verdict of %v = %v; want %v", tt.err, got, tt.want)
		}
	}
}
