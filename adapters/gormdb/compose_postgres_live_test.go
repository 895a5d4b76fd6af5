package gormdb_test

// Live compositions on PostgreSQL through GORM's postgres dialector: the
// shapes of scopes/compose_test.go, with real errors made between two
// connections (the invariants of the package documentation of
// github.com/dbop-go/dbop). Every test checks that its error fired, with
// the code it wanted, so that none passes because its fault did not
// happen. Names start with pgc (PostgreSQL compositions).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// The rows of a composition table: fn writes A, the step writes B (and
// fails there, once), an outer savepoint step writes C.
const (
	pgcRowA = 1
	pgcRowB = 2
	pgcRowC = 3
)

// pgcCodes are the real errors the step's UPDATE of row B fails with.
var pgcCodes = []string{"40P01", "40001", "55P03"}

func pgcVerdict(code string) dbop.Verdict {
	if code == "55P03" {
		return dbop.RetryStatement
	}
	return dbop.RetryTransaction
}

// pgcLog is a pgx.QueryTracer that records each statement, followed by
// " -> SQLSTATE" when the server failed it.
type pgcLog struct {
	mu      sync.Mutex
	entries []string
}

type pgcLogKey struct{}

func (l *pgcLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, strings.Join(strings.Fields(data.SQL), " "))
	return context.WithValue(ctx, pgcLogKey{}, len(l.entries)-1)
}

func (l *pgcLog) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	i, ok := ctx.Value(pgcLogKey{}).(int)
	if data.Err == nil || !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i] += " -> " + pgCode(data.Err)
}

func (l *pgcLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

func (l *pgcLog) log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}

// pgcOpen opens GORM on the test PostgreSQL, its statements traced into
// log. Its sessions detect a deadlock after 50ms, the rival's after 10s:
// the transaction under test, which closes the cycle, is the one that
// detects it, and so the victim.
func pgcOpen(t *testing.T, log *pgcLog) *gorm.DB {
	t.Helper()
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["deadlock_timeout"] = "50ms"
	cc.Tracer = log
	return openPostgres(t, cc, nil)
}

// pgcTable creates the table name with rows A, B and C, n = 0.
func pgcTable(t *testing.T, admin *gorm.DB, name string) string {
	t.Helper()
	createTable(t, admin, name, "id int PRIMARY KEY, n int NOT NULL DEFAULT 0, touched int NOT NULL DEFAULT 0")
	exec(t, admin, "INSERT INTO "+name+" (id) VALUES (1), (2), (3)")
	return name
}

func pgcUpdate(tbl string, id int) string {
	return fmt.Sprintf("UPDATE %s SET n = n + 1 WHERE id = %d", tbl, id)
}

func pgcRows(t *testing.T, db *gorm.DB, tbl string) string {
	t.Helper()
	var s string
	if err := db.Raw("SELECT string_agg(format('%s:%s', id, n), ' ' ORDER BY id) FROM " + tbl).Scan(&s).Error; err != nil {
		t.Fatal(err)
	}
	return s
}

// pgcRetries records the OnRetry events of a retry.
type pgcRetries struct{ events []dbop.AttemptEvent }

// strings returns each retried error as "SQLSTATE verdict".
func (r *pgcRetries) strings() []string {
	var out []string
	for _, e := range r.events {
		out = append(out, pgCode(e.Err)+" "+e.Verdict.String())
	}
	return out
}

// pgcCodesIn returns the SQLSTATE of every *pgconn.PgError in err's tree.
func pgcCodesIn(err error) []string {
	var codes []string
	var walk func(error)
	walk = func(err error) {
		for err != nil {
			if pe, ok := err.(*pgconn.PgError); ok {
				codes = append(codes, pe.Code)
			}
			switch e := err.(type) {
			case interface{ Unwrap() error }:
				err = e.Unwrap()
			case interface{ Unwrap() []error }:
				for _, inner := range e.Unwrap() {
					walk(inner)
				}
				return
			default:
				return
			}
		}
	}
	walk(err)
	return codes
}

