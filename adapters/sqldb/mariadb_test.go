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
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
)

// Integration tests against the MariaDB (or MySQL) of DBOP_TEST_MYSQL. Each
// forces its interleaving: with channels and barriers, with a lock another
// connection holds, or (mariadb_deadlock_test.go) with the weights InnoDB
// picks a deadlock victim by. None sleeps to make a race likely.

// recorder collects the errors a retry retried.
type recorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *recorder) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *recorder) option() dbop.RetryOption {
	return dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) { r.add(e.Err) })
}

func (r *recorder) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// wantMySQLErrors checks that errs are server errors number, each with
// verdict v.
func wantMySQLErrors(t *testing.T, errs []error, n int, number uint16, v dbop.Verdict) {
	t.Helper()
	if len(errs) != n {
		t.Fatalf("retried %d errors (%v), want %d", len(errs), errs, n)
	}
	for _, err := range errs {
		if got := mysqlNumber(err); got != number {
			t.Errorf("retried %v, want server error %d", err, number)
		}
		if got := dbop.VerdictOf(err); got != v {
			t.Errorf("verdict of %v = %v, want %v", err, got, v)
		}
	}
}

// 2. A lock wait timeout (1205) at a savepoint, with innodb_lock_wait_timeout
// set to 1 by LockTimeout, is retried at the savepoint: the outer
// transaction's earlier row survives and commits, and the outer transaction
// runs once.
func TestMariaDBLockWaitTimeoutRetriedAtSavepoint(t *testing.T) {
	db := openMariaDB(t)
	items := table(t, db, "sqldb_lockwait_items", "(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	log := table(t, db, "sqldb_lockwait_log", "(k VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+items+" VALUES (1, 0)")

	blocker := conn(t, db)
	mustExec(t, blocker, "BEGIN")
	mustExec(t, blocker, "UPDATE "+items+" SET n = 100 WHERE id = 1")

	var outerRuns, stepRuns int
	var waited time.Duration
	var stepRetried, outerRetried recorder
	op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int64, error) {
		outerRuns++
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+log+" VALUES ('earlier')"); err != nil {
			return 0, err
		}
		step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
			stepRuns++
			start := time.Now()
			res, err := tx.ExecContext(ctx, "UPDATE "+items+" SET n = n + 1 WHERE id = 1")
			if err != nil {
				waited = time.Since(start)
				return 0, err
			}
			return res.RowsAffected()
		})
		return step.With(
			dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3),
				dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
					stepRetried.add(e.Err)
					// The lock holder gives up before the retry at the savepoint.
					mustExec(t, blocker, "ROLLBACK")
				})),
			sqldb.InSavepoint(tx, mysqldb.MariaDB),
		).Run(ctx)
	}, sqldb.LockTimeout(time.Second))

	n, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), outerRetried.option())).Run(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Run = %d, %v; want 1, nil", n, err)
	}
	wantMySQLErrors(t, stepRetried.all(), 1, 1205, dbop.RetryStatement)
	if outerRuns != 1 || stepRuns != 2 || len(outerRetried.all()) != 0 {
		t.Errorf("outer transaction ran %d times, step %d times; want 1 and 2", outerRuns, stepRuns)
	}
	if waited < 900*time.Millisecond || waited > 10*time.Second {
		t.Errorf("the lock wait lasted %v, want about 1s (innodb_lock_wait_timeout from LockTimeout)", waited)
	}
	if got := scalar[int](t, db, "SELECT COUNT(*) FROM "+log+" WHERE k = 'earlier'"); got != 1 {
		t.Errorf("the outer transaction's earlier row: %d, want 1", got)
	}
	if got := scalar[int](t, db, "SELECT n FROM "+items+" WHERE id = 1"); got != 1 {
		t.Errorf("n = %d, want 1", got)
	}
}

