package pgxdb_test

// Live compositions: the shapes of scopes/compose_test.go on a real
// PostgreSQL, with real errors made between two connections (the
// invariants of the package documentation of github.com/dbop-go/dbop).
// Every test checks that its error fired, with the code it wanted, so
// that none passes because its fault did not happen.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/scopes"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The rows of a composition table: fn writes A, the step writes B (and
// fails there, once), an outer savepoint step writes C.
const (
	composeRowA = 1
	composeRowB = 2
	composeRowC = 3
)

// composeCodes are the real errors the step's UPDATE of row B fails with.
var composeCodes = []string{"40P01", "40001", "55P03"}

// composeVerdict is the verdict classifiers.Postgres gives code.
func composeVerdict(code string) dbop.Verdict {
	if code == "55P03" {
		return dbop.RetryStatement
	}
	return dbop.RetryTransaction
}

// composePools returns a traced pool for the transactions under test and
// an admin pool for the rival and the checks. The pool's sessions detect
// a deadlock after 50ms, the rival's after 10s: the transaction under
// test, which closes the cycle, is the one that detects it, and so the
// victim.
func composePools(t *testing.T) (pool *pgxpool.Pool, log *sqlLog, admin *pgxpool.Pool) {
	t.Helper()
	log = new(sqlLog)
	pool = newPool(t, 2, traced(log), func(cfg *pgxpool.Config) {
		cfg.ConnConfig.RuntimeParams["deadlock_timeout"] = "50ms"
	})
	return pool, log, newPool(t, 3)
}

// composeTable creates the table name with rows A, B and C, n = 0.
func composeTable(t *testing.T, admin *pgxpool.Pool, name string) string {
	t.Helper()
	createTable(t, admin, name, "id int PRIMARY KEY, n int NOT NULL DEFAULT 0, touched int NOT NULL DEFAULT 0",
		"INSERT INTO "+name+" (id) VALUES (1), (2), (3)")
	return name
}

func composeUpdate(tbl string, id int) string {
	return fmt.Sprintf("UPDATE %s SET n = n + 1 WHERE id = %d", tbl, id)
}

// composeRows returns the rows of tbl as "id:n", in id order.
func composeRows(t *testing.T, db *pgxpool.Pool, tbl string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(t.Context(), "SELECT string_agg(format('%s:%s', id, n), ' ' ORDER BY id) FROM "+tbl).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// composeEvents returns each retried error as "SQLSTATE verdict".
func composeEvents(r *retries) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, pgCode(e.Err)+" "+e.Verdict.String())
	}
	return out
}

