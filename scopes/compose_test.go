package scopes_test

// Compositions: every decorator, inside and outside every scope, for every
// verdict, against fake transactions that behave as MySQL's and
// PostgreSQL's do after an error, and that record every statement a
// composition runs where it must not (the invariants of the package
// documentation of github.com/dbop-go/dbop).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
)

// backend is how a model transaction reacts to a failed statement.
type backend int

const (
	// mysqlLike: a deadlock rolls the whole transaction back on the
	// server, and the statements that follow run in autocommit, each its
	// own commit; any other statement error undoes the statement alone.
	mysqlLike backend = iota
	// pgLike: any error aborts the transaction until ROLLBACK TO
	// SAVEPOINT; a serialization failure or deadlock dooms it (a retry in
	// the same snapshot cannot succeed).
	pgLike
)

func (b backend) String() string { return [...]string{"mysql", "postgres"}[b] }

// The errors a model statement fails with, and the verdicts a backend
// classifier gives them.
var (
	errMDeadlock    = errors.New("model: deadlock")     // RetryTransaction
	errMLockTimeout = errors.New("model: lock timeout") // RetryStatement
	errMDuplicate   = errors.New("model: duplicate")    // NotRetryable
	errMUnknown     = errors.New("model: no rows")      // nobody recognises it
	errMAmbiguous   = errors.New("model: conn lost")    // Ambiguous (a COMMIT cut)
)

func modelClassify(err error) dbop.Verdict {
	switch {
	case errors.Is(err, errMDeadlock):
		return dbop.RetryTransaction
	case errors.Is(err, errMLockTimeout):
		return dbop.RetryStatement
	case errors.Is(err, errMDuplicate):
		return dbop.NotRetryable
	case errors.Is(err, errMAmbiguous):
		return dbop.Ambiguous
	}
	return dbop.Unclassified
}

// modelDB is a fake server. It fails the statement "UPDATE b" as scripted,
// keeps what each transaction applied, and records violations: a
// statement run in a transaction the server rolled back or aborted, and a
// COMMIT of a doomed transaction.
type modelDB struct {
	kind backend
	mu   sync.Mutex
	// fails[i] is the error of the i-th run of UPDATE b, nil or absent
	// for success.
	fails      []error
	runs       int
	committed  []string // statements applied by a COMMIT or by autocommit
	violations []string
	nextID     int
}

func (db *modelDB) begin(ctx context.Context, _ scopes.BeginOptions) (*modelTx, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.nextID++
	return &modelTx{db: db, id: db.nextID}, nil
}

type modelTx struct {
	db      *modelDB
	id      int
	ended   bool
	doomed  bool // the server rolled back (mysql) or doomed (pg) the transaction
	aborted bool // pg: a failed statement aborted it until ROLLBACK TO
	pending []string
	sps     []spFrame
}

type spFrame struct {
	name string
	keep int // len(pending) at SAVEPOINT
}

var errModelTxDone = errors.New("model: transaction already ended")

func (tx *modelTx) violate(format string, args ...any) {
	tx.db.violations = append(tx.db.violations, fmt.Sprintf("tx %d: ", tx.id)+fmt.Sprintf(format, args...))
}

// usable reports whether stmt may run, recording a violation when it runs
// in a transaction the server rolled back or aborted.
func (tx *modelTx) usable(stmt string) error {
	switch {
	case tx.ended:
		return errModelTxDone
	case tx.doomed && tx.db.kind == mysqlLike:
		tx.violate("%s ran in autocommit after the server rolled the transaction back", stmt)
		if !strings.HasPrefix(stmt, "SAVEPOINT") && !strings.HasPrefix(stmt, "RELEASE") && !strings.HasPrefix(stmt, "ROLLBACK TO") {
			tx.db.committed = append(tx.db.committed, stmt+" (autocommit)")
		}
		return nil
	case tx.doomed:
		tx.violate("%s ran in a doomed transaction", stmt)
		return errors.New("model: current transaction is aborted")
	case tx.aborted && stmt == "UPDATE b":
		tx.violate("%s ran again in an aborted transaction", stmt)
		return errors.New("model: current transaction is aborted")
	case tx.aborted && !strings.HasPrefix(stmt, "ROLLBACK TO"):
		// PostgreSQL refuses it (25P02): harmless, and the error goes on.
		return errors.New("model: current transaction is aborted")
	}
	return nil
}

