package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/google/go-cmp/cmp"
)

// retry retries at once, a few times.
var retry = dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))

// final reports whether v ends a retry: the error was not recognised as
// retryable (Unclassified) or was called NotRetryable. A classifier that
// calls an error NotRetryable leaves it unwrapped when nothing would retry
// it anyway (invariant 7), so VerdictOf then reports Unclassified.
func final(v dbop.Verdict) bool { return v == dbop.Unclassified || v == dbop.NotRetryable }

func insertOp(db sqldb.Beginner, d sqldb.Dialect, runs *int, opts ...sqldb.TxOption) dbop.Op[int] {
	return sqldb.InTx(db, d, func(ctx context.Context, tx *sql.Tx) (int, error) {
		*runs++
		_, err := tx.ExecContext(ctx, "INSERT a")
		return 1, err
	}, opts...)
}

func checkLog(t *testing.T, want []string, f *fakeDB) {
	t.Helper()
	if diff := cmp.Diff(want, f.Log()); diff != "" {
		t.Errorf("statements (-want +got):\n%s", diff)
	}
}

// A COMMIT error is judged by the dialect's rules: retried when nothing was
// committed, an ambiguous-commit error (retried only when idempotent) when
// the outcome is unknown.
func TestInTxCommitOutcome(t *testing.T) {
	tests := []struct {
		name       string
		d          sqldb.Dialect
		commitErr  error
		idempotent bool
		wantRuns   int
		wantErr    bool
		verdict    dbop.Verdict
		ambiguous  bool
	}{
		{"mysql bad conn: not sent, retried", mysqldb.MySQL, dboptest.BadConn(), false, 2, false, 0, false},
		{"mysql server deadlock answering COMMIT: retried", mysqldb.MariaDB, dboptest.MySQLError(1213, "Deadlock"), false, 2, false, 0, false},
		{"mysql server dup key answering COMMIT: permanent", mysqldb.MariaDB, dboptest.MySQLError(1062, "Duplicate"), false, 1, true, dbop.NotRetryable, false}, // final: see below
		{"mysql invalid conn: ambiguous, not retried", mysqldb.MySQL, dboptest.InvalidConn(), false, 1, true, dbop.Ambiguous, true},
		{"mysql invalid conn, idempotent: retried", mysqldb.MySQL, dboptest.InvalidConn(), true, 2, false, 0, false},
		{"postgres serialization failure answering COMMIT: retried", sqldb.Postgres, dboptest.PgError("40001", "could not serialize"), false, 2, false, 0, false},
		{"postgres admin shutdown answering COMMIT: ambiguous", sqldb.Postgres, dboptest.PgError("57P01", "terminating connection"), false, 1, true, dbop.Ambiguous, true},
		{"postgres network error: ambiguous", sqldb.Postgres, dboptest.NetworkError(), false, 1, true, dbop.Ambiguous, true},
		{"sqlite busy: rolled back, retried", sqldb.SQLite, dboptest.SQLiteBusy(t), false, 2, false, 0, false},
		{"sqlite context error: ambiguous", sqldb.SQLite, context.DeadlineExceeded, false, 1, true, dbop.Ambiguous, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, f := openFake(t)
			f.failNext("COMMIT", tt.commitErr)
			runs := 0
			opts := []dbop.RetryOption{dbop.MaxAttempts(3)}
			if tt.idempotent {
				opts = append(opts, dbop.Idempotent())
			}
			_, err := insertOp(db, tt.d, &runs).With(dbop.WithRetry(dbop.Constant(0), opts...)).Run(t.Context())
			if runs != tt.wantRuns {
				t.Errorf("fn ran %d times, want %d", runs, tt.wantRuns)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			got := dbop.VerdictOf(err)
			switch {
			case tt.verdict == dbop.NotRetryable:
				// Final, and not wrapped for it (invariant 7): the
				// COMMIT error is returned as the driver returned it.
				if !final(got) || err != tt.commitErr {
					t.Errorf("err = %v (%T, verdict %v), want the COMMIT error itself, final", err, err, got)
				}
			case got != tt.verdict:
				t.Errorf("verdict = %v, want %v", got, tt.verdict)
			}
			if got := errors.Is(err, scopes.ErrAmbiguousCommit); got != tt.ambiguous {
				t.Errorf("errors.Is(err, ErrAmbiguousCommit) = %v, want %v", got, tt.ambiguous)
			}
			if !errors.Is(err, tt.commitErr) {
				t.Errorf("the driver's error is lost: %v", err)
			}
		})
	}
}