// 4. A connection killed mid-transaction (KILL from another connection) is
// retried on a fresh connection; the write lands once.
func TestMariaDBKilledConnectionRetried(t *testing.T) {
	db := openMariaDB(t)
	killer := openMariaDB(t)
	tbl := table(t, db, "sqldb_killed", "(k VARCHAR(20) PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")

	var ids []int64
	var retried recorder
	op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		var id int64
		if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return 0, err
		}
		ids = append(ids, id)
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES ('once', 0)"); err != nil {
			return 0, err
		}
		if len(ids) == 1 {
			//dbopvet:ignore the test kills the transaction's connection from another one on purpose
			if _, err := killer.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil {
				return 0, dbop.Classify(err, dbop.NotRetryable)
			}
		}
		_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE k = 'once'")
		return len(ids), err
	})
	n, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), retried.option())).Run(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Run = %d, %v; want 2, nil", n, err)
	}
	if ids[0] == ids[1] {
		t.Errorf("retried on the killed connection %d", ids[0])
	}
	errs := retried.all()
	if len(errs) != 1 || dbop.VerdictOf(errs[0]) != dbop.RetryTransaction {
		t.Fatalf("retried %v, want one transaction-level error", errs)
	}
	t.Logf("the statement after the KILL failed with: %v", errs[0])
	if got := scalar[int](t, db, "SELECT COUNT(*) FROM "+tbl+" WHERE k = 'once' AND n = 1"); got != 1 {
		t.Errorf("%d rows, want exactly 1", got)
	}
}

// 5. A connection cut while COMMIT is in flight: the outcome is unknown. A
// non-idempotent operation gets an ambiguous-commit error and is not
// retried; an idempotent one is retried. Either way the row exists exactly
// once: the COMMIT did reach the server.
func TestMariaDBCommitCutIsAmbiguous(t *testing.T) {
	direct := openMariaDB(t)
	tbl := table(t, direct, "sqldb_commit_cut", "(k VARCHAR(20) PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
	p := faultproxy.Start(t, mysqlAddr(t))
	db := openSQL(t, "mysql", mariaDBVia(t, p.Addr()))

	tests := []struct {
		name       string
		key, query string
		opts       []dbop.RetryOption
		wantRuns   int
	}{
		{"not idempotent", "plain", "INSERT INTO " + tbl + " VALUES ('plain', 1)", nil, 1},
		{"idempotent", "idem", "INSERT INTO " + tbl + " VALUES ('idem', 1) ON DUPLICATE KEY UPDATE v = VALUES(v)", []dbop.RetryOption{dbop.Idempotent()}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cuts := p.Cuts()
			runs := 0
			op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				if _, err := tx.ExecContext(ctx, tt.query); err != nil {
					return 0, err
				}
				if runs == 1 {
					p.CutAfter([]byte("COMMIT")) // the next request carrying COMMIT is the COMMIT
				}
				return runs, nil
			})
			opts := append([]dbop.RetryOption{dbop.MaxAttempts(3)}, tt.opts...)
			_, err := op.With(dbop.WithRetry(dbop.Constant(0), opts...)).Run(t.Context())
			if p.Cuts() != cuts+1 {
				t.Fatalf("the proxy cut %d connections, want 1", p.Cuts()-cuts)
			}
			if runs != tt.wantRuns {
				t.Errorf("fn ran %d times, want %d", runs, tt.wantRuns)
			}
			if tt.wantRuns == 1 {
				if !errors.Is(err, scopes.ErrAmbiguousCommit) || dbop.VerdictOf(err) != dbop.Ambiguous {
					t.Fatalf("err = %v (verdict %v), want an ambiguous commit", err, dbop.VerdictOf(err))
				}
				if !errors.Is(err, mysql.ErrInvalidConn) {
					t.Errorf("the driver's error is lost: %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			// The COMMIT reached the server: the row appears, once.
			eventually(t, "the cut COMMIT lands", func() bool {
				return scalar[int](t, direct, "SELECT COUNT(*) FROM "+tbl+" WHERE k = ?", tt.key) == 1
			})
		})
	}
}

// mysqlAddr returns the server address of DBOP_TEST_MYSQL.
func mysqlAddr(t *testing.T) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Addr
}

