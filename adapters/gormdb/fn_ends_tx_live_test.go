package gormdb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// fnEndsTxBackend is a live database for the tests of a function that
// ends InTx's transaction itself: db, the options InTx is given, and how
// many rows of the test's table there are.
type fnEndsTxBackend struct {
	name string
	open func(t *testing.T) (db *gorm.DB, table string, opts []gormdb.TxOption)
}

func fnEndsTxBackends() []fnEndsTxBackend {
	const table = "gormdb_fn_ends_tx"
	return []fnEndsTxBackend{
		{"MariaDB", func(t *testing.T) (*gorm.DB, string, []gormdb.TxOption) {
			db := liveMySQL(t, nil)
			createTable(t, db, table, "k INT PRIMARY KEY")
			return db, table, []gormdb.TxOption{mariadb}
		}},
		{"MariaDB ResolveCommit", func(t *testing.T) (*gorm.DB, string, []gormdb.TxOption) {
			name := ownMySQLDatabase(t) // with the commit marker table
			mc, err := mysql.ParseDSN(testdb.MySQL(t))
			if err != nil {
				t.Fatal(err)
			}
			mc.DBName = name
			db := openMySQL(t, mc, nil)
			createTable(t, db, table, "k INT PRIMARY KEY")
			return db, table, []gormdb.TxOption{mariadb, gormdb.ResolveCommit()}
		}},
		{"PostgreSQL", func(t *testing.T) (*gorm.DB, string, []gormdb.TxOption) {
			db := livePostgres(t, nil)
			createTable(t, db, table, "k INT PRIMARY KEY")
			return db, table, nil
		}},
		{"PostgreSQL ResolveCommit", func(t *testing.T) (*gorm.DB, string, []gormdb.TxOption) {
			db := livePostgres(t, nil)
			createTable(t, db, table, "k INT PRIMARY KEY")
			return db, table, []gormdb.TxOption{gormdb.ResolveCommit()}
		}},
		{"SQLite", func(t *testing.T) (*gorm.DB, string, []gormdb.TxOption) {
			db, _ := liveSQLiteGORM(t, false)
			createTable(t, db, table, "k INT PRIMARY KEY")
			return db, table, nil
		}},
	}
}

