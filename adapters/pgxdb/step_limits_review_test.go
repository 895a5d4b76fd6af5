package pgxdb_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// an inner step's serialization failure (40001) dooms InTx's
// transaction; the outer step's function swallows it and returns nil. The
// transaction's retry must run it again, whether or not the outer step has
// a WithTimeout of its own (which makes InSavepoint set, and after a
// successful attempt set back, server limits).
func TestStepLimitsSwallowedDoomUnderStepLimits(t *testing.T) {
	for _, outerTimeout := range []bool{false, true} {
		t.Run(map[bool]string{false: "no step deadline", true: "step deadline"}[outerTimeout], func(t *testing.T) {
			pool := newPool(t, 2)
			attempts := 0
			op := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				attempts++
				first := attempts == 1
				outer := []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2))}
				if outerTimeout {
					outer = append(outer, dbop.WithTimeout(5*time.Second))
				}
				outer = append(outer, pgxdb.InSavepoint(tx))
				_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
					_, ierr := dbop.Op[int](func(ctx context.Context) (int, error) {
						if first {
							_, err := tx.Exec(ctx, "DO $$BEGIN RAISE EXCEPTION 'review' USING ERRCODE = '40001'; END$$")
							return 0, err
						}
						return 0, nil
					}).With(pgxdb.InSavepoint(tx)).Run(ctx)
					t.Logf("attempt %d: inner step: %v (swallowed)", attempts, ierr)
					return 0, nil
				}).With(outer...).Run(ctx)
				t.Logf("attempt %d: outer step: %v", attempts, err)
				return err
			}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), dbop.WithTimeout(30*time.Second))
			_, err := op.Run(t.Context())
			t.Logf("result: %v after %d attempts (verdict %v)", err, attempts, dbop.VerdictOf(err))
			if err != nil || attempts != 2 {
				t.Errorf("got %v after %d transaction attempts; want success after 2", err, attempts)
			}
		})
	}
}

// a step attempt that succeeds at the server but returns just
// after its per-attempt deadline (Go work after the statement overran).
// The restore of the step's limits runs without the deadline, but the
// scope's RELEASE SAVEPOINT runs with the expired attempt context.
func TestStepLimitsStepReturningAfterItsDeadline(t *testing.T) {
	pool := newPool(t, 2)
	attempts, steps := 0, 0
	var stepErr error
	var closed bool
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		attempts++
		_, stepErr = dbop.Op[int](func(ctx context.Context) (int, error) {
			steps++
			if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
				return 0, err
			}
			if steps == 1 {
				<-ctx.Done() // post-processing overran the attempt's deadline
			}
			return 0, nil
		}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3)), dbop.WithTimeout(100*time.Millisecond), pgxdb.InSavepoint(tx)).Run(ctx)
		closed = tx.Conn().IsClosed()
		return stepErr
	}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3))).Run(t.Context())
	t.Logf("transaction attempts %d, step attempts %d, step error %v, connection closed %v, result %v", attempts, steps, stepErr, closed, err)
	if attempts != 1 {
		t.Errorf("the step's overrun cost the caller's transaction (%d transaction attempts)", attempts)
	}
}