// 6. The per-attempt server timeouts fire (innodb_lock_wait_timeout → 1205,
// max_statement_time → 1969), and no setting is left behind: on a pool of
// one connection, the session shows its previous values afterwards, on the
// same connection.
func TestMariaDBSessionTimeoutsRestored(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(1)
	other := openMariaDB(t)
	tbl := table(t, db, "sqldb_session_timeouts", "(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0)")

	// Distinctive previous values, on the pool's only connection.
	mustExec(t, db, "SET SESSION innodb_lock_wait_timeout = 37, max_statement_time = 7.5")
	id := scalar[int64](t, db, "SELECT CONNECTION_ID()")
	checkRestored := func(t *testing.T, q execer) {
		t.Helper()
		var got int64
		var lockWait, stmtTime float64
		err := q.QueryRowContext(t.Context(), "SELECT CONNECTION_ID(), @@SESSION.innodb_lock_wait_timeout, @@SESSION.max_statement_time").Scan(&got, &lockWait, &stmtTime)
		if err != nil {
			t.Fatal(err)
		}
		if got != id {
			t.Fatalf("connection %d, want %d: the pool's connection was replaced, so this proves nothing", got, id)
		}
		if lockWait != 37 || stmtTime != 7.5 {
			t.Errorf("session after the operation: innodb_lock_wait_timeout=%v max_statement_time=%v; want 37 and 7.5", lockWait, stmtTime)
		}
	}

	t.Run("lock wait timeout", func(t *testing.T) {
		blocker := conn(t, other)
		mustExec(t, blocker, "BEGIN")
		mustExec(t, blocker, "UPDATE "+tbl+" SET n = 100 WHERE id = 1")
		defer mustExec(t, blocker, "ROLLBACK")

		var inside string
		start := time.Now()
		_, err := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			if err := tx.QueryRowContext(ctx, "SELECT @@SESSION.innodb_lock_wait_timeout").Scan(&inside); err != nil {
				return 0, err
			}
			_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = 1")
			return 0, err
		}, sqldb.LockTimeout(time.Second)).Run(t.Context())
		if mysqlNumber(err) != 1205 || dbop.VerdictOf(err) != dbop.RetryStatement {
			t.Fatalf("err = %v (verdict %v), want 1205, retry-statement", err, dbop.VerdictOf(err))
		}
		if inside != "1" || time.Since(start) > 10*time.Second {
			t.Errorf("innodb_lock_wait_timeout was %s in the transaction and the wait took %v; want 1 and about 1s", inside, time.Since(start))
		}
		checkRestored(t, db)
	})

	t.Run("statement time limit", func(t *testing.T) {
		var inside float64
		_, err := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			if err := tx.QueryRowContext(ctx, "SELECT @@SESSION.max_statement_time").Scan(&inside); err != nil {
				return 0, err
			}
			var slept int
			return slept, tx.QueryRowContext(ctx, "SELECT SLEEP(2)").Scan(&slept)
		}, sqldb.StatementTimeout(200*time.Millisecond)).Run(t.Context())
		if mysqlNumber(err) != 1969 || dbop.VerdictOf(err) != dbop.RetryStatement {
			t.Fatalf("err = %v (verdict %v), want 1969, retry-statement", err, dbop.VerdictOf(err))
		}
		if inside != 0.2 {
			t.Errorf("max_statement_time was %v in the transaction, want 0.2", inside)
		}
		checkRestored(t, db)
	})

	t.Run("caller's connection", func(t *testing.T) {
		c := conn(t, db) // the pool's only connection, pinned by the caller
		_, err := sqldb.InTx(c, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = 1")
			return 0, err
		}, sqldb.LockTimeout(3*time.Second), sqldb.StatementTimeout(time.Second)).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		checkRestored(t, c)
		c.Close()
	})
}