func pgcDiff(t *testing.T, what string, want, got any) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// pgcPoll polls cond every few milliseconds until it holds, failing t
// after ten seconds. It waits for a state another backend reaches, shown
// by pg_stat_activity; it never stands in for a barrier.
func pgcPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pgcRival is the second connection that makes the step's UPDATE of row B
// fail once, for real, with code:
//
//   - 40P01: it holds row B; once the transaction under test holds row A
//     (beforeStep), it asks for A and waits (the test polls
//     pg_stat_activity until it does); the step's UPDATE of B closes the
//     cycle, and the transaction under test detects the deadlock;
//   - 40001: once the transaction under test (REPEATABLE READ) has its
//     snapshot (beforeStep), it updates row B and commits; the step's
//     UPDATE of B then cannot serialize;
//   - 55P03: it holds row B until a retry handles the 55P03 (release), so
//     the step's UPDATE of B outlasts lock_timeout.
//
// The rival's writes touch the column touched, never n.
type pgcRival struct {
	t        *testing.T
	code     string
	tbl      string
	admin    *gorm.DB
	conn     *sql.Conn
	fired    bool       // beforeStep set the fault off; it does once
	released bool       // the rival's transaction has ended (or never began)
	waited   chan error // 40P01: the end of the rival's wait for row A
	over     bool       // 40P01: await has run
}

func newPgcRival(t *testing.T, admin *gorm.DB, tbl, code string) *pgcRival {
	t.Helper()
	sqlDB, err := admin.DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := &pgcRival{t: t, code: code, tbl: tbl, admin: admin, conn: conn, released: code == "40001"}
	t.Cleanup(r.finish) // before the table is dropped
	if code != "40001" {
		r.exec("BEGIN")
		r.exec("SET LOCAL deadlock_timeout = '10s'")
		r.exec(fmt.Sprintf("UPDATE %s SET touched = touched + 1 WHERE id = %d", tbl, pgcRowB))
	}
	return r
}

func (r *pgcRival) exec(stmt string) {
	r.t.Helper()
	if _, err := r.conn.ExecContext(context.Background(), stmt); err != nil {
		r.t.Fatalf("rival: %s: %v", stmt, err)
	}
}

func (r *pgcRival) txOptions() []gormdb.TxOption {
	opts := []gormdb.TxOption{gormdb.Isolation(sql.LevelRepeatableRead)}
	if r.code == "55P03" {
		opts = append(opts, gormdb.LockTimeout(50*time.Millisecond))
	}
	return opts
}

// beforeStep is called by the transaction under test once it holds row A
// and has its snapshot, right before the step; the first call sets the
// fault off.
func (r *pgcRival) beforeStep() {
	t := r.t
	t.Helper()
	if r.fired {
		return
	}
	r.fired = true
	switch r.code {
	case "40P01":
		var pid int
		if err := r.conn.QueryRowContext(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		r.waited = make(chan error, 1)
		go func() {
			_, err := r.conn.ExecContext(t.Context(), fmt.Sprintf("UPDATE %s SET touched = touched + 1 WHERE id = %d", r.tbl, pgcRowA))
			if _, rbErr := r.conn.ExecContext(context.Background(), "ROLLBACK"); err == nil {
				err = rbErr
			}
			r.waited <- err
		}()
		pgcPoll(t, fmt.Sprintf("backend %d waits for a lock", pid), func() bool {
			var waiting bool
			err := r.admin.Raw("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock')", pid).Scan(&waiting).Error
			return err == nil && waiting
		})
	case "40001":
		r.exec(fmt.Sprintf("UPDATE %s SET touched = touched + 1 WHERE id = %d", r.tbl, pgcRowB))
	}
}

// onRetry, for a retry inside the transaction under test, records the
// event in rec and releases a 55P03 rival's lock, so that the attempt after
// the retried one can take it.
func (r *pgcRival) onRetry(rec *pgcRetries) dbop.RetryOption {
	return dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		rec.events = append(rec.events, e)
		r.release()
	})
}