func (tx *modelTx) Exec(ctx context.Context, stmt string) error {
	db := tx.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if tx.doomed || tx.aborted || tx.ended {
		return tx.usable(stmt)
	}
	var err error
	if stmt == "UPDATE b" {
		if db.runs < len(db.fails) {
			err = db.fails[db.runs]
		}
		db.runs++
	}
	if err == nil {
		tx.pending = append(tx.pending, stmt)
		return nil
	}
	switch {
	case errors.Is(err, errMDeadlock):
		tx.doomed = true
		if db.kind == mysqlLike {
			tx.pending, tx.sps = nil, nil // rolled back, savepoints gone
		}
	case db.kind == pgLike:
		tx.aborted = true
	}
	return err
}

func (tx *modelTx) Commit(ctx context.Context) error {
	db := tx.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if tx.ended {
		return errModelTxDone
	}
	tx.ended = true
	switch {
	case tx.doomed:
		tx.violate("COMMIT of a doomed transaction")
		return nil
	case tx.aborted:
		return errors.New("model: commit turned into rollback")
	}
	db.committed = append(db.committed, tx.pending...)
	return nil
}

func (tx *modelTx) Rollback(ctx context.Context) error {
	tx.db.mu.Lock()
	defer tx.db.mu.Unlock()
	tx.ended = true
	return nil
}

func (tx *modelTx) Savepoint(ctx context.Context, name string) error {
	tx.db.mu.Lock()
	defer tx.db.mu.Unlock()
	if tx.doomed || tx.aborted || tx.ended {
		return tx.usable("SAVEPOINT " + name)
	}
	tx.sps = append(tx.sps, spFrame{name, len(tx.pending)})
	return nil
}

func (tx *modelTx) RollbackTo(ctx context.Context, name string) error {
	tx.db.mu.Lock()
	defer tx.db.mu.Unlock()
	if tx.doomed || tx.ended {
		return tx.usable("ROLLBACK TO " + name)
	}
	i := slices.IndexFunc(tx.sps, func(f spFrame) bool { return f.name == name })
	if i < 0 {
		return fmt.Errorf("model: no savepoint %s", name)
	}
	tx.pending = tx.pending[:tx.sps[i].keep]
	tx.sps = tx.sps[:i+1]
	tx.aborted = false
	return nil
}

func (tx *modelTx) Release(ctx context.Context, name string) error {
	tx.db.mu.Lock()
	defer tx.db.mu.Unlock()
	if tx.doomed || tx.aborted || tx.ended {
		return tx.usable("RELEASE " + name)
	}
	i := slices.IndexFunc(tx.sps, func(f spFrame) bool { return f.name == name })
	if i < 0 {
		return fmt.Errorf("model: no savepoint %s", name)
	}
	tx.sps = tx.sps[:i]
	return nil
}

// deco is a decorator of the palette; build receives the transaction, for
// the savepoint scope.
type deco struct {
	name  string
	build func(tx *modelTx) dbop.Decorator
}

var palette = []deco{
	{"WithRetry", func(*modelTx) dbop.Decorator { return dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)) }},
	{"WithRetry(Idempotent)", func(*modelTx) dbop.Decorator {
		return dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.Idempotent())
	}},
	{"ClassifyBy", func(*modelTx) dbop.Decorator { return dbop.ClassifyBy(modelClassify) }},
	{"WithTimeout", func(*modelTx) dbop.Decorator { return dbop.WithTimeout(time.Hour) }},
	{"Before", func(*modelTx) dbop.Decorator { return dbop.Before(func(context.Context) error { return nil }) }},
	{"Around(after)", func(*modelTx) dbop.Decorator { // an after-hook: looks at the outcome only
		return dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
			err := next(ctx)
			_ = dbop.VerdictOf(err)
			return err
		})
	}},
	{"Around", func(*modelTx) dbop.Decorator {
		return dbop.Around(func(ctx context.Context, next func(context.Context) error) error { return next(ctx) })
	}},
	{"Bulkhead", func(*modelTx) dbop.Decorator { return dbop.Bulkhead(4) }},
	{"Fallback", func(*modelTx) dbop.Decorator {
		return dbop.Fallback(func(_ context.Context, err error) (int, error) { return 0, fmt.Errorf("translated: %w", err) })
	}},
	{"OrDefault", func(*modelTx) dbop.Decorator { return dbop.OrDefault(7) }},
	{"InSavepoint", func(tx *modelTx) dbop.Decorator {
		return scopes.InSavepoint(tx, scopes.ClassifyBy(modelClassify))
	}},
	{"HotSpot", func(*modelTx) dbop.Decorator { return dbop.HotSpot() }},
}