// nested savepoint steps with different deadlines; the inner one
// fails once on its own limit (a lock held by a rival) and is retried; the
// limits in force are the outer step's again after the inner, and none
// after the outer.
func TestStepLimitsNestedStepLimits(t *testing.T) {
	pool := newPool(t, 2)
	admin := newPool(t, 2)
	tbl := "pgxdb_step_limits_nested"
	createTable(t, admin, tbl, "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO "+tbl+" VALUES (1, 0)")
	rival, err := admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exec(t, rival, "UPDATE "+tbl+" SET v = v + 100 WHERE id = 1")
	defer func() { _ = rival.Rollback(context.Background()) }()
	// The rival lets go once the inner step's first attempt has failed
	// (OnRetry), however long the steps before it took.
	release := func(context.Context, dbop.AttemptEvent) { _ = rival.Rollback(context.Background()) }
	var log []string
	innerAttempts := 0
	_, err = pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		log = append(log, "before "+showLimits(ctx, t, tx))
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			log = append(log, "outer "+showLimits(ctx, t, tx))
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				innerAttempts++
				// The UPDATE starts at once after the savepoint: the
				// server's limit, set there to the time left less the
				// margin (50 ms), ends its lock wait before the
				// attempt's deadline would, which would close the
				// connection (pgx cancels a statement its context
				// ends by closing it). A round trip before it, on a
				// machine busy with the race detector, once took
				// more than a 300 ms step's 30 ms margin.
				var stmt, lock string
				err := tx.QueryRow(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1 RETURNING current_setting('statement_timeout'), current_setting('lock_timeout')").Scan(&stmt, &lock)
				if err != nil {
					log = append(log, "inner "+err.Error())
				} else {
					log = append(log, "inner statement_timeout="+stmt+" lock_timeout="+lock)
				}
				return 0, err
			}).With(dbop.WithRetry(dbop.Constant(50*time.Millisecond), dbop.MaxAttempts(10), dbop.OnRetry(release)), dbop.WithTimeout(500*time.Millisecond), pgxdb.InSavepoint(tx)).Run(ctx)
			log = append(log, "outer after inner "+showLimits(ctx, t, tx))
			return 0, err
		}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2)), dbop.WithTimeout(5*time.Second), pgxdb.InSavepoint(tx)).Run(ctx)
		log = append(log, "after "+showLimits(ctx, t, tx))
		return err
	}).Run(t.Context())
	for _, l := range log {
		t.Log(l)
	}
	t.Logf("inner attempts %d, err %v", innerAttempts, err)
	if err != nil || log[0] != "before statement_timeout=0 lock_timeout=0" || log[len(log)-1] != "after statement_timeout=0 lock_timeout=0" {
		t.Error("unexpected")
	}
	if innerAttempts < 2 || !strings.Contains(log[2], "SQLSTATE 57014") && !strings.Contains(log[2], "SQLSTATE 55P03") {
		t.Errorf("the inner step's first attempt was not ended by the server's limit (%d attempts)", innerAttempts)
	}
	if outer, after := log[1], log[len(log)-2]; after != "outer after inner "+strings.TrimPrefix(outer, "outer ") {
		t.Errorf("after the inner step the outer step's limits are not back: %q, then %q", outer, after)
	}
	var v int
	if err := admin.QueryRow(t.Context(), "SELECT v FROM "+tbl+" WHERE id = 1").Scan(&v); err != nil || v != 1 {
		t.Errorf("v = %d (%v), want 1", v, err)
	}
}

// a step whose function swallows the 57014 its own limit raised
// and returns nil: what error does the user see?
func TestStepLimitsSwallowed57014(t *testing.T) {
	pool := newPool(t, 2)
	var stepErr error
	steps := 0
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, stepErr = dbop.Op[int](func(ctx context.Context) (int, error) {
			steps++
			_, err := tx.Exec(ctx, "SELECT pg_sleep(1)")
			t.Logf("swallowed: %v", err)
			return 0, nil
		}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2)), dbop.WithTimeout(200*time.Millisecond), pgxdb.InSavepoint(tx)).Run(ctx)
		return stepErr
	}).Run(t.Context())
	t.Logf("step attempts %d, step error: %v; verdict %v; InTx: %v", steps, stepErr, dbop.VerdictOf(stepErr), err)
	if err == nil || strings.Contains(err.Error(), "restoring the server limits") || !strings.Contains(err.Error(), "release savepoint") {
		t.Errorf("InTx: %v; want the RELEASE's error on the aborted transaction, as without the step's limits", err)
	}
}

