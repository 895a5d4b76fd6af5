package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// Deadlock tests against the MariaDB (or MySQL) of DBOP_TEST_MYSQL.
// heavyLocker is a transaction on a connection of its own that holds row 2
// of a table and then asks for row 1, while the test's transaction holds
// row 1 and asks for row 2. It changes 50 other rows first: InnoDB rolls
// back the lighter transaction of a deadlock, by the rows it changed and
// locked (MariaDB lock0lock.cc, Deadlock::report), whichever request closes
// the cycle. So the test's transaction is the victim in every interleaving
// of the two last requests, and no test needs to force their order.
//
// (Polling information_schema.innodb_trx for the LOCK WAIT would not do:
// InnoDB refreshes that table's cache only after it has gone unread for
// 0.1s, so a tight poll, by this test or another package's, reads stale
// rows forever. Seen live on MariaDB 10.11.)
type heavyLocker struct {
	c    *sql.Conn
	tbl  string
	done chan error
}

func startHeavyLocker(t *testing.T, db *sql.DB, tbl string) *heavyLocker {
	t.Helper()
	h := &heavyLocker{c: conn(t, db), tbl: tbl, done: make(chan error, 1)}
	mustExec(t, h.c, "BEGIN")
	values := make([]string, 50)
	for i := range values {
		values[i] = fmt.Sprintf("(%d, 0)", 1000+i)
	}
	mustExec(t, h.c, "INSERT INTO "+tbl+" VALUES "+strings.Join(values, ", "))
	mustExec(t, h.c, "UPDATE "+tbl+" SET n = n + 10 WHERE id = 2")
	return h
}

// requestRow1 makes the locker ask for row 1, which the test's transaction
// holds, without waiting for the answer.
func (h *heavyLocker) requestRow1() {
	go func() {
		_, err := h.c.ExecContext(context.Background(), "UPDATE "+h.tbl+" SET n = n + 10 WHERE id = 1")
		h.done <- err
	}()
}

// commit waits for the locker's request for row 1, which succeeds once the
// test's transaction is rolled back as the deadlock victim, and commits.
func (h *heavyLocker) commit(t *testing.T) {
	t.Helper()
	if err := <-h.done; err != nil {
		t.Fatalf("the heavy transaction failed (was it chosen as the deadlock victim?): %v", err)
	}
	mustExec(t, h.c, "COMMIT")
}

// 1. A real deadlock (1213) under InTx + WithRetry: the victim's whole
// transaction is retried and both transactions land exactly once.
func TestMariaDBDeadlockRetried(t *testing.T) {
	db := openMariaDB(t)
	tbl := table(t, db, "sqldb_deadlock_retried", "(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
	both := newBarrier(2)
	var retried recorder

	increment := func(first, second int) dbop.Op[int] {
		attempts := 0
		return sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
			attempts++
			if _, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = ?", first); err != nil {
				return 0, err
			}
			if attempts == 1 {
				// Both transactions hold their first row before either
				// asks for its second: a deadlock, forced.
				if err := both.wait(ctx); err != nil {
					return 0, dbop.Classify(err, dbop.NotRetryable)
				}
			}
			_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = ?", second)
			return attempts, err
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), retried.option()))
	}

	var wg sync.WaitGroup
	attempts := make([]int, 2)
	errs := make([]error, 2)
	for i, rows := range [][2]int{{1, 2}, {2, 1}} {
		wg.Go(func() { attempts[i], errs[i] = increment(rows[0], rows[1]).Run(t.Context()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	wantMySQLErrors(t, retried.all(), 1, 1213, dbop.RetryTransaction)
	if attempts[0]+attempts[1] != 3 {
		t.Errorf("attempts %v, want 1 and 2", attempts)
	}
	for id := 1; id <= 2; id++ {
		if n := scalar[int](t, db, "SELECT n FROM "+tbl+" WHERE id = ?", id); n != 2 {
			t.Errorf("row %d: n = %d, want 2 (one increment per transaction)", id, n)
		}
	}
}

// 3. A deadlock inside a savepoint is not retried at the savepoint (MariaDB
// has ended the whole transaction and its savepoints): it escalates to the
// retry around InTx, which reruns the whole transaction.
func TestMariaDBDeadlockInSavepointRetriesTransaction(t *testing.T) {
	db := openMariaDB(t)
	tbl := table(t, db, "sqldb_deadlock_savepoint", "(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	log := table(t, db, "sqldb_deadlock_savepoint_log", "(k VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
	h := startHeavyLocker(t, db, tbl)

	holdsRow1 := make(chan struct{})
	proceed := make(chan struct{})
	var outerRuns, stepRuns int
	var stepRetried, outerRetried recorder
	op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
		outerRuns++
		attempt := outerRuns
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+log+" VALUES ('earlier')"); err != nil {
			return 0, err
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) {
			stepRuns++
			if _, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = 1"); err != nil {
				return 0, err
			}
			if attempt == 1 {
				holdsRow1 <- struct{}{}
				<-proceed // the heavy transaction asks for row 1
			}
			_, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE id = 2")
			return attempt, err
		})
		return step.With(
			dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), stepRetried.option()),
			sqldb.InSavepoint(tx, mysqldb.MariaDB),
		).Run(ctx)
	})

	type result struct {
		attempt int
		err     error
	}
	done := make(chan result, 1)
	go func() {
		a, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), outerRetried.option())).Run(t.Context())
		done <- result{a, err}
	}()
	<-holdsRow1
	h.requestRow1()
	close(proceed) // the request for row 2 and the locker's for row 1 close the cycle; this transaction, the lighter, is the victim
	h.commit(t)
	r := <-done

	if r.err != nil || r.attempt != 2 {
		t.Fatalf("Run = %d, %v; want 2, nil", r.attempt, r.err)
	}
	wantMySQLErrors(t, outerRetried.all(), 1, 1213, dbop.RetryTransaction)
	if got := stepRetried.all(); len(got) != 0 {
		t.Errorf("the savepoint's retry retried %v; a deadlock must escalate", got)
	}
	if outerRuns != 2 || stepRuns != 2 {
		t.Errorf("transaction ran %d times, step %d times; want 2 and 2", outerRuns, stepRuns)
	}
	if got := scalar[int](t, db, "SELECT COUNT(*) FROM "+log); got != 1 {
		t.Errorf("%d earlier rows, want 1", got)
	}
	for id := 1; id <= 2; id++ {
		if n := scalar[int](t, db, "SELECT n FROM "+tbl+" WHERE id = ?", id); n != 11 {
			t.Errorf("row %d: n = %d, want 11", id, n)
		}
	}
}