// scopeKind is who owns the transaction the step runs in, and which
// context the step gets.
type scopeKind int

const (
	inTxCtx      scopeKind = iota // InTx owns it; the step runs with the context InTx handed over
	inTxPlain                     // InTx owns it; the step runs with an unmarked context
	byHandPlain                   // the caller began it; the step runs with an unmarked context
	byHandWithin                  // the caller began it and marked the context WithinTx
)

func (k scopeKind) String() string {
	return [...]string{"InTx, its ctx", "InTx, plain ctx", "by hand, plain ctx", "by hand, WithinTx ctx"}[k]
}

// composition is one generated case.
type composition struct {
	kind  backend
	scope scopeKind
	decos []int // indexes into palette, outermost first
	fails []error
}

func (c composition) String() string {
	names := make([]string, len(c.decos))
	for i, d := range c.decos {
		names[i] = palette[d].name
	}
	return fmt.Sprintf("%v, %v, step.With(%s), UPDATE b fails with %v", c.kind, c.scope, strings.Join(names, ", "), c.fails)
}

// exception reports whether c is the one composition no scope can see: a
// retry, or a fallback, around statements on a transaction, with no
// savepoint scope inside it, run with a context not marked as inside the
// transaction. Nothing tells the runtime that the statements belong to a
// transaction; the package documentation says so and the analyzer reports
// it.
func (c composition) exception() bool {
	if c.scope != inTxPlain && c.scope != byHandPlain {
		return false
	}
	for i, d := range c.decos {
		switch name := palette[d].name; {
		case strings.HasPrefix(name, "WithRetry"), name == "OrDefault", name == "Fallback":
		default:
			continue
		}
		if !slices.ContainsFunc(c.decos[i+1:], func(e int) bool { return palette[e].name == "InSavepoint" }) {
			return true
		}
	}
	return false
}

// outcome is what running a composition did.
type outcome struct {
	rejected   any // the panic of a pipeline refused when built
	err        error
	committed  []string
	violations []string
}

// run runs c: the owner's transaction runs INSERT a, the decorated step
// (UPDATE b) and INSERT c, returning the step's error; a retry around the
// owner restarts the whole transaction.
func run(c composition) (out outcome) {
	db := &modelDB{kind: c.kind, fails: c.fails}
	body := func(ctx context.Context, tx *modelTx) (int, error) {
		if err := tx.Exec(ctx, "INSERT a"); err != nil {
			return 0, err
		}
		ds := make([]dbop.Decorator, len(c.decos))
		for i, d := range c.decos {
			ds[i] = palette[d].build(tx)
		}
		step := dbop.Op[int](func(ctx context.Context) (int, error) { return 1, tx.Exec(ctx, "UPDATE b") })
		var n int
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					out.rejected = p
					err = errors.New("rejected")
				}
			}()
			decorated := step.With(ds...)
			stepCtx := ctx
			switch c.scope {
			case inTxPlain, byHandPlain:
				stepCtx = context.WithoutCancel(context.Background())
			case byHandWithin:
				stepCtx = dbop.WithinTx(ctx)
			}
			n, err = decorated.Run(stepCtx)
		}()
		if out.rejected != nil {
			return 0, dbop.Classify(err, dbop.NotRetryable)
		}
		if err != nil {
			return 0, err
		}
		return n, tx.Exec(ctx, "INSERT c")
	}
	var owner dbop.Op[int]
	switch c.scope {
	case inTxCtx, inTxPlain:
		owner = scopes.InTx(db.begin, body, scopes.ClassifyBy(modelClassify))
	default:
		// The caller's own transaction: begin, run, commit or roll back.
		owner = func(ctx context.Context) (int, error) {
			tx, _ := db.begin(ctx, scopes.BeginOptions{})
			n, err := body(ctx, tx)
			if err != nil {
				_ = tx.Rollback(ctx)
				return 0, err
			}
			return n, tx.Commit(ctx)
		}
		owner = owner.With(dbop.ClassifyBy(modelClassify)) // the owner's retry classifies
	}
	_, out.err = owner.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(4))).Run(context.Background())
	out.committed, out.violations = db.committed, db.violations
	return out
}