// A transaction that fn ended itself is not committed again, nor retried:
// its outcome is unknown to InTx.
func TestInTxFnEndsTransaction(t *testing.T) {
	db, f := openFake(t)
	runs := 0
	op := sqldb.InTx(db, mysqldb.MySQL, func(ctx context.Context, tx *sql.Tx) (int, error) {
		runs++
		return 0, tx.Commit() //dbopvet:ignore the test is that InTx copes with fn ending the transaction
	})
	_, err := op.With(retry).Run(t.Context())
	// fn's own COMMIT may have applied its work: Ambiguous, which a retry
	// not marked Idempotent does not run again and no Fallback replaces.
	if !errors.Is(err, sql.ErrTxDone) || dbop.VerdictOf(err) != dbop.Ambiguous {
		t.Fatalf("err = %v (verdict %v), want sql.ErrTxDone, ambiguous", err, dbop.VerdictOf(err))
	}
	if runs != 1 {
		t.Errorf("fn ran %d times, want 1", runs)
	}
	// sql.ErrTxDone from COMMIT: the guard asks whether fn's own end left
	// the transaction open (docs/backends.md §7.11).
	checkLog(t, []string{"BEGIN", "COMMIT", "SELECT @@in_transaction"}, f)
}

// PostgreSQL timeouts are SET LOCAL statements, first in the transaction;
// ReadOnly and Isolation reach BeginTx.
func TestInTxPostgresSetLocal(t *testing.T) {
	db, f := openFake(t)
	runs := 0
	op := insertOp(db, sqldb.Postgres, &runs,
		sqldb.LockTimeout(250*time.Millisecond), sqldb.StatementTimeout(1500*time.Microsecond),
		sqldb.ReadOnly(), sqldb.Isolation(sql.LevelSerializable))
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{
		"BEGIN READ ONLY ISOLATION Serializable",
		"SET LOCAL lock_timeout = 250; SET LOCAL statement_timeout = 2",
		"INSERT a",
		"COMMIT",
	}, f)
}

// MySQL and MariaDB timeouts are session variables on a pinned connection:
// saved and set in one statement, and restored after the transaction,
// whether it commits, fails or panics.
func TestInTxSessionTimeoutsRestored(t *testing.T) {
	tests := []struct {
		name  string
		fn    func(ctx context.Context, tx *sql.Tx) (int, error)
		wantQ string // the statement between BEGIN and the end
		end   string
	}{
		{"commit", func(ctx context.Context, tx *sql.Tx) (int, error) {
			_, err := tx.ExecContext(ctx, "INSERT a")
			return 1, err
		}, "INSERT a", "COMMIT"},
		{"error", func(ctx context.Context, tx *sql.Tx) (int, error) {
			_, err := tx.ExecContext(ctx, "INSERT a")
			return 0, errors.Join(err, dbop.Classify(errors.New("boom"), dbop.NotRetryable))
		}, "INSERT a", "ROLLBACK"},
		{"panic", func(ctx context.Context, tx *sql.Tx) (int, error) {
			_, _ = tx.ExecContext(ctx, "INSERT a")
			panic("boom")
		}, "INSERT a", "ROLLBACK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, f := openFake(t)
			op := sqldb.InTx(db, mysqldb.MariaDB, tt.fn, sqldb.LockTimeout(1200*time.Millisecond), sqldb.StatementTimeout(250*time.Millisecond))
			func() {
				defer func() { _ = recover() }()
				_, _ = op.Run(t.Context())
			}()
			checkLog(t, []string{
				"SET @dbop_saved_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout = 2, " +
					"@dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = 0.250000",
				"BEGIN",
				tt.wantQ,
				tt.end,
				"SET @@SESSION.innodb_lock_wait_timeout = @dbop_saved_innodb_lock_wait_timeout, @dbop_saved_innodb_lock_wait_timeout = NULL, " +
					"@@SESSION.max_statement_time = @dbop_saved_max_statement_time, @dbop_saved_max_statement_time = NULL",
			}, f)
			if n := f.openConns(); n != 1 {
				t.Errorf("%d open connections, want the one pooled", n)
			}
		})
	}
}

