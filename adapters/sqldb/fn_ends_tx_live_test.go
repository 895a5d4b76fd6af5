package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
)

// A function that commits InTx's transaction itself (a natural mistake,
// which dbopvet's ends-tx reports) has applied its work, and InTx's own
// COMMIT then finds the transaction done: whether the work was committed
// is unknown to InTx, so the outcome is Ambiguous — not a final failure,
// which an OrDefault or a Fallback would replace with "failed, here is the
// default" for work that was committed. With ResolveCommit the statement
// it runs before COMMIT finds the transaction done too, which proves
// nothing either. A function that rolled back itself is Ambiguous as well:
// InTx cannot tell the two apart. So is a function that ended tx and then
// returned nil once a per-attempt deadline had passed: InTx rolled back,
// found the transaction done, and reported the deadline, which the retry
// ran again, committing the work once per attempt. A function that ran a
// statement after its own COMMIT and returned its sql.ErrTxDone, or whose
// InSavepoint step committed, so that RELEASE SAVEPOINT failed so, was
// reported as failed, and OrDefault replaced committed work. Live on
// MariaDB, PostgreSQL (pgx's database/sql driver) and SQLite.
func TestInTxFunctionThatEndsTheTransactionIsAmbiguous(t *testing.T) {
	type backend struct {
		name    string
		db      func(t *testing.T) *sql.DB
		d       sqldb.Dialect
		resolve bool
	}
	backends := []backend{
		{"MariaDB", func(t *testing.T) *sql.DB { return openMariaDB(t) }, mysqldb.MariaDB, false},
		{"MariaDB ResolveCommit", func(t *testing.T) *sql.DB { _, db := mariaDBResolveDB(t); return db }, mysqldb.MariaDB, true},
		{"PostgreSQL", func(t *testing.T) *sql.DB { return openPostgres(t) }, sqldb.Postgres, false},
		{"PostgreSQL ResolveCommit", func(t *testing.T) *sql.DB { return openPostgres(t) }, sqldb.Postgres, true},
		{"SQLite", func(t *testing.T) *sql.DB { return openSQLite(t, filepath.Join(t.TempDir(), "db")) }, sqldb.SQLite, false},
	}
	for _, b := range backends {
		for _, end := range []string{"Commit", "Rollback", "Commit, then a statement", "Commit in a savepoint step",
			"Commit, then the deadline", "Rollback, then the deadline"} {
			t.Run(b.name+"/"+end, func(t *testing.T) {
				deadline := strings.HasSuffix(end, "deadline")
				db := b.db(t)
				tbl := table(t, db, "sqldb_fn_ends_tx", "(k INT PRIMARY KEY)")
				var opts []sqldb.TxOption
				if b.resolve {
					opts = append(opts, sqldb.ResolveCommit())
				}
				runs := 0
				op := sqldb.InTx(db, b.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
					runs++
					if _, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d)", tbl, runs)); err != nil {
						return 0, err
					}
					var err error
					switch {
					case strings.HasPrefix(end, "Rollback"):
						err = tx.Rollback() //dbopvet:ignore the test is a function that ends InTx's transaction
					case end == "Commit in a savepoint step":
						// RELEASE SAVEPOINT fails with sql.ErrTxDone.
						_, err = dbop.Op[int](func(ctx context.Context) (int, error) {
							return 0, tx.Commit() //dbopvet:ignore the test is a function that ends InTx's transaction
						}).With(sqldb.InSavepoint(tx, b.d)).Run(ctx)
					case end == "Commit, then a statement":
						// The statement fails with sql.ErrTxDone, which fn
						// returns, as plain code returns the last error.
						_ = tx.Commit() //dbopvet:ignore the test is a function that ends InTx's transaction
						_, err = tx.ExecContext(ctx, "SELECT 1")
					default:
						err = tx.Commit() //dbopvet:ignore the test is a function that ends InTx's transaction
					}
					if deadline {
						<-ctx.Done() // slow work after its own end, past the attempt's deadline
					}
					return 1, err
				}, opts...)
				pipeline := []dbop.Decorator{dbop.OrDefault(-1), dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))}
				if deadline {
					pipeline = append(pipeline, dbop.WithTimeout(200*time.Millisecond))
				}
				v, err := op.With(pipeline...).Run(t.Context())
				rows := scalar[int](t, db, "SELECT COUNT(*) FROM "+tbl)
				want := 0
				if strings.HasPrefix(end, "Commit") {
					want = 1
				}
				if rows != want || runs != 1 {
					t.Fatalf("fn ran %d times and %d rows were committed, want 1 and %d (err = %v, verdict %v)", runs, rows, want, err, dbop.VerdictOf(err))
				}
				if err == nil {
					t.Fatalf("Run = %d, nil: OrDefault replaced the outcome of a transaction the function ended itself (%d rows)", v, rows)
				}
				if got := dbop.VerdictOf(err); got != dbop.Ambiguous || !errors.Is(err, sql.ErrTxDone) {
					t.Errorf("err = %v (verdict %v), want Ambiguous, holding sql.ErrTxDone", err, got)
				}
				// With the context alive, InTx's COMMIT is what finds the
				// transaction done.
				if !deadline && !strings.Contains(end, "Commit, then") && !strings.Contains(end, "savepoint") && !errors.Is(err, scopes.ErrAmbiguousCommit) {
					t.Errorf("err = %v, want an ambiguous commit", err)
				}
			})
		}
	}
}