// composeCodesIn returns the SQLSTATE of every *pgconn.PgError in err's
// tree, wrapped and joined errors included.
func composeCodesIn(err error) []string {
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

func composeDiff(t *testing.T, what string, want, got any) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// composeRival is the second connection that makes the step's UPDATE of
// row B fail once, for real, with code:
//
//   - 40P01: it holds row B; once the transaction under test holds row A
//     (beforeStep), it asks for A and waits; the step's UPDATE of B closes
//     the cycle, and the transaction under test detects the deadlock;
//   - 40001: once the transaction under test (REPEATABLE READ) has its
//     snapshot (beforeStep), it updates row B and commits; the step's
//     UPDATE of B then cannot serialize;
//   - 55P03: it holds row B until a retry handles the 55P03 (release), so
//     the step's UPDATE of B outlasts lock_timeout.
//
// The rival's own writes touch the column touched, never n.
type composeRival struct {
	t        *testing.T
	code     string
	tbl      string
	admin    *pgxpool.Pool
	conn     *pgxpool.Conn
	fired    bool       // beforeStep set the fault off; it does once
	released bool       // the rival's transaction has ended (or never began)
	waited   chan error // 40P01: the end of the rival's wait for row A
	over     bool       // 40P01: await has run
}

func newComposeRival(t *testing.T, admin *pgxpool.Pool, tbl, code string) *composeRival {
	t.Helper()
	conn, err := admin.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := &composeRival{t: t, code: code, tbl: tbl, admin: admin, conn: conn, released: code == "40001"}
	t.Cleanup(r.finish) // before the table is dropped
	if code != "40001" {
		exec(t, conn, "BEGIN")
		exec(t, conn, "SET LOCAL deadlock_timeout = '10s'")
		exec(t, conn, fmt.Sprintf("UPDATE %s SET touched = touched + 1 WHERE id = %d", tbl, composeRowB))
	}
	return r
}

// txOptions are the options of the transaction under test.
func (r *composeRival) txOptions() []pgxdb.TxOption {
	opts := []pgxdb.TxOption{pgxdb.Isolation(pgx.RepeatableRead)}
	if r.code == "55P03" {
		opts = append(opts, pgxdb.LockTimeout(50*time.Millisecond))
	}
	return opts
}

// beforeStep is called by the transaction under test once it holds row A
// and has its snapshot, right before the step; the first call sets the
// fault off.
func (r *composeRival) beforeStep() {
	t := r.t
	t.Helper()
	if r.fired {
		return
	}
	r.fired = true
	switch r.code {
	case "40P01":
		r.waited = make(chan error, 1)
		pid := r.conn.Conn().PgConn().PID()
		go func() {
			_, err := r.conn.Exec(t.Context(), fmt.Sprintf("UPDATE %s SET touched = touched + 1 WHERE id = %d", r.tbl, composeRowA))
			if _, rbErr := r.conn.Exec(context.Background(), "ROLLBACK"); err == nil {
				err = rbErr
			}
			r.waited <- err
		}()
		waitForLockWait(t, r.admin, pid)
	case "40001":
		exec(t, r.conn, fmt.Sprintf("UPDATE %s SET touched = touched + 1 WHERE id = %d", r.tbl, composeRowB))
	}
}

// onRetry, for a retry inside the transaction under test, records the
// event in rec and releases a 55P03 rival's lock, so that the attempt after
// the retried one can take it.
func (r *composeRival) onRetry(rec *retries) func(context.Context, dbop.AttemptEvent) {
	return func(ctx context.Context, e dbop.AttemptEvent) {
		rec.record(ctx, e)
		r.release()
	}
}

// ownerRetry is onRetry for the retry around the transaction's owner,
// which has ended the transaction: it also waits until a 40P01 rival,
// unblocked by the rollback, has ended its own transaction, so that the
// next attempt cannot lose the race for row A and deadlock again.
func (r *composeRival) ownerRetry(rec *retries) func(context.Context, dbop.AttemptEvent) {
	return func(ctx context.Context, e dbop.AttemptEvent) {
		rec.record(ctx, e)
		r.release()
		r.await()
	}
}

func (r *composeRival) release() {
	if r.code == "55P03" && !r.released {
		r.released = true
		exec(r.t, r.conn, "ROLLBACK")
	}
}

// await waits until a 40P01 rival's wait for row A, and its transaction,
// have ended.
func (r *composeRival) await() {
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

// finish ends the rival's transaction and gives its connection back.
func (r *composeRival) finish() {
	t := r.t
	r.await()
	if !r.released {
		if _, err := r.conn.Exec(context.Background(), "ROLLBACK"); err != nil {
			t.Errorf("rival: ROLLBACK: %v", err)
		}
	}
	if r.code == "40P01" && !r.fired {
		t.Errorf("the deadlock was never set off")
	}
	r.conn.Release()
}

// S1, S2: a retry inside InTx's function, with InTx's context and no
// savepoint, around a step that fails with a real error. The retry inside
// makes no second attempt, with or without a classifier: nothing undid
// the failed statement. InTx rolls back, the retry around InTx runs the
// whole transaction again, and every write lands once.
func TestLiveComposeRetryInsideInTx(t *testing.T) {
	composeRetryInsideInTx(t, "pgxdb_compose_inner")
}

func TestLiveComposeRetryInsideInTxClassifyBy(t *testing.T) {
	composeRetryInsideInTx(t, "pgxdb_compose_inner_cls", dbop.ClassifyBy(classifiers.Postgres))
}

func composeRetryInsideInTx(t *testing.T, prefix string, inside ...dbop.Decorator) {
	for _, code := range composeCodes {
		t.Run(code, func(t *testing.T) {
			pool, _, admin := composePools(t)
			tbl := composeTable(t, admin, prefix+"_"+strings.ToLower(code))
			r := newComposeRival(t, admin, tbl, code)
			var steps []int // step runs, per transaction
			var inner, outer retries
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				steps = append(steps, 0)
				if _, err := tx.Exec(ctx, composeUpdate(tbl, composeRowA)); err != nil {
					return 0, err
				}
				r.beforeStep()
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					steps[len(steps)-1]++
					_, err := tx.Exec(ctx, composeUpdate(tbl, composeRowB))
					return 1, err
				})
				ds := append([]dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.OnRetry(r.onRetry(&inner)))}, inside...)
				return step.With(ds...).Run(ctx)
			}, r.txOptions()...)
			n, err := op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3), dbop.OnRetry(r.ownerRetry(&outer)))).Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			composeDiff(t, "retries inside InTx", []string(nil), composeEvents(&inner))
			composeDiff(t, "retries around InTx", []string{code + " " + composeVerdict(code).String()}, composeEvents(&outer))
			composeDiff(t, "step runs per transaction", []int{1, 1}, steps)
			composeDiff(t, "rows", "1:1 2:1 3:0", composeRows(t, admin, tbl))
		})
	}
}