// role defaults (ALTER ROLE … SET): a lower one is kept by InTx
// and by a step; a higher one is lowered.
func TestStepLimitsRoleDefaults(t *testing.T) {
	admin := newPool(t, 1)
	for _, q := range []string{
		"DROP ROLE IF EXISTS step_limits_lo", "DROP ROLE IF EXISTS step_limits_hi",
		"CREATE ROLE step_limits_lo LOGIN", "CREATE ROLE step_limits_hi LOGIN",
		"ALTER ROLE step_limits_lo SET statement_timeout = '150ms'", "ALTER ROLE step_limits_lo SET lock_timeout = '1min'",
		"ALTER ROLE step_limits_hi SET statement_timeout = '1h'",
	} {
		if _, err := admin.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{"DROP ROLE IF EXISTS step_limits_lo", "DROP ROLE IF EXISTS step_limits_hi"} {
			if _, err := admin.Exec(context.Background(), q); err != nil {
				t.Error(err)
			}
		}
	})
	for _, c := range []struct{ role, want string }{{"step_limits_lo", "150ms"}, {"step_limits_hi", ""}} {
		pool := newPool(t, 1, func(cfg *pgxpool.Config) { cfg.ConnConfig.User = c.role })
		var intx, step, after string
		_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			intx = showLimits(ctx, t, tx)
			_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
				step = showLimits(ctx, t, tx)
				return 0, nil
			}).With(dbop.WithRetry(retryAtOnce), dbop.WithTimeout(2*time.Second), pgxdb.InSavepoint(tx)).Run(ctx)
			after = showLimits(ctx, t, tx)
			return err
		}).With(dbop.WithTimeout(5 * time.Second)).Run(t.Context())
		t.Logf("%s: InTx %s | step %s | after step %s | err %v", c.role, intx, step, after, err)
		var conn string
		if err := pool.QueryRow(t.Context(), "SELECT current_setting('statement_timeout') || ' ' || current_setting('lock_timeout')").Scan(&conn); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: next checkout %s", c.role, conn)
	}
}

// slowConn delays every write by d: a slow link.
type slowConn struct {
	net.Conn
	d time.Duration
}

func (c slowConn) Write(b []byte) (int, error) { time.Sleep(c.d); return c.Conn.Write(b) }

// the slow-link path (the set round trip ate more than a quarter
// of the margin): the limits are set back and set again; a held lock is
// still ended by the server, the caller's connection survives, and the
// limits are back to none after the step.
func TestStepLimitsSlowLinkResets(t *testing.T) {
	admin := newPool(t, 2)
	tbl := "pgxdb_step_limits_slow"
	createTable(t, admin, tbl, "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO "+tbl+" VALUES (1, 0)")
	var log sqlLog
	pool := newPool(t, 1, traced(&log), func(cfg *pgxpool.Config) {
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return slowConn{c, 15 * time.Millisecond}, nil
		}
	})
	rival, err := admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exec(t, rival, "UPDATE "+tbl+" SET v = v + 100 WHERE id = 1")
	defer func() { _ = rival.Rollback(context.Background()) }()
	var after string
	var stepErr error
	var closed bool
	_, _ = pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, stepErr = dbop.Op[int](func(ctx context.Context) (int, error) {
			// The UPDATE starts at once after the savepoint: its
			// write's 15 ms come out of the 600 ms step's 50 ms
			// margin, and a round trip of 15 ms more before it left
			// too little of the 400 ms step's 40 ms on a machine busy
			// with the race detector (the deadline overtook the
			// server's limit, and pgx closed the connection).
			_, err := tx.Exec(ctx, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1")
			return 0, err
		}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(1)), dbop.WithTimeout(600*time.Millisecond), pgxdb.InSavepoint(tx)).Run(ctx)
		closed = tx.Conn().IsClosed()
		if !closed {
			after = showLimits(ctx, t, tx)
		}
		return nil
	}).Run(t.Context())
	n := 0
	for _, s := range log.Log() {
		if strings.Contains(s, "set_config") {
			n++
		}
	}
	t.Logf("step error %v; closed %v; after %s; set_config statements %d", stepErr, closed, after, n)
	if closed || after != "statement_timeout=0 lock_timeout=0" {
		t.Error("unexpected")
	}
	if n < 3 {
		t.Errorf("%d set_config statements, want 3 or more: the slow link did not make the scope set the limits again", n)
	}
	if !strings.Contains(fmt.Sprint(stepErr), "SQLSTATE 57014") && !strings.Contains(fmt.Sprint(stepErr), "SQLSTATE 55P03") {
		t.Errorf("step error %v, want the server's limit (57014 or 55P03) to end the held lock's wait", stepErr)
	}
}