// When the restore fails, the connection is discarded, not pooled; a
// committed transaction still succeeds.
func TestInTxFailedRestoreDiscardsConnection(t *testing.T) {
	db, f := openFake(t)
	f.failNext("SET @@SESSION.max_execution_time = @dbop_saved", errors.New("restore failed"))
	runs := 0
	if _, err := insertOp(db, mysqldb.MySQL, &runs, sqldb.StatementTimeout(time.Second)).Run(t.Context()); err != nil {
		t.Fatalf("a failed restore failed the committed operation: %v", err)
	}
	if n := f.openConns(); n != 0 {
		t.Errorf("%d open connections after a failed restore, want 0 (discarded)", n)
	}
	if stats := db.Stats(); stats.Idle != 0 {
		t.Errorf("%d idle connections in the pool, want 0", stats.Idle)
	}
}

// A caller's *sql.Conn is pinned as it is, and left open.
func TestInTxCallerConn(t *testing.T) {
	db, f := openFake(t)
	f.answer("PRAGMA busy_timeout", int64(5000))
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runs := 0
	if _, err := insertOp(conn, sqldb.SQLite, &runs, sqldb.LockTimeout(25*time.Millisecond)).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{"PRAGMA busy_timeout", "PRAGMA busy_timeout = 25", "BEGIN", "INSERT a", "COMMIT", "PRAGMA busy_timeout = 5000"}, f)
	if err := conn.PingContext(t.Context()); err != nil {
		t.Errorf("the caller's connection was closed: %v", err)
	}
}

// Options that cannot be honoured, and missing arguments, panic when the
// operation is built.
func TestInTxPanics(t *testing.T) {
	db, _ := openFake(t)
	fn := func(context.Context, *sql.Tx) (int, error) { return 0, nil }
	tests := []struct {
		name, want string
		build      func()
	}{
		{"nil db", "Beginner is nil", func() { sqldb.InTx[int](nil, mysqldb.MySQL, fn) }},
		{"nil *sql.DB", "Beginner is nil (a nil *sql.DB)", func() { sqldb.InTx((*sql.DB)(nil), mysqldb.MySQL, fn) }},
		{"nil *sql.Conn", "Beginner is nil (a nil *sql.Conn)", func() { sqldb.InTx((*sql.Conn)(nil), mysqldb.MySQL, fn) }},
		{"zero dialect", "InTx: the zero Dialect", func() { sqldb.InTx(db, sqldb.Dialect{}, fn) }},
		{"nil fn", "function to run", func() { sqldb.InTx[int](db, mysqldb.MySQL, nil) }},
		{"nil option", "InTx: option 1 of 1 is nil", func() { sqldb.InTx(db, mysqldb.MySQL, fn, nil) }},
		{"Do: nil db", "Do: the Beginner is nil", func() { sqldb.Do(nil, sqldb.Postgres, func(context.Context, *sql.Tx) error { return nil }) }},
		{"Do: nil fn", "Do: the function to run", func() { sqldb.Do(db, sqldb.Postgres, nil) }},
		{"Do: nil option", "Do: option 2 of 2 is nil", func() {
			sqldb.Do(db, sqldb.Postgres, func(context.Context, *sql.Tx) error { return nil }, sqldb.ReadOnly(), nil)
		}},
		{"Do: sqlite statement timeout", "Do: StatementTimeout does not exist for SQLite", func() {
			sqldb.Do(db, sqldb.SQLite, func(context.Context, *sql.Tx) error { return nil }, sqldb.StatementTimeout(time.Second))
		}},
		{"InSavepoint: nil tx", "InSavepoint: the transaction tx is a nil *sql.Tx", func() { sqldb.InSavepoint(nil, sqldb.Postgres) }},
		{"InSavepoint: nil option", "InSavepoint: option 1 of 1 is nil", func() { sqldb.InSavepoint(new(sql.Tx), sqldb.Postgres, nil) }},
		{"sqlite statement timeout", "StatementTimeout does not exist for SQLite", func() {
			sqldb.InTx(db, sqldb.SQLite, fn, sqldb.StatementTimeout(time.Second))
		}},
		{"no connection to pin", "need a connection to pin", func() {
			sqldb.InTx(beginnerOnly{db}, mysqldb.MariaDB, fn, sqldb.LockTimeout(time.Second))
		}},
		{"negative lock timeout", "LockTimeout(-1s)", func() { sqldb.LockTimeout(-time.Second) }},
		{"zero statement timeout", "StatementTimeout(0s)", func() { sqldb.StatementTimeout(0) }},
		{"nil classifier", "ClassifyBy: classifier 2 of 2 is nil", func() { sqldb.ClassifyBy(sqldb.Postgres.Classify, nil) }},
		{"no classifier", "ClassifyBy(): a Classifier is required", func() { sqldb.ClassifyBy() }},
		{"zero rollback timeout", "RollbackTimeout(0s)", func() { sqldb.RollbackTimeout(0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustPanic(t, tt.build)
			if s, _ := got.(string); !strings.Contains(s, tt.want) {
				t.Errorf("panic %q, want it to mention %q", got, tt.want)
			}
		})
	}
	// A Beginner without Conn is fine when nothing needs pinning, and for
	// PostgreSQL, whose timeouts are SET LOCAL.
	sqldb.InTx(beginnerOnly{db}, mysqldb.MariaDB, fn)
	sqldb.InTx(beginnerOnly{db}, sqldb.Postgres, fn, sqldb.LockTimeout(time.Second))
}

// beginnerOnly hides every method of a *sql.DB but BeginTx.
type beginnerOnly struct{ db *sql.DB }

func (b beginnerOnly) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return b.db.BeginTx(ctx, opts)
}

