package sqldb_test

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
)

// spLimitsPG and spLimitsMariaDB read the limits in force on a connection.
const (
	spLimitsPG      = "SELECT current_setting('statement_timeout') || ' ' || current_setting('lock_timeout')"
	spLimitsMariaDB = "SELECT CAST(@@SESSION.max_statement_time AS CHAR)"
)

// spStep runs a step that runs query in tx under InSavepoint, with a retry
// and the decorators between them, returning the step's error.
func spStep(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, query string, between ...dbop.Decorator) error {
	decs := append(append([]dbop.Decorator{dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2))}, between...), sqldb.InSavepoint(tx, d))
	_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
		_, err := tx.ExecContext(ctx, query)
		return 0, err
	}).With(decs...).Run(ctx)
	return err
}

// A recovered panic in a step on MariaDB, whose max_statement_time is a
// session setting that outlives the transaction: the step's limit is set
// back before the panic leaves InSavepoint, so the pool's one connection,
// checked out again after the caller's transaction ended, has the value it
// had before. The reverted change set it back only after a step that
// returned, and left the step's limit on the pooled connection (found by a
// review).
func TestSavepointStepLimitsBackAfterAPanicMariaDB(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(1)
	mustExec(t, db, "SET SESSION max_statement_time = 42")
	before := scalar[string](t, db, spLimitsMariaDB)
	var inside string
	func() {
		defer func() {
			if r := recover(); r != "step" {
				t.Errorf("recovered %v", r)
			}
		}()
		_, _ = sqldb.Do(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) error {
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				if err := tx.QueryRowContext(ctx, spLimitsMariaDB).Scan(&inside); err != nil {
					return 0, err
				}
				panic("step")
			}).With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(5*time.Second), sqldb.InSavepoint(tx, mysqldb.MariaDB)).Run(ctx)
			return err
		}).Run(t.Context())
	}()
	after := scalar[string](t, db, spLimitsMariaDB)
	if before != "42.000000" || after != before {
		t.Errorf("max_statement_time before the transaction %s, at the next checkout %s; want 42.000000 both", before, after)
	}
	if v, err := strconv.ParseFloat(inside, 64); err != nil || v <= 0 || v > 5 {
		t.Errorf("max_statement_time inside the step = %s; want the step's limit, under 5 s", inside)
	}
}

// A step's derived limit never raises a lower one in force: InTx's
// LockTimeout(100ms) and a session's statement_timeout of 200ms on
// PostgreSQL, InTx's StatementTimeout(200ms) on MariaDB, stay in force
// inside a step whose WithTimeout(10s) derives about 9 s; the server
// computes the smaller (docs/backends.md §1.19, §3.16). A limit with none
// in force gets the derived value. Before, the step raised them (found by
// a review).
func TestSavepointStepLimitNeverRaisesTheOneInForce(t *testing.T) {
	for _, c := range []struct {
		name       string
		d          sqldb.Dialect
		open       func(testing.TB) *sql.DB
		opts       []sqldb.TxOption
		show, want string
	}{
		{"postgres", sqldb.Postgres, func(t testing.TB) *sql.DB { return openPostgres(t, "statement_timeout=200ms") },
			[]sqldb.TxOption{sqldb.LockTimeout(100 * time.Millisecond)}, spLimitsPG, "200ms 100ms"},
		{"mariadb", mysqldb.MariaDB, openMariaDB,
			[]sqldb.TxOption{sqldb.StatementTimeout(200 * time.Millisecond)}, spLimitsMariaDB, "0.200000"},
		{"postgres none in force", sqldb.Postgres, func(t testing.TB) *sql.DB { return openPostgres(t) }, nil, spLimitsPG, "9"},
		{"mariadb none in force", mysqldb.MariaDB, openMariaDB, nil, spLimitsMariaDB, "9."},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			db.SetMaxOpenConns(1)
			var before, inside, after string
			op := sqldb.Do(db, c.d, func(ctx context.Context, tx *sql.Tx) error {
				if err := tx.QueryRowContext(ctx, c.show).Scan(&before); err != nil {
					return err
				}
				_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
					return 0, tx.QueryRowContext(ctx, c.show).Scan(&inside)
				}).With(dbop.WithRetry(dbop.Constant(0)), dbop.WithTimeout(10*time.Second), sqldb.InSavepoint(tx, c.d)).Run(ctx)
				if err != nil {
					return err
				}
				return tx.QueryRowContext(ctx, c.show).Scan(&after)
			}, c.opts...)
			if _, err := op.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(inside, c.want) || (len(c.want) > 2 && inside != c.want) {
				t.Errorf("inside the step %q; want %q", inside, c.want)
			}
			if after != before {
				t.Errorf("after the step %q, before it %q", after, before)
			}
		})
	}
}

