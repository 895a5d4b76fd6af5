package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/testdb"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Integration tests on a SQLite file through modernc.org/sqlite. They always
// run.

// sqliteCode returns the (extended) result code of the SQLite error in err,
// or 0.
func sqliteCode(err error) int {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		return se.Code()
	}
	return 0
}

// 7. Concurrent writers on separate connections to one file: SQLITE_BUSY
// ("database is locked") is retried, and every increment lands exactly once.
// Each writer's first attempt is forced to fail with BUSY: a holder keeps
// the write lock until every writer has been refused once.
func TestSQLiteBusyConcurrentWriters(t *testing.T) {
	const writers, increments = 4, 25
	path := testdb.SQLiteFile(t)
	setup := openSQLite(t, path)
	mustExec(t, setup, "CREATE TABLE sqldb_busy_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
	mustExec(t, setup, "INSERT INTO sqldb_busy_counter VALUES (1, 0)")
	mustExec(t, setup, "CREATE TABLE sqldb_busy_ledger (op TEXT PRIMARY KEY)")

	holder := conn(t, setup)
	mustExec(t, holder, "BEGIN IMMEDIATE")
	refused := make(chan struct{}, writers)

	var mu sync.Mutex
	var retried []error
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		db := openSQLite(t, path) // _txlock=immediate: writers queue at BEGIN
		db.SetMaxOpenConns(1)     // one connection per writer
		var once sync.Once
		retry := dbop.WithRetry(dbop.FullJitter(dbop.Exponential(time.Millisecond, 10*time.Millisecond)),
			dbop.MaxAttempts(1000),
			dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				mu.Lock()
				retried = append(retried, e.Err)
				mu.Unlock()
				once.Do(func() { refused <- struct{}{} })
			}))
		wg.Go(func() {
			for i := range increments {
				op := fmt.Sprintf("w%d-%d", w, i)
				_, err := sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
					if _, err := tx.ExecContext(ctx, "UPDATE sqldb_busy_counter SET n = n + 1 WHERE id = 1"); err != nil {
						return 0, err
					}
					_, err := tx.ExecContext(ctx, "INSERT INTO sqldb_busy_ledger VALUES (?)", op)
					return 0, err
				}, sqldb.LockTimeout(5*time.Millisecond)).With(retry).Run(t.Context())
				if err != nil {
					errs[w] = fmt.Errorf("%s: %w", op, err)
					return
				}
			}
		})
	}
	for range writers {
		<-refused
	}
	mustExec(t, holder, "ROLLBACK")
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	if n := scalar[int](t, setup, "SELECT n FROM sqldb_busy_counter"); n != writers*increments {
		t.Errorf("counter = %d, want %d", n, writers*increments)
	}
	if n := scalar[int](t, setup, "SELECT COUNT(*) FROM sqldb_busy_ledger"); n != writers*increments {
		t.Errorf("%d ledger rows, want %d", n, writers*increments)
	}
	if len(retried) < writers {
		t.Fatalf("%d retries, want at least %d", len(retried), writers)
	}
	for _, err := range retried {
		if sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY || dbop.VerdictOf(err) != dbop.RetryTransaction {
			t.Errorf("retried %v (code %d, verdict %v), want SQLITE_BUSY, retry-transaction", err, sqliteCode(err), dbop.VerdictOf(err))
		}
	}
	t.Logf("%d increments, %d retries of SQLITE_BUSY", writers*increments, len(retried))
}