// ownerRetry is onRetry for the retry around the transaction's owner,
// which has ended the transaction: it also waits until a 40P01 rival,
// unblocked by the rollback, has ended its own transaction, so that the
// next attempt cannot lose the race for row A and deadlock again.
func (r *pgcRival) ownerRetry(rec *pgcRetries) dbop.RetryOption {
	return dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
		rec.events = append(rec.events, e)
		r.release()
		r.await()
	})
}

func (r *pgcRival) release() {
	if r.code == "55P03" && !r.released {
		r.released = true
		r.exec("ROLLBACK")
	}
}

// await waits until a 40P01 rival's wait for row A, and its transaction,
// have ended.
func (r *pgcRival) await() {
	t := r.t
	if r.waited == nil || r.over {
		return
	}
	r.over, r.released = true, true
	select {
	case err := <-r.waited:
		if err != nil {
			t.Errorf("the rival's wait for row A: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the rival still waits for row A")
	}
}

func (r *pgcRival) finish() {
	t := r.t
	r.await()
	if !r.released {
		if _, err := r.conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Errorf("rival: ROLLBACK: %v", err)
		}
	}
	if r.code == "40P01" && !r.fired {
		t.Errorf("the deadlock was never set off")
	}
	r.conn.Close()
}

// pgcSetup opens the database of the transaction under test (traced),
// an admin one, the table and the rival.
func pgcSetup(t *testing.T, name, code string) (db *gorm.DB, log *pgcLog, admin *gorm.DB, tbl string, r *pgcRival) {
	t.Helper()
	log = new(pgcLog)
	db, admin = pgcOpen(t, log), livePostgres(t, nil)
	tbl = pgcTable(t, admin, name+"_"+strings.ToLower(code))
	return db, log, admin, tbl, newPgcRival(t, admin, tbl, code)
}

const pgcBegin = "begin isolation level repeatable read"

// pgcExec runs stmt on tx with ctx and returns its error.
func pgcExec(ctx context.Context, tx *gorm.DB, stmt string) error {
	return tx.WithContext(ctx).Exec(stmt).Error
}

// S1, S2: a retry inside InTx's function, with InTx's context and no
// savepoint, around a step that fails with a real error. The retry inside
// makes no second attempt, with or without a classifier: nothing undid
// the failed statement. InTx rolls back, the retry around InTx runs the
// whole transaction again, and every write lands once.
func TestLiveComposePostgresRetryInsideInTx(t *testing.T) {
	pgcRetryInsideInTx(t, "gormdb_pgc_inner")
}

func TestLiveComposePostgresRetryInsideInTxClassifyBy(t *testing.T) {
	pgcRetryInsideInTx(t, "gormdb_pgc_inner_cls", dbop.ClassifyBy(classifiers.Postgres))
}

func pgcRetryInsideInTx(t *testing.T, name string, inside ...dbop.Decorator) {
	for _, code := range pgcCodes {
		t.Run(code, func(t *testing.T) {
			db, _, admin, tbl, r := pgcSetup(t, name, code)
			var steps []int
			var inner, outer pgcRetries
			op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				steps = append(steps, 0)
				if err := pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowA)); err != nil {
					return 0, err
				}
				r.beforeStep()
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					steps[len(steps)-1]++
					return 1, pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowB))
				})
				ds := append([]dbop.Decorator{dbop.WithRetry(dbop.Constant(0), r.onRetry(&inner))}, inside...)
				return step.With(ds...).Run(ctx)
			}, r.txOptions()...)
			n, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), r.ownerRetry(&outer))).Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			pgcDiff(t, "retries inside InTx", []string(nil), inner.strings())
			pgcDiff(t, "retries around InTx", []string{code + " " + pgcVerdict(code).String()}, outer.strings())
			pgcDiff(t, "step runs per transaction", []int{1, 1}, steps)
			pgcDiff(t, "rows", "1:1 2:1 3:0", pgcRows(t, admin, tbl))
		})
	}
}