// S3: a transaction the caller began by hand, a retry around InSavepoint,
// run with a plain context. After 40P01 or 40001 the retry makes no second
// attempt and the caller gets the driver's original error (not a 25P02
// from a statement run in the aborted transaction); the caller rolls back
// and its own retry around begin…commit runs everything again. After
// 55P03 the step is rolled back to its savepoint and retried in place.
func TestLiveComposeByHandSavepoint(t *testing.T) {
	for _, code := range composeCodes {
		t.Run(code, func(t *testing.T) {
			pool, log, admin := composePools(t)
			tbl := composeTable(t, admin, "pgxdb_compose_hand_"+strings.ToLower(code))
			r := newComposeRival(t, admin, tbl, code)
			var steps []int
			var stepErrs []error
			var inner, outer retries
			caller := dbop.Op[int](func(ctx context.Context) (int, error) {
				steps = append(steps, 0)
				tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
				if err != nil {
					return 0, err
				}
				fail := func(err error) (int, error) {
					_ = tx.Rollback(ctx)
					return 0, err
				}
				if code == "55P03" {
					if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 50"); err != nil {
						return fail(err)
					}
				}
				if _, err := tx.Exec(ctx, composeUpdate(tbl, composeRowA)); err != nil {
					return fail(err)
				}
				r.beforeStep()
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					steps[len(steps)-1]++
					_, err := tx.Exec(ctx, composeUpdate(tbl, composeRowB))
					return 1, err
				})
				_, err = step.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(r.onRetry(&inner))), pgxdb.InSavepoint(tx)).Run(context.Background())
				if err != nil {
					stepErrs = append(stepErrs, err)
					return fail(err)
				}
				return 1, tx.Commit(ctx)
			}).With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3), dbop.OnRetry(r.ownerRetry(&outer))), dbop.ClassifyBy(classifiers.Postgres))
			log.Reset()
			n, err := caller.Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			a := composeUpdate(tbl, composeRowA)
			b := composeUpdate(tbl, composeRowB)
			if code == "55P03" {
				composeDiff(t, "retries around the savepoint", []string{"55P03 retry-statement"}, composeEvents(&inner))
				composeDiff(t, "the caller's retries", []string(nil), composeEvents(&outer))
				composeDiff(t, "step runs per transaction", []int{2}, steps)
				checkLog(t, []string{
					"begin isolation level repeatable read", "SET LOCAL lock_timeout = 50", a,
					`SAVEPOINT "dbop_sp_1"`, b + " -> 55P03", `ROLLBACK TO SAVEPOINT "dbop_sp_1"`, `RELEASE SAVEPOINT "dbop_sp_1"`,
					`SAVEPOINT "dbop_sp_1"`, b, `RELEASE SAVEPOINT "dbop_sp_1"`, "commit",
				}, log.Log())
			} else {
				composeDiff(t, "retries around the savepoint", []string(nil), composeEvents(&inner))
				composeDiff(t, "the caller's retries", []string{code + " retry-transaction"}, composeEvents(&outer))
				composeDiff(t, "step runs per transaction", []int{1, 1}, steps)
				if len(stepErrs) != 1 {
					t.Fatalf("the step failed %d times, want once", len(stepErrs))
				}
				if _, ok := errors.AsType[*pgconn.PgError](stepErrs[0]); !ok {
					t.Errorf("errors.As does not reach the *pgconn.PgError of %v", stepErrs[0])
				}
				composeDiff(t, "SQLSTATEs in the step's error", []string{code}, composeCodesIn(stepErrs[0]))
				begin := "begin isolation level repeatable read"
				checkLog(t, []string{
					begin, a, `SAVEPOINT "dbop_sp_1"`, b + " -> " + code, "rollback",
					begin, a, `SAVEPOINT "dbop_sp_1"`, b, `RELEASE SAVEPOINT "dbop_sp_1"`, "commit",
				}, log.Log())
			}
			composeDiff(t, "rows", "1:1 2:1 3:0", composeRows(t, admin, tbl))
		})
	}
}

