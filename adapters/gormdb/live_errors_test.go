package gormdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// Requirement 4: the driver's error stays reachable with errors.As on what
// InTx returns, on both backends, including when GORM chained several
// errors into one. Each case runs under a retry, to check the verdict too.
func TestLiveDriverErrorReachable(t *testing.T) {
	type backend struct {
		name  string
		open  func(*testing.T, *gorm.Config) *gorm.DB
		opts  []gormdb.TxOption // the Dialect, on mysql
		table string
		// a query whose first rows do not scan into an int and whose third
		// row fails on the server: GORM adds a scan error per row, then the
		// server's error (scan.go: rows.Err() last)
		chainQuery string
		isDriver   func(error) bool // the driver's error type is reachable
		dupCode    func(error) bool // and is the unique violation
		chainCode  func(error) bool // and is the chained query's error
	}
	backends := []backend{
		{
			name: "postgres", open: livePostgres, table: "gormdb_reach_pg",
			chainQuery: "SELECT CASE WHEN g < 3 THEN 'abc' ELSE (1/(3-g))::text END AS n FROM generate_series(1, 5) g",
			isDriver:   func(err error) bool { _, ok := errors.AsType[*pgconn.PgError](err); return ok },
			dupCode:    func(err error) bool { return pgCode(err) == "23505" },
			chainCode:  func(err error) bool { return pgCode(err) == "22012" }, // division_by_zero
		},
		{
			name: "mysql", open: liveMySQL, opts: []gormdb.TxOption{mariadb}, table: "gormdb_reach_my",
			chainQuery: "SELECT CASE WHEN seq < 3 THEN 'abc' ELSE (SELECT seq UNION SELECT seq + 1) END AS n FROM seq_1_to_5",
			isDriver:   func(err error) bool { _, ok := errors.AsType[*mysql.MySQLError](err); return ok },
			dupCode:    func(err error) bool { return isMySQL(err, 1062) },
			chainCode:  func(err error) bool { return isMySQL(err, 1242) }, // subquery returns more than 1 row
		},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t, nil)
			createTable(t, db, b.table, "id int PRIMARY KEY, n int NOT NULL")
			exec(t, db, "INSERT INTO "+b.table+" VALUES (1, 0)")
			insertDup := "INSERT INTO " + b.table + " VALUES (1, 0)"

			run := func(t *testing.T, db *gorm.DB, fn func(tx *gorm.DB) error) (int, error) {
				t.Helper()
				calls := 0
				_, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					calls++
					return 0, fn(tx)
				}, b.opts...).With(retry).Run(t.Context())
				return calls, err
			}

			// A unique violation is NotRetryable, so final: not retried,
			// and returned as fn returned it (invariant 7).
			t.Run("the error fn returns", func(t *testing.T) {
				var fnErr error
				calls, err := run(t, db, func(tx *gorm.DB) error { fnErr = tx.Exec(insertDup).Error; return fnErr })
				if !b.dupCode(err) || err != fnErr || !final(dbop.VerdictOf(err)) || calls != 1 {
					t.Errorf("Run = %v (verdict %v) after %d calls; want the unique violation fn returned, final, 1 call", err, dbop.VerdictOf(err), calls)
				}
			})

			// GORM chains several errors on one *gorm.DB with "%v; %w"
			// (docs/backends.md §9.4). When the driver's error comes last, as
			// the server's does after scan errors, it stays reachable.
			t.Run("GORM chained several errors, the driver's last", func(t *testing.T) {
				_, err := run(t, db, func(tx *gorm.DB) error {
					var dest []struct{ N int }
					return tx.Raw(b.chainQuery).Scan(&dest).Error
				})
				if strings.Count(err.Error(), "; ") < 2 {
					t.Fatalf("Run = %v; want a GORM chain of three errors", err)
				}
				if !b.chainCode(err) {
					t.Errorf("Run = %v; want the server's error reachable at the end of the chain", err)
				}
			})

			// Only the last error of a chain stays reachable: an earlier
			// driver error survives as text only. This is GORM's
			// behaviour (docs/backends.md §9.4), shown here so that
			// a change in GORM is noticed; the package documentation tells
			// users to return a statement's .Error as soon as it fails.
			t.Run("GORM chained several errors, the driver's first", func(t *testing.T) {
				errAudit := errors.New("audit hook failed")
				var fnErr error
				calls, err := run(t, db, func(tx *gorm.DB) error {
					r := tx.Exec(insertDup)
					_ = r.AddError(errAudit)
					fnErr = r.Error
					return fnErr
				})
				if !errors.Is(err, errAudit) || !strings.Contains(strings.ToLower(err.Error()), "duplicate") {
					t.Fatalf("Run = %v; want the chain of the duplicate key error and the audit error", err)
				}
				if b.isDriver(err) {
					t.Errorf("Run = %v: the earlier driver error is reachable; GORM no longer chains with %%v (update docs/backends.md §9.4 and the package documentation)", err)
				}
				// The consequence: with the unique violation out of reach
				// the error is unclassified, and an unclassified error is
				// final (invariant 3): one attempt, the error returned
				// unchanged.
				if v := dbop.VerdictOf(err); v != dbop.Unclassified || calls != 1 || err != fnErr {
					t.Errorf("Run = %v (verdict %v) after %d calls; want the chain fn returned, unclassified, 1 call", err, v, calls)
				}
			})

			// With TranslateError, GORM's postgres dialector keeps the
			// *pgconn.PgError inside its sentinel; the mysql one replaces
			// the *mysql.MySQLError by the bare sentinel (docs/backends.md §9.5).
			// The classifier's verdict is NotRetryable either way, so the
			// error is final and returned as fn returned it (invariant 7).
			t.Run("TranslateError", func(t *testing.T) {
				tdb := b.open(t, &gorm.Config{TranslateError: true})
				var fnErr error
				calls, err := run(t, tdb, func(tx *gorm.DB) error { fnErr = tx.Exec(insertDup).Error; return fnErr })
				if !errors.Is(err, gorm.ErrDuplicatedKey) || err != fnErr || !final(dbop.VerdictOf(err)) || calls != 1 {
					t.Errorf("Run = %v (verdict %v) after %d calls; want the gorm.ErrDuplicatedKey fn returned, final, 1 call", err, dbop.VerdictOf(err), calls)
				}
				if want := b.name == "postgres"; b.dupCode(err) != want {
					t.Errorf("driver error reachable = %v; want %v (err: %v)", !want, want, err)
				}
			})
		})
	}
}