// What MariaDB does after a deadlock inside a savepoint, recorded live
// (docs/backends.md §3.2; MySQL 8.x ⚠ not tested): the whole transaction is rolled
// back and ended, so ROLLBACK TO SAVEPOINT fails with 1305, and — unlike the
// 5.1 manual's "further SQL statements become part of the transaction" — a
// statement run afterwards is not in any transaction: it autocommits and
// survives a later ROLLBACK. Code that ignores a 1213 and carries on commits
// part of its work.
func TestMariaDBDeadlockEndsTransaction(t *testing.T) {
	db := openMariaDB(t)
	tbl := table(t, db, "sqldb_deadlock_ends", "(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
	log := table(t, db, "sqldb_deadlock_ends_log", "(k VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 0), (2, 0)")
	h := startHeavyLocker(t, db, tbl)

	a := conn(t, db)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "INSERT INTO "+log+" VALUES ('before')")
	mustExec(t, a, "SAVEPOINT s1")
	mustExec(t, a, "UPDATE "+tbl+" SET n = n + 1 WHERE id = 1")
	h.requestRow1()
	_, err := a.ExecContext(t.Context(), "UPDATE "+tbl+" SET n = n + 1 WHERE id = 2")
	if mysqlNumber(err) != 1213 {
		t.Fatalf("got %v, want a deadlock (1213)", err)
	}
	h.commit(t)

	if got := scalar[int](t, a, "SELECT @@in_transaction"); got != 0 {
		t.Errorf("@@in_transaction = %d after 1213, want 0 (the transaction has ended)", got)
	}
	_, err = a.ExecContext(t.Context(), "ROLLBACK TO SAVEPOINT s1")
	if mysqlNumber(err) != 1305 {
		t.Errorf("ROLLBACK TO SAVEPOINT after 1213: %v, want 1305 (the savepoint is gone)", err)
	}
	mustExec(t, a, "INSERT INTO "+log+" VALUES ('after')")
	mustExec(t, a, "ROLLBACK")
	if got := scalar[int](t, db, "SELECT COUNT(*) FROM "+log+" WHERE k = 'before'"); got != 0 {
		t.Errorf("the row written before the deadlock survived (%d)", got)
	}
	if got := scalar[int](t, db, "SELECT COUNT(*) FROM "+log+" WHERE k = 'after'"); got != 1 {
		t.Errorf("the row written after the deadlock: %d, want 1 (autocommitted, not undone by ROLLBACK)", got)
	}
}