// 8. SQLITE_BUSY_SNAPSHOT (517) in WAL mode: a deferred transaction reads,
// another connection commits a write, and the first transaction's write
// fails. Only a whole new transaction can succeed (docs/backends.md §5.3): it is
// rerun, its read included, and writes from the fresh read.
func TestSQLiteBusySnapshotRetriesWholeTransaction(t *testing.T) {
	path := testdb.SQLiteFile(t)
	db := openSQLite(t, path, sqldb.SQLiteTxLock("deferred"))
	other := openSQLite(t, path)
	mustExec(t, db, "CREATE TABLE sqldb_snapshot (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
	mustExec(t, db, "INSERT INTO sqldb_snapshot VALUES (1, 0)")

	otherWrote := make(chan error)
	var reads []int
	var retried []error
	op := sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT n FROM sqldb_snapshot WHERE id = 1").Scan(&n); err != nil {
			return 0, err
		}
		reads = append(reads, n)
		if len(reads) == 1 {
			// Another connection commits a write after this read.
			go func() {
				//dbopvet:ignore the test needs a write from another connection, outside the transaction
				_, err := other.ExecContext(ctx, "UPDATE sqldb_snapshot SET n = n + 100 WHERE id = 1")
				otherWrote <- err
			}()
			if err := <-otherWrote; err != nil {
				return 0, dbop.Classify(err, dbop.NotRetryable)
			}
		}
		_, err := tx.ExecContext(ctx, "UPDATE sqldb_snapshot SET n = ? WHERE id = 1", n+1)
		return n + 1, err
	})
	got, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
		dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e.Err) }))).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(retried) != 1 || sqliteCode(retried[0]) != sqlite3.SQLITE_BUSY_SNAPSHOT || dbop.VerdictOf(retried[0]) != dbop.RetryTransaction {
		t.Fatalf("retried %v, want one SQLITE_BUSY_SNAPSHOT (517), retry-transaction", retried)
	}
	if len(reads) != 2 || reads[0] != 0 || reads[1] != 100 {
		t.Errorf("reads %v, want [0 100]: the retry must read again", reads)
	}
	if n := scalar[int](t, db, "SELECT n FROM sqldb_snapshot WHERE id = 1"); got != 101 || n != 101 {
		t.Errorf("wrote %d, stored %d; want 101", got, n)
	}
}

// 9. LockTimeout sets busy_timeout for the attempt only: on the same pinned
// connection (a TEMP table, which lives on one connection, proves it is the
// same), PRAGMA busy_timeout shows the previous value afterwards, after a
// commit, an error, or a cancelled context.
func TestSQLiteBusyTimeoutRestored(t *testing.T) {
	db := openSQLite(t, testdb.SQLiteFile(t), sqldb.SQLiteBusyTimeout(4321*time.Millisecond))
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TEMP TABLE sqldb_marker (x INTEGER)")
	mustExec(t, db, "CREATE TABLE sqldb_restore (x INTEGER)")

	errBoom := errors.New("boom")
	tests := []struct {
		name string
		fail func(cancel context.CancelFunc) error
	}{
		{"commit", func(context.CancelFunc) error { return nil }},
		{"error", func(context.CancelFunc) error { return dbop.Classify(errBoom, dbop.NotRetryable) }},
		{"cancelled", func(cancel context.CancelFunc) error { cancel(); return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var inside int
			_, _ = sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
				if err := tx.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&inside); err != nil {
					return 0, err
				}
				if _, err := tx.ExecContext(ctx, "INSERT INTO sqldb_restore VALUES (1)"); err != nil {
					return 0, err
				}
				return 0, tt.fail(cancel)
			}, sqldb.LockTimeout(25*time.Millisecond)).Run(ctx)
			if inside != 25 {
				t.Errorf("busy_timeout in the transaction = %d, want 25", inside)
			}
			if n := scalar[int](t, db, "SELECT COUNT(*) FROM temp.sqldb_marker"); n != 0 {
				t.Fatalf("marker rows %d", n)
			}
			if got := scalar[int](t, db, "PRAGMA busy_timeout"); got != 4321 {
				t.Errorf("busy_timeout after the operation = %d, want 4321", got)
			}
		})
	}
}

// The DSN SQLiteDSN builds opens, and its settings are in effect on every
// connection.
func TestSQLiteDSNSettings(t *testing.T) {
	db := openSQLite(t, testdb.SQLiteFile(t), sqldb.SQLiteBusyTimeout(1500*time.Millisecond), sqldb.SQLitePragma("foreign_keys(1)"))
	c1, c2 := conn(t, db), conn(t, db)
	for _, c := range []*sql.Conn{c1, c2} {
		if got := scalar[int](t, c, "PRAGMA busy_timeout"); got != 1500 {
			t.Errorf("busy_timeout = %d, want 1500", got)
		}
		if got := scalar[string](t, c, "PRAGMA journal_mode"); got != "wal" {
			t.Errorf("journal_mode = %s, want wal", got)
		}
		if got := scalar[int](t, c, "PRAGMA foreign_keys"); got != 1 {
			t.Errorf("foreign_keys = %d, want 1", got)
		}
	}
	// _txlock=immediate: a transaction holds the write lock from BEGIN, so
	// a second one is refused at BEGIN.
	tx, err := c1.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	mustExec(t, c2, "PRAGMA busy_timeout = 0")
	if _, err := c2.BeginTx(t.Context(), nil); sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY {
		t.Errorf("second BEGIN: %v, want SQLITE_BUSY", err)
	}
	// A read-only transaction begins with a plain BEGIN in modernc.
	ro, err := c2.BeginTx(t.Context(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only BEGIN while a writer holds the lock: %v", err)
	}
	ro.Rollback()
}