// A function that ends InTx's transaction itself (a natural port of plain
// GORM code: tx.Commit() or tx.Rollback() on the handle InTx hands in, or
// on the *sql.Tx that SQLTx returns; dbopvet's ends-tx reports it) may
// have applied its work, and InTx cannot tell: the outcome is Ambiguous,
// never a final failure, which an OrDefault or a Fallback would replace
// with "failed, here is the default" for work that was committed. With
// ResolveCommit the statement run before COMMIT finds the transaction done
// too, which proves nothing: it was reported as "COMMIT not sent",
// NotRetryable. A function that ended tx and then returned nil once a
// per-attempt deadline had passed made InTx roll back, find the
// transaction done, and report the deadline, which the retry ran again,
// committing the work once per attempt. A function that ran a statement
// after its own COMMIT and returned its sql.ErrTxDone (NotRetryable), or
// whose InSavepoint step committed, so that RELEASE SAVEPOINT failed so
// (Unclassified), was reported as failed, and OrDefault replaced
// committed work. Live on MariaDB, PostgreSQL and SQLite.
func TestInTxFunctionThatEndsTheTransactionIsAmbiguousGORM(t *testing.T) {
	var spOpts []gormdb.SavepointOption // the backend's Dialect, for InSavepoint
	ends := map[string]func(tx *gorm.DB) error{
		"Commit":   func(tx *gorm.DB) error { return tx.Commit().Error },   //dbopvet:ignore the test is a function that ends InTx's transaction
		"Rollback": func(tx *gorm.DB) error { return tx.Rollback().Error }, //dbopvet:ignore the test is a function that ends InTx's transaction
		// A statement after fn's own COMMIT fails with sql.ErrTxDone,
		// which fn returns, as plain code returns the last error.
		"Commit, then a statement": func(tx *gorm.DB) error {
			_ = tx.Commit() //dbopvet:ignore the test is a function that ends InTx's transaction
			return tx.Exec("SELECT 1").Error
		},
		// A step under InSavepoint commits: its RELEASE SAVEPOINT fails
		// with sql.ErrTxDone.
		"Commit in a savepoint step": func(tx *gorm.DB) error {
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				return 0, tx.Commit().Error //dbopvet:ignore the test is a function that ends InTx's transaction
			}).With(gormdb.InSavepoint(tx, spOpts...)).Run(tx.Statement.Context)
			return err
		},
		"SQLTx Commit": func(tx *gorm.DB) error {
			stx, ok := gormdb.SQLTx(tx)
			if !ok {
				return errors.New("SQLTx found no *sql.Tx")
			}
			return stx.Commit() //dbopvet:ignore the test is a function that ends InTx's transaction
		},
	}
	for _, b := range fnEndsTxBackends() {
		for _, end := range []string{"Commit", "Rollback", "SQLTx Commit", "Commit, then a statement", "Commit in a savepoint step",
			"Commit, then the deadline", "Rollback, then the deadline"} {
			t.Run(b.name+"/"+end, func(t *testing.T) {
				deadline := strings.HasSuffix(end, "deadline")
				db, table, opts := b.open(t)
				spOpts = nil
				for _, o := range opts {
					if o, ok := o.(gormdb.SavepointOption); ok {
						spOpts = append(spOpts, o)
					}
				}
				endTx := ends[strings.TrimSuffix(end, ", then the deadline")]
				runs := 0
				op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					runs++
					if err := tx.Exec(fmt.Sprintf("INSERT INTO %s (k) VALUES (%d)", table, runs)).Error; err != nil {
						return 0, err
					}
					err := endTx(tx)
					if deadline {
						<-ctx.Done() // slow work after its own end, past the attempt's deadline
						err = nil
					}
					return 1, err
				}, opts...)
				pipeline := []dbop.Decorator{dbop.OrDefault(-1), dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))}
				if deadline {
					pipeline = append(pipeline, dbop.WithTimeout(300*time.Millisecond))
				}
				v, err := op.With(pipeline...).Run(t.Context())
				var rows int
				if cerr := db.Raw("SELECT COUNT(*) FROM " + table).Scan(&rows).Error; cerr != nil {
					t.Fatal(cerr)
				}
				want := 0
				if strings.Contains(end, "Commit") {
					want = 1
				}
				if rows != want || runs != 1 {
					t.Fatalf("fn ran %d times and %d rows were committed, want 1 and %d (err = %v)", runs, rows, want, err)
				}
				if err == nil {
					t.Fatalf("Run = %d, nil: OrDefault replaced the outcome of a transaction the function ended itself (%d rows)", v, rows)
				}
				if got := dbop.VerdictOf(err); got != dbop.Ambiguous || !errors.Is(err, sql.ErrTxDone) {
					t.Errorf("err = %v (verdict %v), want Ambiguous, holding sql.ErrTxDone", err, got)
				}
				// With the context alive, InTx's COMMIT is what finds the
				// transaction done.
				if !deadline && !errors.Is(err, scopes.ErrAmbiguousCommit) && !strings.Contains(end, "Commit, then") && !strings.Contains(end, "savepoint") {
					t.Errorf("err = %v, want an ambiguous commit", err)
				}
			})
		}
	}
}