// S4: nested savepoints inside InTx, each with a retry around it. When the
// inner statement fails with 40P01 or 40001 neither retry runs again and
// the retry around InTx runs the transaction again; a 55P03 is retried by
// the inner retry alone, at the inner savepoint.
func TestLiveComposeNestedSavepoints(t *testing.T) {
	for _, code := range composeCodes {
		t.Run(code, func(t *testing.T) {
			pool, log, admin := composePools(t)
			tbl := composeTable(t, admin, "pgxdb_compose_nested_"+strings.ToLower(code))
			r := newComposeRival(t, admin, tbl, code)
			var outerSteps, innerSteps []int
			var inner, middle, outer retries
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				outerSteps, innerSteps = append(outerSteps, 0), append(innerSteps, 0)
				if _, err := tx.Exec(ctx, composeUpdate(tbl, composeRowA)); err != nil {
					return 0, err
				}
				r.beforeStep()
				innerStep := dbop.Op[int](func(ctx context.Context) (int, error) {
					innerSteps[len(innerSteps)-1]++
					_, err := tx.Exec(ctx, composeUpdate(tbl, composeRowB))
					return 1, err
				})
				outerStep := dbop.Op[int](func(ctx context.Context) (int, error) {
					outerSteps[len(outerSteps)-1]++
					if _, err := tx.Exec(ctx, composeUpdate(tbl, composeRowC)); err != nil {
						return 0, err
					}
					return innerStep.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(r.onRetry(&inner))), pgxdb.InSavepoint(tx)).Run(ctx)
				})
				return outerStep.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(r.onRetry(&middle))), pgxdb.InSavepoint(tx)).Run(ctx)
			}, r.txOptions()...)
			log.Reset()
			n, err := op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3), dbop.OnRetry(r.ownerRetry(&outer)))).Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			composeDiff(t, "retries around the outer savepoint", []string(nil), composeEvents(&middle))
			a, b, c := composeUpdate(tbl, composeRowA), composeUpdate(tbl, composeRowB), composeUpdate(tbl, composeRowC)
			sp1, sp2 := `SAVEPOINT "dbop_sp_1"`, `SAVEPOINT "dbop_sp_2"`
			if code == "55P03" {
				composeDiff(t, "retries around the inner savepoint", []string{"55P03 retry-statement"}, composeEvents(&inner))
				composeDiff(t, "retries around InTx", []string(nil), composeEvents(&outer))
				composeDiff(t, "outer step runs per transaction", []int{1}, outerSteps)
				composeDiff(t, "inner step runs per transaction", []int{2}, innerSteps)
				checkLog(t, []string{
					"begin isolation level repeatable read; SET LOCAL lock_timeout = 50", a,
					sp1, c, sp2, b + " -> 55P03", "ROLLBACK TO " + sp2, "RELEASE " + sp2,
					sp2, b, "RELEASE " + sp2, "RELEASE " + sp1, "commit",
				}, log.Log())
			} else {
				composeDiff(t, "retries around the inner savepoint", []string(nil), composeEvents(&inner))
				composeDiff(t, "retries around InTx", []string{code + " retry-transaction"}, composeEvents(&outer))
				composeDiff(t, "outer step runs per transaction", []int{1, 1}, outerSteps)
				composeDiff(t, "inner step runs per transaction", []int{1, 1}, innerSteps)
				begin := "begin isolation level repeatable read"
				checkLog(t, []string{
					begin, a, sp1, c, sp2, b + " -> " + code, "rollback",
					begin, a, sp1, c, sp2, b, "RELEASE " + sp2, "RELEASE " + sp1, "commit",
				}, log.Log())
			}
			composeDiff(t, "rows", "1:1 2:1 3:1", composeRows(t, admin, tbl))
		})
	}
}