// A step acts only on a deadline earlier than the one InTx derived the
// transaction's limits from. Under a dbop.HotSpot's server deadline that
// has passed (late in the attempt), a step whose WithTimeout is no earlier
// than InTx's deadline, or that has none, sends no statement to set
// limits: on PostgreSQL the trace shows none, on MariaDB the session's
// count of SET statements (Com_set_option) does not move. The reverted
// change derived a 1 ms limit from the server deadline (found by a
// review). A step with an earlier deadline of its own does set them.
func TestSavepointStepUnderHotSpotDeadlineSetsNothing(t *testing.T) {
	var log pgcLog
	for _, fam := range []struct {
		name string
		d    sqldb.Dialect
		open func(*testing.T) *sql.DB
		sets func(ctx context.Context, t *testing.T, tx *sql.Tx, step func()) bool
	}{
		{"postgres", sqldb.Postgres, func(t *testing.T) *sql.DB { return pgcOpen(t, &log, nil) },
			func(ctx context.Context, t *testing.T, tx *sql.Tx, step func()) bool {
				log.reset()
				step()
				return slices.ContainsFunc(log.log(), func(s string) bool { return strings.Contains(s, "set_config") })
			}},
		{"mariadb", mysqldb.MariaDB, func(t *testing.T) *sql.DB { return openMariaDB(t) },
			func(ctx context.Context, t *testing.T, tx *sql.Tx, step func()) bool {
				count := func() int {
					var name string
					var n int
					if err := tx.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_set_option'").Scan(&name, &n); err != nil {
						t.Fatal(err)
					}
					return n
				}
				n := count()
				step()
				return count() != n
			}},
	} {
		for _, c := range []struct {
			name     string
			deadline time.Duration // on InTx's context; 0 for none
			step     []dbop.Decorator
			sets     bool
		}{
			{"InTx 30s, step 1min", 30 * time.Second, []dbop.Decorator{dbop.WithTimeout(time.Minute)}, false},
			{"InTx 30s, step none", 30 * time.Second, nil, false},
			{"InTx none, step none", 0, nil, false},
			{"InTx 30s, step 5s", 30 * time.Second, []dbop.Decorator{dbop.WithTimeout(5 * time.Second)}, true},
		} {
			t.Run(fam.name+"/"+c.name, func(t *testing.T) {
				db := fam.open(t)
				ctx := t.Context()
				if c.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, c.deadline)
					defer cancel()
				}
				ctx = hotlock.WithServerDeadline(ctx, time.Now().Add(50*time.Millisecond))
				var sets bool
				op := sqldb.Do(db, fam.d, func(ctx context.Context, tx *sql.Tx) error {
					time.Sleep(60 * time.Millisecond) // late in the attempt: the server deadline has passed
					var err error
					sets = fam.sets(ctx, t, tx, func() { err = spStep(ctx, tx, fam.d, "SELECT 1", c.step...) })
					return err
				})
				if _, err := op.Run(ctx); err != nil {
					t.Fatal(err)
				}
				if sets != c.sets {
					t.Errorf("the step set limits: %v; want %v", sets, c.sets)
				}
			})
		}
	}
}

// On PostgreSQL a failed attempt's limits are undone by the scope's
// ROLLBACK TO SAVEPOINT (docs/backends.md §1.4): nothing is sent on the
// aborted transaction between the failed statement and the ROLLBACK TO.
// The reverted change sent the restore there, which failed with 25P02
// (found by a review).
func TestSavepointStepNoRestoreOnAbortedTransaction(t *testing.T) {
	var log pgcLog
	db := pgcOpen(t, &log, nil)
	var before, after string
	var got []string
	op := sqldb.Do(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, spLimitsPG).Scan(&before); err != nil {
			return err
		}
		log.reset()
		if err := spStep(ctx, tx, sqldb.Postgres, "SELECT 1/0", dbop.WithTimeout(5*time.Second)); pgCode(err) != "22012" {
			t.Errorf("the step returned %v, want 22012", err)
		}
		got = log.log()
		return tx.QueryRowContext(ctx, spLimitsPG).Scan(&after)
	})
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "set_config") }) {
		t.Errorf("sent %q: the step's limits were not set", got)
	}
	if i := slices.Index(got, "SELECT 1/0 -> 22012"); i < 0 || i+1 >= len(got) || got[i+1] != `ROLLBACK TO SAVEPOINT "dbop_sp_1"` {
		t.Errorf("sent %q; want the failed statement followed by the ROLLBACK TO", got)
	}
	if after != before {
		t.Errorf("limits after the failed step %q, before it %q", after, before)
	}
}