// check reports what is wrong with out for c, or "".
func check(c composition, out outcome) string {
	if out.rejected != nil {
		return "" // refused when built: nothing ran (invariant 4)
	}
	if !c.exception() && len(out.violations) > 0 {
		return fmt.Sprintf("violations: %q", out.violations)
	}
	if c.exception() {
		return ""
	}
	count := func(s string) int {
		return len(slices.DeleteFunc(slices.Clone(out.committed), func(x string) bool { return x != s }))
	}
	if out.err != nil {
		if len(out.committed) > 0 {
			return fmt.Sprintf("failed (%v) but committed %q", out.err, out.committed)
		}
		// A failure that a retry could heal, once, must be healed by the
		// owner's retry (the error reached the owner), unless something
		// the caller asked for stopped it: a non-idempotent Ambiguous.
		if len(c.fails) == 1 && (c.fails[0] == errMDeadlock || c.fails[0] == errMLockTimeout) {
			return fmt.Sprintf("a failure a retry heals was not healed: %v", out.err)
		}
		return ""
	}
	if count("INSERT a") != 1 || count("INSERT c") != 1 || count("UPDATE b") > 1 {
		return fmt.Sprintf("succeeded but committed %q, want INSERT a and INSERT c once and UPDATE b at most once", out.committed)
	}
	if count("UPDATE b") == 0 && !slices.ContainsFunc(c.decos, func(d int) bool { return palette[d].name == "OrDefault" }) {
		return fmt.Sprintf("succeeded without UPDATE b: %q", out.committed)
	}
	return ""
}

var failScripts = [][]error{
	nil,
	{errMDeadlock},
	{errMLockTimeout},
	{errMLockTimeout, errMLockTimeout},
	{errMDuplicate},
	{errMUnknown},
	{errMDeadlock, errMDeadlock, errMDeadlock, errMDeadlock, errMDeadlock},
	{errMLockTimeout, errMDeadlock},
}

// TestCompositionsEveryDecoratorEveryScope runs each decorator of the
// palette alone, and with a retry and a savepoint in every order, in every
// scope, on both backends, for every failure script.
func TestCompositionsEveryDecoratorEveryScope(t *testing.T) {
	const retry, sp = 0, 10
	if palette[retry].name != "WithRetry" || palette[sp].name != "InSavepoint" {
		t.Fatal("palette indexes moved")
	}
	var shapes [][]int
	for d := range palette {
		shapes = append(shapes,
			[]int{d},
			[]int{retry, d}, []int{d, retry},
			[]int{retry, d, sp}, []int{retry, sp, d}, []int{d, retry, sp},
			[]int{retry, sp, retry, d, sp},
		)
	}
	ran, rejected := 0, 0
	for _, kind := range []backend{mysqlLike, pgLike} {
		for scope := inTxCtx; scope <= byHandWithin; scope++ {
			for _, decos := range shapes {
				for _, fails := range failScripts {
					c := composition{kind: kind, scope: scope, decos: decos, fails: fails}
					out := run(c)
					ran++
					if out.rejected != nil {
						rejected++
					}
					if msg := check(c, out); msg != "" {
						t.Errorf("%v: %s", c, msg)
					}
				}
			}
		}
	}
	t.Logf("%d compositions run, %d refused when built", ran, rejected)
}

// TestCompositionsGenerated is the property over random compositions of up
// to five decorators: outside the documented exception, no statement runs
// in a transaction after an error doomed or aborted it, a doomed
// transaction is never committed, a failure is never half-committed, and a
// failure the owner's retry can heal is healed.
func TestCompositionsGenerated(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	r := rand.New(rand.NewPCG(1, 2))
	exceptions := 0
	for range n {
		c := composition{
			kind:  backend(r.IntN(2)),
			scope: scopeKind(r.IntN(4)),
			fails: failScripts[r.IntN(len(failScripts))],
		}
		for range r.IntN(6) {
			c.decos = append(c.decos, r.IntN(len(palette)))
		}
		if c.exception() {
			exceptions++
		}
		if msg := check(c, run(c)); msg != "" {
			t.Fatalf("%v: %s", c, msg)
		}
	}
	t.Logf("%d compositions, %d in the documented exception", n, exceptions)
}

// TestCompositionException shows the one composition the runtime cannot
// protect, so that the documentation stays true: a retry (with a
// classifier that calls the deadlock retryable) around a statement on a
// transaction, with an unmarked context and no savepoint, runs the
// statement again after MySQL rolled the transaction back.
func TestCompositionException(t *testing.T) {
	c := composition{kind: mysqlLike, scope: byHandPlain, decos: []int{0, 2}, fails: []error{errMDeadlock}}
	if !c.exception() {
		t.Fatal("not the exception")
	}
	out := run(c)
	if len(out.violations) == 0 {
		t.Fatalf("the exception did no harm (%v): update the documentation of invariant 1", out)
	}
	// The same with the context InTx hands over is safe.
	c.scope = inTxCtx
	if out := run(c); len(out.violations) > 0 || out.err != nil {
		t.Fatalf("%v: %v, %v", c, out.err, out.violations)
	}
}