// S3: a transaction the caller began by hand (db.Begin), a retry around
// InSavepoint, run with a plain context. After 40P01 or 40001 the retry
// makes no second attempt and the caller gets the driver's original error
// (not a 25P02 from a statement run in the aborted transaction); the
// caller rolls back and its own retry around begin…commit runs everything
// again. After 55P03 the step is rolled back to its savepoint and retried
// in place.
func TestLiveComposePostgresByHandSavepoint(t *testing.T) {
	for _, code := range pgcCodes {
		t.Run(code, func(t *testing.T) {
			db, log, admin, tbl, r := pgcSetup(t, "gormdb_pgc_hand", code)
			var steps []int
			var stepErrs []error
			var inner, outer pgcRetries
			caller := dbop.Op[int](func(ctx context.Context) (int, error) {
				steps = append(steps, 0)
				tx := db.WithContext(ctx).Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
				if tx.Error != nil {
					return 0, tx.Error
				}
				fail := func(err error) (int, error) {
					tx.Rollback()
					return 0, err
				}
				if code == "55P03" {
					if err := pgcExec(ctx, tx, "SET LOCAL lock_timeout = 50"); err != nil {
						return fail(err)
					}
				}
				if err := pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowA)); err != nil {
					return fail(err)
				}
				r.beforeStep()
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					steps[len(steps)-1]++
					return 1, pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowB))
				})
				_, err := step.With(dbop.WithRetry(dbop.Constant(0), r.onRetry(&inner)), gormdb.InSavepoint(tx)).Run(context.Background())
				if err != nil {
					stepErrs = append(stepErrs, err)
					return fail(err)
				}
				return 1, tx.Commit().Error
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), r.ownerRetry(&outer)), dbop.ClassifyBy(classifiers.Postgres))
			log.reset()
			n, err := caller.Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			a, b := pgcUpdate(tbl, pgcRowA), pgcUpdate(tbl, pgcRowB)
			sp := `SAVEPOINT "dbop_sp_1"`
			if code == "55P03" {
				pgcDiff(t, "retries around the savepoint", []string{"55P03 retry-statement"}, inner.strings())
				pgcDiff(t, "the caller's retries", []string(nil), outer.strings())
				pgcDiff(t, "step runs per transaction", []int{2}, steps)
				pgcDiff(t, "statements", []string{
					pgcBegin, "SET LOCAL lock_timeout = 50", a,
					sp, b + " -> 55P03", "ROLLBACK TO " + sp, "RELEASE " + sp,
					sp, b, "RELEASE " + sp, "commit",
				}, log.log())
			} else {
				pgcDiff(t, "retries around the savepoint", []string(nil), inner.strings())
				pgcDiff(t, "the caller's retries", []string{code + " retry-transaction"}, outer.strings())
				pgcDiff(t, "step runs per transaction", []int{1, 1}, steps)
				if len(stepErrs) != 1 {
					t.Fatalf("the step failed %d times, want once", len(stepErrs))
				}
				if _, ok := errors.AsType[*pgconn.PgError](stepErrs[0]); !ok {
					t.Errorf("errors.As does not reach the *pgconn.PgError of %v", stepErrs[0])
				}
				pgcDiff(t, "SQLSTATEs in the step's error", []string{code}, pgcCodesIn(stepErrs[0]))
				pgcDiff(t, "statements", []string{
					pgcBegin, a, sp, b + " -> " + code, "rollback",
					pgcBegin, a, sp, b, "RELEASE " + sp, "commit",
				}, log.log())
			}
			pgcDiff(t, "rows", "1:1 2:1 3:0", pgcRows(t, admin, tbl))
		})
	}
}