// A function that ends InTx's transaction with a COMMIT of its own and
// returns that COMMIT's error (return v, tx.Commit().Error, as plain GORM
// code does) whose answer was lost: the connection's error is one a retry
// acts on, and the retry applied the work again. It is Ambiguous, as the
// same error from InTx's own COMMIT is. A function that rolled back
// itself and returned a server's answer that proves nothing was committed
// (a deadlock), or an error it classified itself, is still retried. Live
// on MariaDB and PostgreSQL, the COMMIT's answer cut by a proxy.
func TestInTxFunctionsOwnCommitWithItsAnswerLostIsAmbiguousGORM(t *testing.T) {
	for _, b := range []struct {
		name, commit string
		proxied      func(*testing.T) (*faultproxy.Proxy, *gorm.DB)
		open         func(*testing.T, *gorm.Config) *gorm.DB
		opts         []gormdb.TxOption
		deadlock     error
	}{
		// pgx sends "commit"; go-sql-driver sends "COMMIT".
		{"PostgreSQL", "commit", proxiedPostgres, livePostgres, nil, &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}},
		{"MariaDB", "COMMIT", proxiedMySQL, liveMySQL, []gormdb.TxOption{mariadb},
			&mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}},
	} {
		t.Run(b.name, func(t *testing.T) {
			const table = "gormdb_fn_own_commit_cut"
			direct := b.open(t, nil)
			createTable(t, direct, table, "k INT PRIMARY KEY, op VARCHAR(20) NOT NULL")
			p, db := b.proxied(t)
			retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))
			count := func(op string) int {
				var n int
				if err := direct.Raw("SELECT COUNT(*) FROM "+table+" WHERE op = ?", op).Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				return n
			}

			t.Run("own COMMIT, answer lost", func(t *testing.T) {
				runs := 0
				op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					runs++
					if err := tx.Exec("INSERT INTO "+table+" (k, op) VALUES (?, 'lost')", 100+runs).Error; err != nil {
						return 0, err
					}
					if runs == 1 {
						p.CutAfter([]byte(b.commit)) // the next request carrying COMMIT is fn's own
					}
					return runs, tx.Commit().Error //dbopvet:ignore the test is a function that commits InTx's transaction
				}, b.opts...)
				cuts := p.Cuts()
				_, err := op.With(retry).Run(t.Context())
				if p.Cuts() != cuts+1 {
					t.Fatalf("the proxy cut %d connections, want 1 (err = %v)", p.Cuts()-cuts, err)
				}
				// The COMMIT reached the server: the row appears, once.
				for i := 0; count("lost") == 0 && i < 100; i++ {
					time.Sleep(50 * time.Millisecond)
				}
				if n := count("lost"); n != 1 || runs != 1 {
					t.Errorf("fn ran %d times and %d rows were committed, want 1 and 1 (err = %v)", runs, n, err)
				}
				if dbop.VerdictOf(err) != dbop.Ambiguous {
					t.Errorf("err = %v (verdict %v), want Ambiguous", err, dbop.VerdictOf(err))
				}
			})

			t.Run("own ROLLBACK after a deadlock", func(t *testing.T) {
				runs := 0
				op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					runs++
					if err := tx.Exec("INSERT INTO "+table+" (k, op) VALUES (?, 'deadlock')", 200+runs).Error; err != nil {
						return 0, err
					}
					if runs == 1 {
						_ = tx.Rollback() //dbopvet:ignore the test is a function that rolls back InTx's transaction
						return 0, b.deadlock
					}
					return runs, nil
				}, b.opts...)
				n, err := op.With(retry).Run(t.Context())
				if err != nil || n != 2 {
					t.Fatalf("Run = %d, %v; want 2, nil: a deadlock is retried", n, err)
				}
				if got := count("deadlock"); got != 1 {
					t.Errorf("%d rows, want 1", got)
				}
			})

			t.Run("own ROLLBACK, then an error fn classified", func(t *testing.T) {
				runs := 0
				conflict := errors.New("the row changed since it was read")
				op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
					runs++
					if err := tx.Exec("INSERT INTO "+table+" (k, op) VALUES (?, 'classified')", 300+runs).Error; err != nil {
						return 0, err
					}
					if runs == 1 {
						_ = tx.Rollback() //dbopvet:ignore the test is a function that rolls back InTx's transaction
						return 0, dbop.Classify(conflict, dbop.RetryTransaction)
					}
					return runs, nil
				}, b.opts...)
				n, err := op.With(retry).Run(t.Context())
				if err != nil || n != 2 {
					t.Fatalf("Run = %d, %v; want 2, nil: fn's word is taken for an error it classified", n, err)
				}
				if got := count("classified"); got != 1 {
					t.Errorf("%d rows, want 1", got)
				}
			})
		})
	}
}

// In an errgroup the context ends with the first sibling's error as its
// cause. A function that committed InTx's transaction itself and returned
// nil after that is Ambiguous, and its error names the context's end: the
// context's error, the sibling's only in its text, as InTx reports a
// transaction stopped by its context (scopes.InTx). Wrapped, the
// sibling's unique violation was reached by errors.As and read as this
// transaction's SQLSTATE. Live on PostgreSQL.
func TestInTxFunctionThatCommitsWhenASiblingFailsKeepsTheSiblingsErrorOutGORM(t *testing.T) {
	db := livePostgres(t, nil)
	const table = "gormdb_fn_ends_tx_sibling"
	createTable(t, db, table, "k INT PRIMARY KEY")
	sibling := &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	_, err := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		if err := tx.Exec("INSERT INTO " + table + " (k) VALUES (1)").Error; err != nil {
			return 0, err
		}
		if err := tx.Commit().Error; err != nil { //dbopvet:ignore the test is a function that ends InTx's transaction
			return 0, err
		}
		cancel(sibling) // the sibling fails while fn returns
		return 1, nil
	}).Run(ctx)
	if err == nil || dbop.VerdictOf(err) != dbop.Ambiguous || !errors.Is(err, sql.ErrTxDone) {
		t.Fatalf("err = %v (verdict %v), want Ambiguous, holding sql.ErrTxDone (fn committed, then its context ended)", err, dbop.VerdictOf(err))
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v: want it to match context.Canceled", err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, sibling) {
		t.Errorf("err = %v carries the sibling's error (errors.As found %v)", err, pgErr)
	}
	if !strings.Contains(err.Error(), sibling.Message) {
		t.Errorf("err = %v: want the cause named in the text", err)
	}
}