// A server error answering COMMIT means "not committed" (docs/backends.md §11):
// a deferred unique constraint fails at COMMIT with 23505, which InTx
// classifies as usual instead of reporting an ambiguous commit, with the
// *pgconn.PgError reachable.
func TestLivePostgresCommitAnsweredByServer(t *testing.T) {
	db := livePostgres(t, nil)
	table := "gormdb_commit_answered_pg"
	createTable(t, db, table, "id int NOT NULL, n int NOT NULL, CONSTRAINT "+table+"_u UNIQUE (id) DEFERRABLE INITIALLY DEFERRED")
	exec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")

	calls := 0
	_, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		calls++
		return 0, tx.Exec("INSERT INTO " + table + " VALUES (1, 1)").Error // checked at COMMIT
	}).With(retry).Run(t.Context())
	// NotRetryable, so final and unwrapped (invariant 7): the driver's
	// *pgconn.PgError is the very error returned.
	pe, _ := errors.AsType[*pgconn.PgError](err)
	if pgCode(err) != "23505" || err != error(pe) || errors.Is(err, scopes.ErrAmbiguousCommit) || !final(dbop.VerdictOf(err)) || calls != 1 {
		t.Errorf("Run = %v (%T, verdict %v) after %d calls; want the driver's 23505 from COMMIT, not ambiguous, final, 1 call", err, err, dbop.VerdictOf(err), calls)
	}
}

// Requirement 5: in a ReadOnly transaction a write fails (PostgreSQL 25006,
// MariaDB 1792) and is not retried.
func TestLiveReadOnly(t *testing.T) {
	for _, b := range []struct {
		name   string
		open   func(*testing.T, *gorm.Config) *gorm.DB
		opts   []gormdb.TxOption
		table  string
		isCode func(error) bool
	}{
		{"postgres", livePostgres, nil, "gormdb_read_only_pg", func(err error) bool { return pgCode(err) == "25006" }},
		{"mysql", liveMySQL, []gormdb.TxOption{mariadb}, "gormdb_read_only_my", func(err error) bool { return isMySQL(err, 1792) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t, nil)
			createTable(t, db, b.table, "id int PRIMARY KEY, n int NOT NULL")
			exec(t, db, "INSERT INTO "+b.table+" VALUES (1, 0)")
			calls := 0
			var fnErr error
			n, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				calls++
				var n int
				if err := tx.Raw("SELECT n FROM " + b.table + " WHERE id = 1").Scan(&n).Error; err != nil {
					return 0, err // reads work
				}
				fnErr = tx.Exec("UPDATE " + b.table + " SET n = n + 1").Error
				return n, fnErr
			}, append(b.opts, gormdb.ReadOnly())...).With(retry).Run(t.Context())
			// NotRetryable, so final and returned as fn returned it
			// (invariant 7).
			if !b.isCode(err) || err != fnErr || !final(dbop.VerdictOf(err)) || calls != 1 || n != 0 {
				t.Errorf("Run = %d, %v (verdict %v) after %d calls; want the read-only error fn returned, final, 1 call", n, err, dbop.VerdictOf(err), calls)
			}
			if diff := queryRows(t, db, b.table); len(diff) != 1 || diff[0] != "1:0" {
				t.Errorf("rows = %v; want [1:0]", diff)
			}
		})
	}
}

func pgCode(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code
	}
	return ""
}
