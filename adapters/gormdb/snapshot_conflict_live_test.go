package gormdb_test

// MariaDB's write-conflict check (innodb_snapshot_isolation, on by
// default from MariaDB 11.6.2, a session setting from 10.6.18 and
// 10.11.8): a REPEATABLE READ transaction that writes a row another
// transaction changed and committed since its snapshot fails with 1020,
// and MariaDB rolls the whole transaction back, as at a deadlock
// (docs/backends.md §3.18). Live on MariaDB, with the setting on for the
// session of every connection through the DSN.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
)

// snapshotConflictScene is a table of two counters and a log, on a GORM
// whose connections check write conflicts, and an admin GORM without it.
type snapshotConflictScene struct {
	db, admin   *gorm.DB
	rows, log   string
	outsiderRan int
}

func newSnapshotConflictScene(t *testing.T, name string) *snapshotConflictScene {
	t.Helper()
	admin := liveMySQL(t, nil)
	var v []struct{ VariableName, Value string }
	if err := admin.Raw("SHOW VARIABLES LIKE 'innodb_snapshot_isolation'").Scan(&v).Error; err != nil || len(v) == 0 {
		t.Skipf("the server has no innodb_snapshot_isolation (%v): MariaDB 10.6.18, 10.11.8, 11.x", err)
	}
	mc, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["innodb_snapshot_isolation"] = "ON" // sent as SET when go-sql-driver connects (§4.9)
	s := &snapshotConflictScene{db: openMySQL(t, mc, nil), admin: admin, rows: "gormdb_si_rows_" + name, log: "gormdb_si_log_" + name}
	createTable(t, admin, s.rows, "id int PRIMARY KEY, n int NOT NULL")
	createTable(t, admin, s.log, "k varchar(8) NOT NULL")
	exec(t, admin, "INSERT INTO "+s.rows+" (id, n) VALUES (1, 0), (2, 0)")
	return s
}

// readThenConflict reads row 1 in tx (the snapshot), has another session
// change it and commit, then updates it in tx: 1020 on the first run.
func (s *snapshotConflictScene) readThenConflict(ctx context.Context, tx *gorm.DB, first bool) error {
	var n int
	if err := tx.Raw("SELECT n FROM " + s.rows + " WHERE id = 1").Scan(&n).Error; err != nil {
		return err
	}
	if first {
		s.outsiderRan++
		if err := s.admin.WithContext(ctx).Exec("UPDATE " + s.rows + " SET n = n + 100 WHERE id = 1").Error; err != nil {
			return dbop.Classify(fmt.Errorf("the other session's update: %w", err), dbop.NotRetryable)
		}
	}
	return tx.Exec("UPDATE " + s.rows + " SET n = n + 1 WHERE id = 1").Error
}

func (s *snapshotConflictScene) write(tx *gorm.DB, k string) error {
	return tx.Exec("INSERT INTO "+s.log+" (k) VALUES (?)", k).Error
}

func (s *snapshotConflictScene) logCounts(t *testing.T) map[string]int {
	t.Helper()
	var rows []struct {
		K string
		N int
	}
	if err := s.admin.Raw("SELECT k, COUNT(*) AS n FROM " + s.log + " GROUP BY k").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.K] = r.N
	}
	return counts
}

// A 1020 returned by the function is retried with the whole transaction,
// as a deadlock is: the retry reads the new row and commits once.
func TestMariaDBSnapshotConflictIsRetried(t *testing.T) {
	s := newSnapshotConflictScene(t, "retried")
	var retried []dbop.AttemptEvent
	attempts := 0
	_, err := gormdb.Do(s.db, func(ctx context.Context, tx *gorm.DB) error {
		attempts++
		if err := s.write(tx, "A"); err != nil {
			return err
		}
		return s.readThenConflict(ctx, tx, attempts == 1)
	}, mariadb).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
		dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e) }))).Run(t.Context())
	if len(retried) == 0 || !isMySQL(retried[0].Err, 1020) {
		if isMySQL(err, 1020) {
			t.Fatalf("Run: %v (verdict %v), not retried; want 1020 retried with the transaction", err, dbop.VerdictOf(err))
		}
		t.Fatalf("retried %v, Run: %v; want one 1020 retried (the fault did not fire)", retried, err)
	}
	if err != nil || attempts != 2 || len(retried) != 1 || retried[0].Verdict != dbop.RetryTransaction {
		t.Errorf("Run: %v, %d attempts, retried %v (verdict %v); want success after one retry-transaction", err, attempts, retried, retried[0].Verdict)
	}
	if diff := cmp.Diff(map[string]int{"A": 1}, s.logCounts(t)); diff != "" {
		t.Errorf("log rows by kind (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1:101", "2:0"}, queryRows(t, s.admin, s.rows)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// A 1020 swallowed by GORM's nested transaction, best effort, on a handle
// derived from tx (GORM keeps its failed ROLLBACK TO there): MariaDB
// rolled the transaction back (A with it) and runs C on its own. InTx must
// not report success: it returns the Ambiguous error of a function that
// went on after the server ended its transaction, which the retry does not
// run again.
func TestMariaDBSnapshotConflictSwallowedIsAmbiguous(t *testing.T) {
	s := newSnapshotConflictScene(t, "swallowed")
	var swallowed []error
	var retried []dbop.AttemptEvent
	attempts := 0
	_, err := gormdb.Do(s.db, func(ctx context.Context, tx *gorm.DB) error {
		attempts++
		if err := s.write(tx, "A"); err != nil {
			return err
		}
		if err := tx.WithContext(ctx).Transaction(func(tx2 *gorm.DB) error {
			return s.readThenConflict(ctx, tx2, attempts == 1)
		}); err != nil {
			swallowed = append(swallowed, err) // best effort
		}
		return s.write(tx, "C")
	}, mariadb).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
		dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { retried = append(retried, e) }))).Run(t.Context())
	if len(swallowed) != 1 || !isMySQL(swallowed[0], 1020) {
		t.Fatalf("the function swallowed %v; want one 1020 (the fault did not fire)", swallowed)
	}
	counts := s.logCounts(t)
	if err == nil {
		t.Fatalf("Run reported success; log rows %v: MariaDB rolled A back at the 1020 and committed C on its own", counts)
	}
	if v := dbop.VerdictOf(err); v != dbop.Ambiguous || !isMySQL(err, 1020) ||
		!strings.Contains(err.Error(), "returned nil after the server had rolled the transaction back") {
		t.Errorf("Run: %v (verdict %v); want an Ambiguous error naming the 1020 and the function that went on", err, v)
	}
	if attempts != 1 || len(retried) != 0 {
		t.Errorf("%d attempts, retried %v; want 1 and none: C was committed on its own", attempts, retried)
	}
	if diff := cmp.Diff(map[string]int{"C": 1}, counts); diff != "" {
		t.Errorf("log rows by kind (-want +got):\n%s", diff)
	}
}