// S4: nested savepoints inside InTx, each with a retry around it. When the
// inner statement fails with 40P01 or 40001 neither retry runs again and
// the retry around InTx runs the transaction again; a 55P03 is retried by
// the inner retry alone, at the inner savepoint.
func TestLiveComposePostgresNestedSavepoints(t *testing.T) {
	for _, code := range pgcCodes {
		t.Run(code, func(t *testing.T) {
			db, log, admin, tbl, r := pgcSetup(t, "gormdb_pgc_nested", code)
			var outerSteps, innerSteps []int
			var inner, middle, outer pgcRetries
			op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				outerSteps, innerSteps = append(outerSteps, 0), append(innerSteps, 0)
				if err := pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowA)); err != nil {
					return 0, err
				}
				r.beforeStep()
				innerStep := dbop.Op[int](func(ctx context.Context) (int, error) {
					innerSteps[len(innerSteps)-1]++
					return 1, pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowB))
				})
				outerStep := dbop.Op[int](func(ctx context.Context) (int, error) {
					outerSteps[len(outerSteps)-1]++
					if err := pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowC)); err != nil {
						return 0, err
					}
					return innerStep.With(dbop.WithRetry(dbop.Constant(0), r.onRetry(&inner)), gormdb.InSavepoint(tx)).Run(ctx)
				})
				return outerStep.With(dbop.WithRetry(dbop.Constant(0), r.onRetry(&middle)), gormdb.InSavepoint(tx)).Run(ctx)
			}, r.txOptions()...)
			log.reset()
			n, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), r.ownerRetry(&outer))).Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			pgcDiff(t, "retries around the outer savepoint", []string(nil), middle.strings())
			a, b, c := pgcUpdate(tbl, pgcRowA), pgcUpdate(tbl, pgcRowB), pgcUpdate(tbl, pgcRowC)
			sp1, sp2 := `SAVEPOINT "dbop_sp_1"`, `SAVEPOINT "dbop_sp_2"`
			if code == "55P03" {
				pgcDiff(t, "retries around the inner savepoint", []string{"55P03 retry-statement"}, inner.strings())
				pgcDiff(t, "retries around InTx", []string(nil), outer.strings())
				pgcDiff(t, "outer step runs per transaction", []int{1}, outerSteps)
				pgcDiff(t, "inner step runs per transaction", []int{2}, innerSteps)
				pgcDiff(t, "statements (after BEGIN and the settings)", []string{
					a, sp1, c, sp2, b + " -> 55P03", "ROLLBACK TO " + sp2, "RELEASE " + sp2,
					sp2, b, "RELEASE " + sp2, "RELEASE " + sp1, "commit",
				}, pgcAfterSettings(log.log()))
			} else {
				pgcDiff(t, "retries around the inner savepoint", []string(nil), inner.strings())
				pgcDiff(t, "retries around InTx", []string{code + " retry-transaction"}, outer.strings())
				pgcDiff(t, "outer step runs per transaction", []int{1, 1}, outerSteps)
				pgcDiff(t, "inner step runs per transaction", []int{1, 1}, innerSteps)
				pgcDiff(t, "statements", []string{
					pgcBegin, a, sp1, c, sp2, b + " -> " + code, "rollback",
					pgcBegin, a, sp1, c, sp2, b, "RELEASE " + sp2, "RELEASE " + sp1, "commit",
				}, log.log())
			}
			pgcDiff(t, "rows", "1:1 2:1 3:1", pgcRows(t, admin, tbl))
		})
	}
}

// pgcAfterSettings drops the BEGIN and the statement that sets the
// per-attempt timeouts, whose text is gormdb's to choose, from the start
// of log.
func pgcAfterSettings(log []string) []string {
	if len(log) >= 2 && log[0] == pgcBegin && strings.Contains(log[1], "lock_timeout") {
		return log[2:]
	}
	return log
}