// A function that ends InTx's transaction with a COMMIT of its own and
// returns that COMMIT's error (return v, tx.Commit(), as plain database/sql
// code does) whose answer was lost: the connection's error is one a retry
// acts on, and the retry applied the work again. It is Ambiguous now, as
// the same error from InTx's own COMMIT is. A function that rolled back
// itself and returned a server's answer that proves nothing was committed
// (a deadlock) is still retried. Live on MariaDB, the COMMIT's answer cut
// by a proxy.
func TestInTxFunctionsOwnCommitWithItsAnswerLostIsAmbiguous(t *testing.T) {
	direct := openMariaDB(t)
	tbl := table(t, direct, "sqldb_fn_own_commit_cut", "(id INT AUTO_INCREMENT PRIMARY KEY, op VARCHAR(20) NOT NULL) ENGINE=InnoDB")
	p := faultproxy.Start(t, mysqlAddr(t))
	db := openSQL(t, "mysql", mariaDBVia(t, p.Addr()))
	retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))

	t.Run("own COMMIT, answer lost", func(t *testing.T) {
		runs := 0
		op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			runs++
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" (op) VALUES ('lost')"); err != nil {
				return 0, err
			}
			if runs == 1 {
				p.CutAfter([]byte("COMMIT")) // the next request carrying COMMIT is fn's own
			}
			return runs, tx.Commit() //dbopvet:ignore the test is a function that commits InTx's transaction
		})
		cuts := p.Cuts()
		_, err := op.With(retry).Run(t.Context())
		if p.Cuts() != cuts+1 {
			t.Fatalf("the proxy cut %d connections, want 1", p.Cuts()-cuts)
		}
		// The COMMIT reached the server: the row appears, once.
		eventually(t, "the cut COMMIT lands", func() bool {
			return scalar[int](t, direct, "SELECT COUNT(*) FROM "+tbl+" WHERE op = 'lost'") >= 1
		})
		if n := scalar[int](t, direct, "SELECT COUNT(*) FROM "+tbl+" WHERE op = 'lost'"); n != 1 || runs != 1 {
			t.Errorf("fn ran %d times and %d rows were committed, want 1 and 1", runs, n)
		}
		if dbop.VerdictOf(err) != dbop.Ambiguous || !errors.Is(err, mysql.ErrInvalidConn) {
			t.Errorf("err = %v (verdict %v), want Ambiguous, holding the driver's error", err, dbop.VerdictOf(err))
		}
	})

	t.Run("own ROLLBACK after a deadlock", func(t *testing.T) {
		runs := 0
		op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			runs++
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" (op) VALUES ('deadlock')"); err != nil {
				return 0, err
			}
			if runs == 1 {
				_ = tx.Rollback() //dbopvet:ignore the test is a function that rolls back InTx's transaction
				return 0, &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
			}
			return runs, nil
		})
		n, err := op.With(retry).Run(t.Context())
		if err != nil || n != 2 {
			t.Fatalf("Run = %d, %v; want 2, nil: a deadlock is retried", n, err)
		}
		if got := scalar[int](t, direct, "SELECT COUNT(*) FROM "+tbl+" WHERE op = 'deadlock'"); got != 1 {
			t.Errorf("%d rows, want 1", got)
		}
	})

	t.Run("own ROLLBACK, then an error fn classified", func(t *testing.T) {
		runs := 0
		conflict := errors.New("the row changed since it was read")
		op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			runs++
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" (op) VALUES ('classified')"); err != nil {
				return 0, err
			}
			if runs == 1 {
				_ = tx.Rollback() //dbopvet:ignore the test is a function that rolls back InTx's transaction
				return 0, dbop.Classify(conflict, dbop.RetryTransaction)
			}
			return runs, nil
		})
		n, err := op.With(retry).Run(t.Context())
		if err != nil || n != 2 {
			t.Fatalf("Run = %d, %v; want 2, nil: fn's word is taken for an error it classified", n, err)
		}
		if got := scalar[int](t, direct, "SELECT COUNT(*) FROM "+tbl+" WHERE op = 'classified'"); got != 1 {
			t.Errorf("%d rows, want 1", got)
		}
	})
}