// A retry listed around a savepoint scope runs inside the savepoint's
// transaction: after an error that doomed it, the retry stops at once,
// without a wait or an attempt the scope would have to refuse, whatever
// the context. The owner's retry, outside, then runs the whole
// transaction again.
func TestRetryAroundSavepointStopsAtOnce(t *testing.T) {
	for _, scope := range []scopeKind{inTxCtx, inTxPlain, byHandPlain, byHandWithin} {
		for _, kind := range []backend{mysqlLike, pgLike} {
			t.Run(fmt.Sprintf("%v/%v", kind, scope), func(t *testing.T) {
				db := &modelDB{kind: kind, fails: []error{errMDeadlock}}
				var retries, steps int
				body := func(ctx context.Context, tx *modelTx) (int, error) {
					if err := tx.Exec(ctx, "INSERT a"); err != nil {
						return 0, err
					}
					step := dbop.Op[int](func(ctx context.Context) (int, error) { steps++; return 1, tx.Exec(ctx, "UPDATE b") })
					stepCtx := ctx
					if scope == inTxPlain || scope == byHandPlain {
						stepCtx = context.Background()
					}
					_, err := step.With(
						dbop.WithRetry(dbop.Constant(time.Hour), dbop.OnRetry(func(context.Context, dbop.AttemptEvent) { retries++ })),
						scopes.InSavepoint(tx, scopes.ClassifyBy(modelClassify)),
					).Run(stepCtx)
					return 0, err
				}
				var owner dbop.Op[int]
				if scope == inTxCtx || scope == inTxPlain {
					owner = scopes.InTx(db.begin, body, scopes.ClassifyBy(modelClassify))
				} else {
					owner = func(ctx context.Context) (int, error) {
						tx, _ := db.begin(ctx, scopes.BeginOptions{})
						n, err := body(ctx, tx)
						if err != nil {
							_ = tx.Rollback(ctx)
							return 0, err
						}
						return n, tx.Commit(ctx)
					}
				}
				_, err := owner.With(dbop.WithRetry(dbop.Constant(0))).Run(t.Context())
				if err != nil {
					t.Fatalf("owner's retry: %v", err)
				}
				if retries != 0 || steps != 2 {
					t.Errorf("the retry around the savepoint retried %d times (step ran %d times); want 0 retries, 2 runs (one per transaction)", retries, steps)
				}
				if len(db.violations) > 0 {
					t.Errorf("violations: %q", db.violations)
				}
			})
		}
	}
}

// A function that swallows the error of a step that doomed its
// transaction, and goes on, never gets the transaction committed: the
// savepoint scope told the owner, which rolls back and returns the error,
// and the retry around the owner runs everything again.
func TestSwallowedDoomIsNeverCommitted(t *testing.T) {
	for _, kind := range []backend{mysqlLike, pgLike} {
		t.Run(kind.String(), func(t *testing.T) {
			db := &modelDB{kind: kind, fails: []error{errMDeadlock}}
			op := scopes.InTx(db.begin, func(ctx context.Context, tx *modelTx) (int, error) {
				if err := tx.Exec(ctx, "INSERT a"); err != nil {
					return 0, err
				}
				step := dbop.Op[int](func(ctx context.Context) (int, error) { return 1, tx.Exec(ctx, "UPDATE b") })
				_, err := step.With(scopes.InSavepoint(tx, scopes.ClassifyBy(modelClassify))).Run(ctx) // error ignored
				n, err2 := step.With(scopes.InSavepoint(tx)).Run(ctx)
				if err != nil && (n != 0 || err2 == nil) {
					t.Errorf("a second step ran in the doomed transaction: %v, %v", n, err2)
				}
				return 0, nil
			}, scopes.ClassifyBy(modelClassify))
			if _, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			if len(db.violations) > 0 {
				t.Errorf("violations: %q", db.violations)
			}
			if !slices.Equal(db.committed, []string{"INSERT a", "UPDATE b", "UPDATE b"}) || db.nextID != 2 {
				t.Errorf("committed %q, want the second transaction's INSERT a and two UPDATE b", db.committed)
			}
		})
	}
}