// S5: fn swallows the error of a step that doomed the transaction and
// returns nil. InTx does not commit: it rolls back and returns the step's
// error, which the retry around InTx retries.
func TestLiveComposeSwallowedDoom(t *testing.T) {
	for _, code := range []string{"40P01", "40001"} {
		t.Run(code, func(t *testing.T) {
			pool, log, admin := composePools(t)
			tbl := composeTable(t, admin, "pgxdb_compose_swallow_"+strings.ToLower(code))
			r := newComposeRival(t, admin, tbl, code)
			var steps []int
			var stepErrs []error
			var inner, outer retries
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				steps = append(steps, 0)
				if _, err := tx.Exec(ctx, composeUpdate(tbl, composeRowA)); err != nil {
					return 0, err
				}
				r.beforeStep()
				step := dbop.Op[int](func(ctx context.Context) (int, error) {
					steps[len(steps)-1]++
					_, err := tx.Exec(ctx, composeUpdate(tbl, composeRowB))
					return 1, err
				})
				if _, err := step.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(r.onRetry(&inner))), pgxdb.InSavepoint(tx)).Run(ctx); err != nil {
					stepErrs = append(stepErrs, err) // and swallowed
				}
				return 1, nil
			}, r.txOptions()...)
			log.Reset()
			n, err := op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(3), dbop.OnRetry(r.ownerRetry(&outer)))).Run(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Run = %d, %v; want 1, nil", n, err)
			}
			composeDiff(t, "retries around the savepoint", []string(nil), composeEvents(&inner))
			composeDiff(t, "retries around InTx", []string{code + " retry-transaction"}, composeEvents(&outer))
			if len(stepErrs) != 1 || len(outer.events) != 1 || !errors.Is(outer.events[0].Err, stepErrs[0]) {
				t.Errorf("InTx returned %v, want the swallowed step error %v", outer.events, stepErrs)
			}
			composeDiff(t, "step runs per transaction", []int{1, 1}, steps)
			a, b := composeUpdate(tbl, composeRowA), composeUpdate(tbl, composeRowB)
			begin := "begin isolation level repeatable read"
			checkLog(t, []string{
				begin, a, `SAVEPOINT "dbop_sp_1"`, b + " -> " + code, "rollback", // no COMMIT
				begin, a, `SAVEPOINT "dbop_sp_1"`, b, `RELEASE SAVEPOINT "dbop_sp_1"`, "commit",
			}, log.Log())
			composeDiff(t, "rows", "1:1 2:1 3:0", composeRows(t, admin, tbl))
		})
	}
}