// ClassifyBy is asked before the dialect's classifier.
func TestInTxClassifyBy(t *testing.T) {
	db, _ := openFake(t)
	errMine := errors.New("mine")
	mineAndDeadlock := errors.Join(errMine, dboptest.MySQLError(1213, "Deadlock"))
	runs := 0
	op := sqldb.InTx(db, mysqldb.MySQL, func(ctx context.Context, tx *sql.Tx) (int, error) {
		runs++
		return 0, mineAndDeadlock
	}, sqldb.ClassifyBy(func(err error) dbop.Verdict {
		if errors.Is(err, errMine) {
			return dbop.NotRetryable
		}
		return dbop.Unclassified
	}))
	_, err := op.With(retry).Run(t.Context())
	// The dialect's classifier would retry the 1213: one run shows that
	// ClassifyBy's NotRetryable came first. That verdict is final, so
	// the error is returned as fn returned it (invariant 7).
	if !final(dbop.VerdictOf(err)) || err != mineAndDeadlock || runs != 1 {
		t.Errorf("Run = %v (verdict %v) after %d runs, want fn's error itself, final, after 1", err, dbop.VerdictOf(err), runs)
	}
}

// mustPanic runs f and returns what it panicked with.
func mustPanic(t *testing.T, f func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	f()
	t.Fatal("did not panic")
	return nil
}

// Do is InTx for a function with no result: it commits, rolls back and
// retries the same way.
func TestDo(t *testing.T) {
	db, f := openFake(t)
	f.failNext("INSERT a", dboptest.PgError("40001", "could not serialize access"))
	runs := 0
	v, err := sqldb.Do(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) error {
		runs++
		_, err := tx.ExecContext(ctx, "INSERT a")
		return err
	}, sqldb.ReadOnly()).With(retry).Run(t.Context())
	if err != nil || v != (struct{}{}) || runs != 2 {
		t.Fatalf("Do = %v, %v after %d runs; want success after 2", v, err, runs)
	}
	checkLog(t, []string{"BEGIN READ ONLY", "INSERT a", "ROLLBACK", "BEGIN READ ONLY", "INSERT a", "COMMIT"}, f)
}

// ClassifyBy and RollbackTimeout fit transactions and savepoints; the
// transaction-only options are not savepoint options, so passing one to
// InSavepoint does not compile.
func TestOptionKinds(t *testing.T) {
	for name, o := range map[string]sqldb.Option{
		"ClassifyBy":      sqldb.ClassifyBy(sqldb.Postgres.Classify),
		"RollbackTimeout": sqldb.RollbackTimeout(time.Second),
	} {
		if _, ok := any(o).(sqldb.TxOption); !ok {
			t.Errorf("%s is not a TxOption", name)
		}
	}
	for name, o := range map[string]sqldb.TxOption{
		"ReadOnly":         sqldb.ReadOnly(),
		"Isolation":        sqldb.Isolation(sql.LevelSerializable),
		"LockTimeout":      sqldb.LockTimeout(time.Second),
		"StatementTimeout": sqldb.StatementTimeout(time.Second),
	} {
		if _, ok := o.(sqldb.SavepointOption); ok {
			t.Errorf("%s is a SavepointOption: InSavepoint would accept a transaction-only setting", name)
		}
	}
}