// S5: fn swallows the error of a step that doomed the transaction and
// returns nil. InTx does not commit: it rolls back and returns the step's
// error, which the retry around InTx retries.
func TestLiveComposePostgresSwallowedDoom(t *testing.T) {
	for _, code := range []string{"40P01", "40001"} {
		t.Run(code, func(t *testing.T) {
			db, log, admin, tbl, r := pgcSetup(t, "gormdb_pgc_swallow", code)
			var steps []int
			var stepErrs []error
			var inner, outer pgcRetries
			op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				steps = append(steps, 0)
				if err := pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowA)); err != nil {
					return 0, err
				}
				r.beforeStep()
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					steps[len(steps)-1]++
					return 1, pgcExec(ctx, tx, pgcUpdate(tbl, pgcRowB))
				})
				if _, err := step.With(dbop.WithRetry(dbop.Constant(0), r.onRetry(&inner)), gormdb.InSavepoint(tx)).Run(ctx); err != nil {
					stepErrs = append(stepErrs, err) // and swallowed
				}
				return 1, nil
			}, r.txOptions()...)
			log.reset()
			n, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), r.ownerRetry(&outer))).Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			pgcDiff(t, "retries around the savepoint", []string(nil), inner.strings())
			pgcDiff(t, "retries around InTx", []string{code + " retry-transaction"}, outer.strings())
			if len(stepErrs) != 1 || len(outer.events) != 1 || !errors.Is(outer.events[0].Err, stepErrs[0]) {
				t.Errorf("InTx returned %v, want the swallowed step error %v", outer.events, stepErrs)
			}
			pgcDiff(t, "step runs per transaction", []int{1, 1}, steps)
			a, b, sp := pgcUpdate(tbl, pgcRowA), pgcUpdate(tbl, pgcRowB), `SAVEPOINT "dbop_sp_1"`
			pgcDiff(t, "statements", []string{
				pgcBegin, a, sp, b + " -> " + code, "rollback", // no COMMIT
				pgcBegin, a, sp, b, "RELEASE " + sp, "commit",
			}, log.log())
			pgcDiff(t, "rows", "1:1 2:1 3:0", pgcRows(t, admin, tbl))
		})
	}
}

// S6: errors no rule retries reach the caller as the very values the
// operation returned, after one run: gorm.ErrRecordNotFound and a real
// 23505 from InTx's function under a retry, and the same from autocommit
// statements under a retry with classifiers.Default.
func TestLiveComposePostgresFinalErrorsUnchanged(t *testing.T) {
	db, admin := livePostgres(t, nil), livePostgres(t, nil)
	tbl := pgcTable(t, admin, "gormdb_pgc_final")
	notFound := func(ctx context.Context, q *gorm.DB) error {
		var row struct{ ID, N int }
		return q.WithContext(ctx).Table(tbl).Where("id = ?", 99).Take(&row).Error
	}
	duplicate := func(ctx context.Context, q *gorm.DB) error {
		return pgcExec(ctx, q, "INSERT INTO "+tbl+" (id) VALUES (1)")
	}
	inTx := func(stmt func(context.Context, *gorm.DB) error) func(runs *int, opErr *error) dbop.Op[int] {
		return func(runs *int, opErr *error) dbop.Op[int] {
			return gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				*runs++
				*opErr = stmt(ctx, tx)
				return 1, *opErr
			}).With(dbop.WithRetry(dbop.Constant(0)))
		}
	}
	autocommit := func(stmt func(context.Context, *gorm.DB) error) func(runs *int, opErr *error) dbop.Op[int] {
		return func(runs *int, opErr *error) dbop.Op[int] {
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				*runs++
				*opErr = stmt(ctx, db)
				return 1, *opErr
			}).With(dbop.WithRetry(dbop.Constant(0)), dbop.ClassifyBy(classifiers.Default))
		}
	}
	tests := []struct {
		name     string
		op       func(runs *int, opErr *error) dbop.Op[int]
		wantCode string // "" for gorm.ErrRecordNotFound
	}{
		{"InTx/ErrRecordNotFound", inTx(notFound), ""},
		{"InTx/23505", inTx(duplicate), "23505"},
		{"autocommit/ErrRecordNotFound/ClassifyBy(Default)", autocommit(notFound), ""},
		{"autocommit/23505/ClassifyBy(Default)", autocommit(duplicate), "23505"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var runs int
			var opErr error
			_, err := tt.op(&runs, &opErr).Run(t.Context())
			if runs != 1 {
				t.Errorf("the operation ran %d times, want 1", runs)
			}
			if tt.wantCode == "" && opErr != gorm.ErrRecordNotFound {
				t.Fatalf("the operation failed with %v, want gorm.ErrRecordNotFound", opErr)
			}
			if tt.wantCode != "" {
				if pe, ok := errors.AsType[*pgconn.PgError](opErr); !ok || pe.Code != tt.wantCode {
					t.Fatalf("the operation failed with %#v, want a *pgconn.PgError %s", opErr, tt.wantCode)
				}
			}
			if err != opErr {
				t.Errorf("Run returned %#v, want the operation's own error %#v", err, opErr)
			}
		})
	}
	pgcDiff(t, "rows", "1:0 2:0 3:0", pgcRows(t, admin, tbl))
}

