//go:build cgo

package mattnsqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/classifiers/mattnsqlite"
	"github.com/google/go-cmp/cmp"
	"github.com/mattn/go-sqlite3"
)

// open opens a new WAL-mode database file with mattn's driver and a zero
// busy timeout, so lock conflicts fail at once.
func open(t *testing.T) *sql.DB {
	t.Helper()
	u := url.URL{
		Scheme:   "file",
		Path:     filepath.ToSlash(filepath.Join(t.TempDir(), "test.db")),
		RawQuery: "_busy_timeout=0&_journal_mode=WAL",
	}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mustExec(t, db, "CREATE TABLE t (x INTEGER UNIQUE)")
	return db
}

type execer interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}

func mustExec(t *testing.T, db execer, query string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func conn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// busy: a second connection cannot take the write lock that a first one
// holds with BEGIN IMMEDIATE.
func busy(t *testing.T) error {
	ctx := context.Background()
	db := open(t)
	holder := conn(t, db)
	mustExec(t, holder, "BEGIN IMMEDIATE")
	t.Cleanup(func() { holder.ExecContext(ctx, "ROLLBACK") })
	_, err := conn(t, db).ExecContext(ctx, "BEGIN IMMEDIATE")
	return err
}

// busySnapshot is the WAL recipe of docs/backends.md §5.3: a deferred transaction
// reads, another connection commits a write, the first one then writes.
func busySnapshot(t *testing.T) error {
	ctx := context.Background()
	db := open(t)
	mustExec(t, db, "INSERT INTO t VALUES (1)")
	reader := conn(t, db)
	mustExec(t, reader, "BEGIN")
	t.Cleanup(func() { reader.ExecContext(ctx, "ROLLBACK") })
	var n int
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn(t, db), "INSERT INTO t VALUES (2)")
	_, err := reader.ExecContext(ctx, "INSERT INTO t VALUES (3)")
	return err
}

// unique inserts the same value twice into a UNIQUE column.
func unique(t *testing.T) error {
	db := open(t)
	mustExec(t, db, "INSERT INTO t VALUES (1)")
	_, err := db.Exec("INSERT INTO t VALUES (1)")
	return err
}

// Real mattn errors, provoked against temporary databases.
func TestClassifyRealErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		provoke  func(*testing.T) error
		code     sqlite3.ErrNo
		extended sqlite3.ErrNoExtended
		want     dbop.Verdict
	}{
		{"BUSY", busy, sqlite3.ErrBusy, sqlite3.ErrNoExtended(sqlite3.ErrBusy), dbop.RetryTransaction},
		{"BUSY_SNAPSHOT", busySnapshot, sqlite3.ErrBusy, sqlite3.ErrBusySnapshot, dbop.RetryTransaction},
		{"CONSTRAINT_UNIQUE", unique, sqlite3.ErrConstraint, sqlite3.ErrConstraintUnique, dbop.NotRetryable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.provoke(t)
			var se sqlite3.Error
			if !errors.As(err, &se) {
				t.Fatalf("got %T (%v), want sqlite3.Error", err, err)
			}
			if se.Code != tc.code || se.ExtendedCode != tc.extended {
				t.Fatalf("got code %d, extended %d (%v); want %d, %d", se.Code, se.ExtendedCode, err, tc.code, tc.extended)
			}
			checkForms(t, err, tc.want)
		})
	}
}

// Codes that are hard to provoke on purpose, built from mattn's own type.
func TestClassifyCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want dbop.Verdict
	}{
		{"BUSY_RECOVERY", sqlite3.Error{Code: sqlite3.ErrBusy, ExtendedCode: sqlite3.ErrBusyRecovery}, dbop.RetryTransaction},
		{"LOCKED", sqlite3.Error{Code: sqlite3.ErrLocked, ExtendedCode: sqlite3.ErrNoExtended(sqlite3.ErrLocked)}, dbop.RetryTransaction},
		{"LOCKED_SHAREDCACHE", sqlite3.Error{Code: sqlite3.ErrLocked, ExtendedCode: sqlite3.ErrLockedSharedCache}, dbop.RetryTransaction},
		{"INTERRUPT", sqlite3.Error{Code: sqlite3.ErrInterrupt, ExtendedCode: sqlite3.ErrNoExtended(sqlite3.ErrInterrupt)}, dbop.RetryTransaction},
		{"CONSTRAINT_PRIMARYKEY", sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintPrimaryKey}, dbop.NotRetryable},
		{"CONSTRAINT_FOREIGNKEY", sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintForeignKey}, dbop.NotRetryable},
		{"pointer to BUSY_SNAPSHOT", &sqlite3.Error{Code: sqlite3.ErrBusy, ExtendedCode: sqlite3.ErrBusySnapshot}, dbop.RetryTransaction},
		{"ERROR (syntax)", sqlite3.Error{Code: sqlite3.ErrError, ExtendedCode: sqlite3.ErrNoExtended(sqlite3.ErrError)}, dbop.Unclassified},
		{"not SQLite", errors.New("boom"), dbop.Unclassified},
		{"context error is Context's", context.DeadlineExceeded, dbop.Unclassified},
	} {
		t.Run(tc.name, func(t *testing.T) { checkForms(t, tc.err, tc.want) })
	}
	if got := mattnsqlite.Classifier(nil); got != dbop.Unclassified {
		t.Errorf("Classify(nil) = %v, want unclassified", got)
	}
}

// Together with classifiers.Default, asked after it.
func TestClassifyWithDefault(t *testing.T) {
	c := dbop.Classifier(mattnsqlite.Classifier).Or(classifiers.Default)
	if got := c(busySnapshot(t)); got != dbop.RetryTransaction {
		t.Errorf("BUSY_SNAPSHOT: got %v, want retry-transaction", got)
	}
	if got := c(context.Canceled); got != dbop.NotRetryable {
		t.Errorf("context.Canceled: got %v, want not-retryable", got)
	}
}

// checkForms checks the verdict for err bare, wrapped and joined.
func checkForms(t *testing.T, err error, want dbop.Verdict) {
	t.Helper()
	for _, form := range []struct {
		name string
		err  error
	}{
		{"bare", err},
		{"wrapped", fmt.Errorf("insert: %w", err)},
		{"joined", errors.Join(errors.New("unrelated"), err)},
	} {
		t.Run(form.name, func(t *testing.T) {
			if diff := cmp.Diff(want, mattnsqlite.Classifier(form.err)); diff != "" {
				t.Errorf("Classify(%v) (-want +got):\n%s", form.err, diff)
			}
		})
	}
}