// S6: errors no rule retries reach the caller as the very values the
// operation returned, after one run: pgx.ErrNoRows and a real 23505 from
// InTx's function under a retry, and pgx.ErrNoRows from an autocommit
// query under a retry with pgxdb.Classifier.
func TestLiveComposeFinalErrorsUnchanged(t *testing.T) {
	pool, _, admin := composePools(t)
	tbl := composeTable(t, admin, "pgxdb_compose_final")
	noRows := func(ctx context.Context, q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) error {
		var n int
		return q.QueryRow(ctx, "SELECT n FROM "+tbl+" WHERE id = 99").Scan(&n)
	}
	duplicate := func(ctx context.Context, q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}) error {
		_, err := q.Exec(ctx, "INSERT INTO "+tbl+" (id) VALUES (1)")
		return err
	}
	tests := []struct {
		name     string
		op       func(runs *int, opErr *error) dbop.Op[int]
		wantCode string // "" for pgx.ErrNoRows
	}{
		{"InTx/ErrNoRows", func(runs *int, opErr *error) dbop.Op[int] {
			return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				*runs++
				*opErr = noRows(ctx, tx)
				return 1, *opErr
			}).With(dbop.WithRetry(retryAtOnce))
		}, ""},
		{"InTx/23505", func(runs *int, opErr *error) dbop.Op[int] {
			return pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				*runs++
				*opErr = duplicate(ctx, tx)
				return 1, *opErr
			}).With(dbop.WithRetry(retryAtOnce))
		}, "23505"},
		{"autocommit/ErrNoRows/ClassifyBy(Classifier)", func(runs *int, opErr *error) dbop.Op[int] {
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				*runs++
				*opErr = noRows(ctx, pool)
				return 1, *opErr
			}).With(dbop.WithRetry(retryAtOnce), dbop.ClassifyBy(pgxdb.Classifier))
		}, ""},
		{"autocommit/23505/ClassifyBy(Classifier)", func(runs *int, opErr *error) dbop.Op[int] {
			return dbop.Op[int](func(ctx context.Context) (int, error) {
				*runs++
				*opErr = duplicate(ctx, pool)
				return 1, *opErr
			}).With(dbop.WithRetry(retryAtOnce), dbop.ClassifyBy(pgxdb.Classifier))
		}, "23505"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var runs int
			var opErr error
			_, err := tt.op(&runs, &opErr).Run(t.Context())
			if runs != 1 {
				t.Errorf("the operation ran %d times, want 1", runs)
			}
			if tt.wantCode == "" && !errors.Is(opErr, pgx.ErrNoRows) {
				t.Fatalf("the operation failed with %v, want pgx.ErrNoRows", opErr)
			}
			if tt.wantCode != "" {
				if pe, ok := opErr.(*pgconn.PgError); !ok || pe.Code != tt.wantCode {
					t.Fatalf("the operation failed with %#v, want a *pgconn.PgError %s", opErr, tt.wantCode)
				}
			}
			if err != opErr {
				t.Errorf("Run returned %#v, want the operation's own error %#v", err, opErr)
			}
		})
	}
	composeDiff(t, "rows", "1:0 2:0 3:0", composeRows(t, admin, tbl))
}

// S7: a connection cut right after it forwarded COMMIT. The outcome is
// unknown: the error is Ambiguous and matches scopes.ErrAmbiguousCommit;
// a retry without Idempotent does not run the transaction again; OrDefault
// listed before the retry lets the ambiguous error through unless it is
// given AcceptAmbiguous. The server did commit: the row is there, once.
func TestLiveComposeAmbiguousCommit(t *testing.T) {
	const fallback = -1
	tests := []struct {
		name      string
		decos     func(rec *retries) []dbop.Decorator
		wantValue int
		wantErr   bool
	}{
		{"WithRetry", func(rec *retries) []dbop.Decorator {
			return []dbop.Decorator{dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))}
		}, 0, true},
		{"OrDefault, WithRetry", func(rec *retries) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(fallback), dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))}
		}, 0, true},
		{"OrDefault(AcceptAmbiguous), WithRetry", func(rec *retries) []dbop.Decorator {
			return []dbop.Decorator{dbop.OrDefault(fallback, dbop.AcceptAmbiguous()), dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))}
		}, fallback, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, pool := proxied(t)
			admin := newPool(t, 1)
			tbl := fmt.Sprintf("pgxdb_compose_cut_%d", i)
			createTable(t, admin, tbl, "id int PRIMARY KEY")
			var runs int
			var backend uint32
			var rec retries
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				runs++
				_, err := tx.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1)")
				if runs == 1 {
					backend = pid(tx)
					p.CutAfter([]byte("commit"))
				}
				return 1, err
			})
			v, err := op.With(tt.decos(&rec)...).Run(t.Context())
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
			waitForBackendGone(t, admin, backend)
			if got := queryInt(t, admin, "SELECT count(*) FROM "+tbl); got != 1 {
				t.Errorf("%d rows, want 1: the cut COMMIT was applied", got)
			}
		})
	}
}