// S7: a connection cut right after it forwarded COMMIT. The outcome is
// unknown: the error is Ambiguous and matches scopes.ErrAmbiguousCommit;
// a retry without Idempotent does not run the transaction again; OrDefault
// listed before the retry lets the ambiguous error through unless it is
// given AcceptAmbiguous. The server did commit: the row is there, once.
func TestLiveComposePostgresAmbiguousCommit(t *testing.T) {
	const fallback = -1
	tests := []struct {
		name      string
		decos     func(retry dbop.Decorator) []dbop.Decorator
		wantValue int
		wantErr   bool
	}{
		{"WithRetry", func(retry dbop.Decorator) []dbop.Decorator {
			return []dbop.Decorator{retry}
		}, 0, true},
		{"OrDefault, WithRetry", func(retry dbop.Decorator) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(fallback), retry}
		}, 0, true},
		{"OrDefault(AcceptAmbiguous), WithRetry", func(retry dbop.Decorator) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(fallback, dbop.AcceptAmbiguous()), retry}
		}, fallback, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin := livePostgres(t, nil)
			tbl := fmt.Sprintf("gormdb_pgc_cut_%d", i)
			createTable(t, admin, tbl, "id int PRIMARY KEY, n int NOT NULL")
			p, db := proxiedPostgres(t)
			var runs, backend int
			var rec pgcRetries
			op := gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (int, error) {
				runs++
				if runs == 1 {
					if err := tx.WithContext(ctx).Raw("SELECT pg_backend_pid()").Scan(&backend).Error; err != nil {
						return 0, err
					}
				}
				if err := pgcExec(ctx, tx, "INSERT INTO "+tbl+" VALUES (1, 1)"); err != nil {
					return 0, err
				}
				if runs == 1 {
					p.CutAfter([]byte("commit")) // pgx's stdlib driver sends "commit"
				}
				return 1, nil
			})
			retry := dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.OnRetry(func(_ context.Context, e dbop.AttemptEvent) {
				rec.events = append(rec.events, e)
			}))
			v, err := op.With(tt.decos(retry)...).Run(t.Context())
			if p.Cuts() != 1 {
				t.Fatalf("the proxy cut %d connections, want 1", p.Cuts())
			}
			if runs != 1 || len(rec.events) != 0 {
				t.Errorf("fn ran %d times after retries %+v, want once, never retried", runs, rec.events)
			}
			if v != tt.wantValue || (err != nil) != tt.wantErr {
				t.Errorf("Run = %d, %v; want %d and an error: %t", v, err, tt.wantValue, tt.wantErr)
			}
			if tt.wantErr {
				if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
					t.Errorf("verdict of %v = %v, want ambiguous", err, v)
				}
				if !errors.Is(err, scopes.ErrAmbiguousCommit) || !errors.Is(err, pgconn.ErrConnClosed) {
					t.Errorf("error %v does not match scopes.ErrAmbiguousCommit and the driver's pgconn.ErrConnClosed", err)
				}
			}
			pgcPoll(t, fmt.Sprintf("backend %d exits", backend), func() bool {
				var alive int
				err := admin.Raw("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", backend).Scan(&alive).Error
				return err == nil && alive == 0
			})
			if diff := cmp.Diff([]string{"1:1"}, queryRows(t, admin, tbl)); diff != "" {
				t.Errorf("rows (-want +got), the cut COMMIT was applied:\n%s", diff)
			}
		})
	}
}
