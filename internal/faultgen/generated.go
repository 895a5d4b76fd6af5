package faultgen

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/txmark"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// RoundsEnv sets how many rounds the generated-pipelines workload runs per
// backend, each with pipelines drawn from its own seed (the first round's
// seed is the run's, DBOP_FAULT_SEED; round i's is that plus i) on tables of
// its own. The default is one round: a long run sets it with
// DBOP_FAULT_DURATION, for example
//
//	DBOP_GEN_ROUNDS=20 DBOP_FAULT_DURATION=30s go test -count=1 -timeout 60m -run TestFaultGenerated ./internal/faulttest
const RoundsEnv = "DBOP_GEN_ROUNDS"

// Clearing is the account a transfer split into a debit and a credit passes
// through: the debit moves the amount from src to clearing, the credit from
// Clearing to dst. Its balance is what was debited and not yet credited; the
// ledger replayed must give it like any other account's.
const Clearing = NumAccounts

// genShape is the shape of a generated worker's transfer.
type genShape int

const (
	// shapeTx: one transaction.
	shapeTx genShape = iota
	// shapeSteps: one transaction whose statements are savepoint steps,
	// each with a retry of its own.
	shapeSteps
	// shapeThen: a Then of a debit transaction and a credit
	// transaction, the credit with a retry of its own.
	shapeThen
	// shapeAll: an All of the debit and the credit transactions.
	shapeAll
	// shapeTxThen: one transaction in which a retry runs a Then of a
	// debit savepoint step and a credit savepoint step.
	shapeTxThen
	// shapeReadThen: a Then of a ReadOnly transaction that reads the
	// source balance and the transfer's transaction.
	shapeReadThen
	numShapes
)

var shapeNames = [...]string{"tx", "steps", "then", "all", "tx-then", "read-then"}

// decoKind is one decorator a generated pipeline may list.
type decoKind int

const (
	decoTotalTimeout decoKind = iota
	decoBulkhead
	decoOrDefault
	decoFallbackValue
	decoFallbackError
	decoAttemptTimeout
	decoHotSpot
	decoAttemptBulkhead
	decoClassify
	decoBefore
)

// preKinds are listed before the outer retry, postKinds after it.
var (
	preKinds  = []decoKind{decoTotalTimeout, decoBulkhead, decoOrDefault, decoFallbackValue, decoFallbackError}
	postKinds = []decoKind{decoAttemptTimeout, decoHotSpot, decoAttemptBulkhead, decoClassify, decoBefore}
)

// genClassifiers are the classifiers a generated pipeline may give
// ClassifyBy, its own or a transaction's: the library's, one of a user who
// retries everything, and one with no opinion.
var genClassifiers = []struct {
	name string
	fn   dbop.Classifier
}{
	{"classifiers.Default", classifiers.Default},
	{"retry-everything", func(error) dbop.Verdict { return dbop.RetryTransaction }},
	{"no-opinion", func(error) dbop.Verdict { return dbop.Unclassified }},
}

// genDeco is one drawn decorator and its parameters.
type genDeco struct {
	kind       decoKind
	d          time.Duration
	accept     bool // AcceptAmbiguous, for OrDefault and Fallback
	classifier int
}

func (d genDeco) String() string {
	acc := ""
	if d.accept {
		acc = "AcceptAmbiguous()"
	}
	switch d.kind {
	case decoTotalTimeout, decoAttemptTimeout:
		return fmt.Sprintf("WithTimeout(%v)", d.d)
	case decoBulkhead:
		return "Bulkhead(shared A)"
	case decoAttemptBulkhead:
		return "Bulkhead(shared B)"
	case decoOrDefault:
		return "OrDefault(" + acc + ")"
	case decoFallbackValue:
		return "Fallback(value" + strings.TrimSuffix(", "+acc, ", ") + ")"
	case decoFallbackError:
		return "Fallback(error" + strings.TrimSuffix(", "+acc, ", ") + ")"
	case decoHotSpot:
		return "HotSpot(shared)"
	case decoClassify:
		return "ClassifyBy(" + genClassifiers[d.classifier].name + ")"
	case decoBefore:
		return "Before"
	}
	return fmt.Sprintf("deco(%d)", d.kind)
}

// TxOpts are a generated transaction's options.
type TxOpts struct {
	Limit     string // "", "lock" or "statement": the adapter's per-attempt limit
	Resolve   bool   // ResolveCommit
	ReadOnly  bool
	Iso       string // "", "repeatable read" or "serializable"
	Classify  int    // the adapter's ClassifyBy, an index in genClassifiers; -1 for none (see Classifier)
	Cockroach int    // pgxdb.CockroachRestart(MaxAttempts(Cockroach)); 0 for none
	// Share is pgxdb.ShareCommits, never with ReadOnly, Resolve or
	// Cockroach, which it refuses (Backend.Share); the transaction then
	// runs on the round's pool of sharing transactions, through the fault
	// proxy if ShareProxied, whatever the worker's route.
	Share, ShareProxied bool
}

// readOnly returns o as the options of a ReadOnly transaction: without
// the options that only a writing transaction takes.
func (o TxOpts) readOnly() TxOpts {
	o.ReadOnly, o.Resolve, o.Cockroach, o.Share, o.ShareProxied = true, false, 0, false, false
	return o
}

func (o TxOpts) String() string {
	var parts []string
	if o.Limit != "" {
		parts = append(parts, o.Limit+" timeout")
	}
	if o.Resolve {
		parts = append(parts, "ResolveCommit")
	}
	if o.ReadOnly {
		parts = append(parts, "ReadOnly")
	}
	if o.Iso != "" {
		parts = append(parts, o.Iso)
	}
	if o.Classify >= 0 {
		parts = append(parts, "ClassifyBy("+genClassifiers[o.Classify].name+")")
	}
	if o.Cockroach > 0 {
		parts = append(parts, fmt.Sprintf("CockroachRestart(MaxAttempts(%d))", o.Cockroach))
	}
	switch {
	case o.ShareProxied:
		parts = append(parts, "ShareCommits on the proxied pool")
	case o.Share:
		parts = append(parts, "ShareCommits on the direct pool")
	}
	return "InTx[" + strings.Join(parts, ", ") + "]"
}

// genPlan is one worker's drawn pipeline and transfer shape.
type genPlan struct {
	shape   genShape
	proxied bool
	// route names proxied and direct workers as the backend calls them
	// (Backend.routes); "" for "proxied" and "direct".
	route [2]string
	// do is set when the backend has a Do (Backend.Do), which the shapes
	// that drop their transactions' values use.
	do bool
	// idem marks every retry of the worker Idempotent and makes its SQL
	// idempotent by design (the ledger row inserted only if absent, the
	// balances updated only by the call that inserted it); otherwise no
	// retry is Idempotent and the ledger row is a plain INSERT, whose key
	// refuses a second one: a leg run again after it committed fails with
	// a unique violation, which the leg records.
	idem bool
	// retry is false for a pipeline without an outer WithRetry: pre and
	// post then make one list.
	retry                   bool
	attempts                int
	budget, elapsed, observ bool
	pre, post               []genDeco
	tx                      TxOpts
	// The inner pipelines: the savepoint steps' retries (steps,
	// tx-then), the credit's retry (then).
	inner         int // MaxAttempts; 0: no inner retry (then only)
	innerTimeout  time.Duration
	innerClassify int  // -1 for none
	spLock        bool // pgxdb's savepoints with LockTimeout
	wrapThen      bool // tx-then: a savepoint around the whole Then too
	allLimit      int
}

func (p genPlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "shape %s, ", shapeNames[p.shape])
	route := p.route
	if route == ([2]string{}) {
		route = [2]string{"proxied", "direct"}
	}
	if p.proxied {
		b.WriteString(route[0] + ", ")
	} else {
		b.WriteString(route[1] + ", ")
	}
	if p.idem {
		b.WriteString("idempotent SQL and retries: ")
	} else {
		b.WriteString("plain SQL, no Idempotent: ")
	}
	var ds []string
	for _, d := range p.pre {
		ds = append(ds, d.String())
	}
	if p.retry {
		r := fmt.Sprintf("WithRetry(MaxAttempts(%d)", p.attempts)
		if p.idem {
			r += ", Idempotent()"
		}
		if p.budget {
			r += ", WithBudget(shared)"
		}
		if p.elapsed {
			r += ", MaxElapsed(3s)"
		}
		if p.observ {
			r += ", Observe(slog)"
		}
		ds = append(ds, r+")")
	}
	for _, d := range p.post {
		ds = append(ds, d.String())
	}
	fmt.Fprintf(&b, "With(%s) around ", strings.Join(ds, ", "))
	read := p.tx.readOnly()
	inner := p.innerString()
	switch p.shape {
	case shapeTx:
		fmt.Fprintf(&b, "%v", p.tx)
	case shapeSteps:
		fmt.Fprintf(&b, "%v of 3 savepoint steps, each With(%s)", p.tx, inner)
	case shapeThen:
		fmt.Fprintf(&b, "Then(debit %v, credit %v.With(%s))", p.tx, p.tx, inner)
	case shapeAll:
		fmt.Fprintf(&b, "All(%d, debit %v, credit %v)", p.allLimit, p.doString(p.tx), p.doString(p.tx))
	case shapeTxThen:
		fmt.Fprintf(&b, "%v running Then(debit savepoint step, credit savepoint step).With(%s", p.tx, inner)
		if p.wrapThen {
			b.WriteString(", InSavepoint")
		}
		b.WriteString(")")
	case shapeReadThen:
		fmt.Fprintf(&b, "Then(read %v, transfer %v)", p.doString(read), p.tx)
	}
	return b.String()
}

// doString names o's transaction as the backend builds one whose value is
// dropped: with Backend.Do if it has one (p.do).
func (p genPlan) doString(o TxOpts) string {
	if p.do {
		return "Do" + strings.TrimPrefix(o.String(), "InTx")
	}
	return o.String()
}

func (p genPlan) innerString() string {
	if p.inner == 0 {
		return ""
	}
	parts := []string{fmt.Sprintf("WithRetry(MaxAttempts(%d)%s)", p.inner, map[bool]string{true: ", Idempotent()"}[p.idem])}
	if p.innerTimeout > 0 {
		parts = append(parts, fmt.Sprintf("WithTimeout(%v)", p.innerTimeout))
	}
	if p.innerClassify >= 0 {
		parts = append(parts, "ClassifyBy("+genClassifiers[p.innerClassify].name+")")
	}
	if p.shape == shapeSteps {
		s := "InSavepoint"
		if p.spLock {
			s += "(LockTimeout)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// The worker interface, as Verify and RunWorkload see a generated plan.

func (p genPlan) isIdempotent() bool { return p.idem }

func (p genPlan) apart() bool { return p.shape == shapeThen || p.shape == shapeAll }

func (p genPlan) legs(tr Transfer) []leg {
	switch p.shape {
	case shapeThen, shapeAll, shapeTxThen:
		return []leg{
			{tr.Key + "d", LedgerRow{tr.Src, Clearing, tr.Amount}},
			{tr.Key + "c", LedgerRow{Clearing, tr.Dst, tr.Amount}},
		}
	}
	return []leg{{tr.Key, LedgerRow{tr.Src, tr.Dst, tr.Amount}}}
}

func (p genPlan) acceptsAmbiguous() bool {
	for _, d := range p.pre {
		if d.accept {
			return true
		}
	}
	return false
}

func (p genPlan) defaults() bool {
	for _, d := range append(slicesClone(p.pre), p.post...) {
		if d.kind == decoOrDefault || d.kind == decoFallbackValue {
			return true
		}
	}
	return false
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// Backend is what a generated worker needs of one backend and adapter.
type Backend struct {
	Name                     string
	Insert, InsertIdem       string
	Update, Read             string
	Dup                      func(error) bool // a unique violation
	Lock, Statement          time.Duration    // the transactions' per-attempt limits
	AttemptTimeouts          []time.Duration  // WithTimeout after the retry
	Cockroach, SavepointLock bool             // pgxdb only
	// Share offers pgxdb.ShareCommits (TxOpts.Share): each round draws
	// the workers whose whole transactions share commits (drawSharing).
	Share bool
	// CountMinimums are the least each count the round records with
	// Stats.Count must reach, checked as the fault minimums are
	// (CheckCounts): that sharing happened, say.
	CountMinimums map[string]int
	// Limits are the per-attempt limits a transaction may be drawn with;
	// nil for "", "lock" and "statement".
	Limits []string
	// Routes name workers 2 and 5 and the others, for the log; zero for
	// "proxied" and "direct".
	Routes [2]string
	// Caller, if set, gives each transfer the context its caller runs it
	// with, and a function called when it returns: the SQLite injector
	// cancels a transfer in flight through it.
	Caller func(ctx context.Context) (context.Context, func())
	// InTx builds worker w's transaction running fn.
	InTx func(w int, fn func(ctx context.Context, tx GenTx) (Result, error), o TxOpts) dbop.Op[Result]
	// Do, if set, builds worker w's transaction running fn, which has no
	// result (gormdb.Do): the shapes that drop their transactions' values
	// (all, read-then) use it in place of InTx.
	Do func(w int, fn func(ctx context.Context, tx GenTx) error, o TxOpts) dbop.Op[struct{}]
}

// GenTx is a transaction as a generated leg uses it.
type GenTx interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryInt runs a query whose one row has one integer column.
	QueryInt(ctx context.Context, query string, args ...any) (int64, error)
	// Savepoint returns the adapter's savepoint scope on the
	// transaction; lock, if positive, is its per-attempt lock timeout
	// (pgxdb only).
	Savepoint(lock time.Duration) dbop.Decorator
}

type pgxGenTx struct{ tx pgx.Tx }

func (t pgxGenTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}

func (t pgxGenTx) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	var v int64
	err := t.tx.QueryRow(ctx, q, args...).Scan(&v)
	return v, err
}

func (t pgxGenTx) Savepoint(lock time.Duration) dbop.Decorator {
	if lock > 0 {
		return pgxdb.InSavepoint(t.tx, pgxdb.LockTimeout(lock))
	}
	return pgxdb.InSavepoint(t.tx)
}

// SQLGenTx is a database/sql transaction of sqldb as a generated leg
// uses it.
type SQLGenTx struct {
	Tx      *sql.Tx
	Dialect sqldb.Dialect
}

func (t SQLGenTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.Tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t SQLGenTx) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	var v int64
	err := t.Tx.QueryRowContext(ctx, q, args...).Scan(&v)
	return v, err
}

func (t SQLGenTx) Savepoint(time.Duration) dbop.Decorator { return sqldb.InSavepoint(t.Tx, t.Dialect) }

// Result is what a generated transfer returns; def is the value the
// pipeline's OrDefault or Fallback gives in place of an error.
type Result struct{ def bool }

// errFallback is what a Fallback(error) pipeline's fallback returns in
// place of the error it was given: the caller is told a plain failure.
var errFallback = errors.New("faulttest: the fallback's own error")

// genShared is what the workers of one round share: one Bulkhead before
// the retries and another after them, one HotSpot for the hot rows, one
// retry budget, and which workers share commits.
type genShared struct {
	bulkheadA, bulkheadB, hotSpot dbop.Decorator
	budget                        *dbop.Budget
	observer                      dbop.Observer
	sharing                       sharing
}

// sharing is the round's draw of the workers whose whole transactions
// share commits (pgxdb.ShareCommits; Backend.Share). The attempts that
// share a transaction are those on one Beginner with the same options:
// every sharing transaction of the round runs on one pool, direct or, one
// round in two, through the fault proxy (whose cuts after COMMIT then
// make every attempt of a shared transaction Ambiguous at once). Two
// direct workers are core: they share with the round's limit at READ
// COMMITTED, and draw no HotSpot (which admits one
// attempt at a time, and would leave nothing to share), so that every
// round shares (SharedCommitMinimum). At REPEATABLE READ or SERIALIZABLE
// an attempt that joins a shared transaction fails with a serialization
// failure when a row it updates changed after the transaction's snapshot,
// which the first attempt took: on the suite's five hot accounts, which
// the other workers write too, most joins do, and a round whose core
// workers ran serializable shared 4–6 transfers in 6 s. The other sharing
// workers take the round's limit and isolation, each one time in four its
// own.
type sharing struct {
	workers, core [NumWorkers]bool
	limit, iso    string
	proxied       bool // the round's sharing transactions go through the proxy
}

// drawSharing draws a round's sharing with rng: the pool's route, two or
// three of the direct workers, the first two core, and, when the pool is
// the proxied one, each proxied worker one time in two. A proxied worker
// never shares on the direct pool: with its transactions off the proxy,
// the proxy's faults would find nothing to cut ("proxy drop all" fired
// once in a round where both did).
func drawSharing(rng *rand.Rand, be *Backend) sharing {
	var s sharing
	if !be.Share {
		return s
	}
	s.proxied = rng.IntN(2) == 0
	var direct []int
	for w := range NumWorkers {
		if Proxied(w) {
			s.workers[w] = s.proxied && rng.IntN(2) == 0
		} else {
			direct = append(direct, w)
		}
	}
	rng.Shuffle(len(direct), func(i, j int) { direct[i], direct[j] = direct[j], direct[i] })
	for i, w := range direct[:2+rng.IntN(2)] {
		s.workers[w], s.core[w] = true, i < 2
	}
	limits := be.Limits
	if limits == nil {
		limits = []string{"", "lock", "statement"}
	}
	s.limit = limits[rng.IntN(len(limits))]
	s.iso = []string{"", "", "repeatable read", "serializable"}[rng.IntN(4)]
	return s
}

func (s sharing) String() string {
	var ws []string
	for w, ok := range s.workers {
		if ok {
			ws = append(ws, fmt.Sprintf("%d%s", w, map[bool]string{true: " (core)"}[s.core[w]]))
		}
	}
	if ws == nil {
		return "none"
	}
	return fmt.Sprintf("workers %s; the core on %v, the others on %v", strings.Join(ws, ", "),
		TxOpts{Limit: s.limit, Classify: -1, Share: true, ShareProxied: s.proxied}, TxOpts{Limit: s.limit, Iso: s.iso, Classify: -1, Share: true, ShareProxied: s.proxied})
}

func newGenShared() *genShared {
	return &genShared{
		bulkheadA: dbop.Bulkhead(3),
		bulkheadB: dbop.Bulkhead(2),
		hotSpot:   dbop.HotSpot(),
		budget:    &dbop.Budget{Ratio: 0.5, Max: 20, MinRate: 20},
		observer:  dbop.SlogObserver(slog.New(slog.NewTextHandler(io.Discard, nil))),
	}
}

// drawPlan draws worker w's plan with rng, and builds it once to see that
// it is accepted: a pipeline the library refuses when it is built
// (invariant 4) is drawn again, and the refusal logged.
func drawPlan(t *testing.T, rng *rand.Rand, w int, be *Backend, sh *genShared, st *Stats) genPlan {
	t.Helper()
	for range 100 {
		p := genPlan{
			shape:         genShape(rng.IntN(int(numShapes))),
			proxied:       w == 2 || w == 5,
			route:         be.Routes,
			do:            be.Do != nil,
			idem:          rng.IntN(2) == 0,
			retry:         rng.IntN(8) != 0,
			attempts:      3 + rng.IntN(8),
			budget:        rng.IntN(4) == 0,
			elapsed:       rng.IntN(4) == 0,
			observ:        rng.IntN(4) == 0,
			inner:         1 + rng.IntN(4),
			innerClassify: rng.IntN(len(genClassifiers)+1) - 1,
			spLock:        be.SavepointLock && rng.IntN(2) == 0,
			wrapThen:      rng.IntN(2) == 0,
			allLimit:      rng.IntN(3),
		}
		if rng.IntN(3) == 0 {
			p.innerTimeout = be.AttemptTimeouts[rng.IntN(len(be.AttemptTimeouts))]
		}
		if p.shape == shapeThen && rng.IntN(3) == 0 {
			p.inner = 0
		}
		for _, k := range preKinds {
			if rng.IntN(4) == 0 {
				p.pre = append(p.pre, drawDeco(rng, k, be))
			}
		}
		for _, k := range postKinds {
			if rng.IntN(3) == 0 {
				p.post = append(p.post, drawDeco(rng, k, be))
			}
		}
		rng.Shuffle(len(p.pre), func(i, j int) { p.pre[i], p.pre[j] = p.pre[j], p.pre[i] })
		rng.Shuffle(len(p.post), func(i, j int) { p.post[i], p.post[j] = p.post[j], p.post[i] })
		limits := be.Limits
		if limits == nil {
			limits = []string{"", "lock", "statement"}
		}
		p.tx = TxOpts{
			Limit:    limits[rng.IntN(len(limits))],
			Resolve:  rng.IntN(2) == 0,
			Iso:      []string{"", "", "repeatable read", "serializable"}[rng.IntN(4)],
			Classify: rng.IntN(len(genClassifiers)+2) - 2,
		}
		if p.tx.Classify < -1 {
			p.tx.Classify = -1
		}
		if be.Cockroach && rng.IntN(4) == 0 {
			p.tx.Cockroach = 2 + rng.IntN(3)
		}
		if sh.sharing.workers[w] {
			p.tx.Share, p.tx.ShareProxied, p.tx.Resolve, p.tx.Cockroach = true, sh.sharing.proxied, false, 0
			switch {
			case sh.sharing.core[w]:
				p.tx.Limit, p.tx.Iso = sh.sharing.limit, ""
			case rng.IntN(4) != 0:
				p.tx.Limit, p.tx.Iso = sh.sharing.limit, sh.sharing.iso
			}
			if sh.sharing.core[w] {
				p.post = slices.DeleteFunc(p.post, func(d genDeco) bool { return d.kind == decoHotSpot })
			}
		}
		if msg := tryBuild(p, w, be, sh, st); msg != "" {
			t.Logf("worker %d: drew a pipeline the library refuses, drawing again: %s\n\t%v", w, msg, p)
			continue
		}
		return p
	}
	t.Fatalf("worker %d: no pipeline accepted in 100 draws", w)
	return genPlan{}
}

func drawDeco(rng *rand.Rand, k decoKind, be *Backend) genDeco {
	d := genDeco{kind: k, accept: rng.IntN(4) == 0, classifier: rng.IntN(len(genClassifiers))}
	switch k {
	case decoTotalTimeout:
		d.d = time.Duration(2+rng.IntN(4)) * time.Second
	case decoAttemptTimeout:
		d.d = be.AttemptTimeouts[rng.IntN(len(be.AttemptTimeouts))]
	}
	return d
}

// tryBuild builds p's transactions and pipeline for a made-up transfer,
// without running them, and returns the panic it met, if any.
func tryBuild(p genPlan, w int, be *Backend, sh *genShared, st *Stats) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	nop := func(context.Context, GenTx) (Result, error) { return Result{}, nil }
	be.InTx(w, nop, p.tx)
	read := p.tx.readOnly()
	be.InTx(w, nop, read)
	if be.Do != nil {
		be.Do(w, func(context.Context, GenTx) error { return nil }, p.tx)
		be.Do(w, func(context.Context, GenTx) error { return nil }, read)
	}
	p.build(w, be, sh, st, Transfer{Key: "probe", Src: 0, Dst: 1, Amount: 1})
	return ""
}

// decorators returns p's outer pipeline, outermost first.
func (p genPlan) decorators(w int, sh *genShared, st *Stats) []dbop.Decorator {
	var ds []dbop.Decorator
	add := func(d genDeco) {
		var opts []dbop.FallbackOption
		if d.accept {
			opts = append(opts, dbop.AcceptAmbiguous())
		}
		switch d.kind {
		case decoTotalTimeout, decoAttemptTimeout:
			ds = append(ds, dbop.WithTimeout(d.d))
		case decoBulkhead:
			ds = append(ds, sh.bulkheadA)
		case decoAttemptBulkhead:
			ds = append(ds, sh.bulkheadB)
		case decoOrDefault:
			ds = append(ds, dbop.OrDefault(Result{def: true}, opts...))
		case decoFallbackValue:
			ds = append(ds, dbop.Fallback(func(context.Context, error) (Result, error) { return Result{def: true}, nil }, opts...))
		case decoFallbackError:
			ds = append(ds, dbop.Fallback(func(context.Context, error) (Result, error) { return Result{}, errFallback }, opts...))
		case decoHotSpot:
			if p.retry {
				ds = append(ds, sh.hotSpot)
			}
		case decoClassify:
			if p.retry {
				ds = append(ds, dbop.ClassifyBy(genClassifiers[d.classifier].fn))
			}
		case decoBefore:
			ds = append(ds, dbop.Before(func(context.Context) error { return nil }))
		}
	}
	for _, d := range p.pre {
		add(d)
	}
	if p.retry {
		opts := []dbop.RetryOption{dbop.MaxAttempts(p.attempts), dbop.OnRetry(st.OnRetry)}
		if p.idem {
			opts = append(opts, dbop.Idempotent())
		}
		if p.budget {
			opts = append(opts, dbop.WithBudget(sh.budget))
		}
		if p.elapsed {
			opts = append(opts, dbop.MaxElapsed(3*time.Second))
		}
		if p.observ {
			opts = append(opts, dbop.Observe(sh.observer))
		}
		ds = append(ds, dbop.WithRetry(Backoff, opts...))
	}
	for _, d := range p.post {
		add(d)
	}
	return ds
}

// innerDecorators returns the pipeline of a step or of the credit: its
// retry, a per-attempt timeout, a classifier, and last the savepoint scope
// sp, if any.
func (p genPlan) innerDecorators(st *Stats, sp dbop.Decorator) []dbop.Decorator {
	var ds []dbop.Decorator
	if p.inner > 0 {
		opts := []dbop.RetryOption{dbop.MaxAttempts(p.inner), dbop.OnRetry(st.OnRetry)}
		if p.idem {
			opts = append(opts, dbop.Idempotent())
		}
		ds = append(ds, dbop.WithRetry(Backoff, opts...))
	}
	if p.innerTimeout > 0 {
		ds = append(ds, dbop.WithTimeout(p.innerTimeout))
	}
	if p.innerClassify >= 0 && p.inner > 0 {
		ds = append(ds, dbop.ClassifyBy(genClassifiers[p.innerClassify].fn))
	}
	if sp != nil {
		ds = append(ds, sp)
	}
	return ds
}

// build returns tr applied through p: its shape, then its pipeline.
func (p genPlan) build(w int, be *Backend, sh *genShared, st *Stats, tr Transfer) dbop.Op[Result] {
	legs := p.legs(tr)
	apply := func(l leg) func(ctx context.Context, tx GenTx) (Result, error) {
		return func(ctx context.Context, tx GenTx) (Result, error) {
			return Result{}, p.applyLeg(ctx, be, st, tx, l)
		}
	}
	applyDo := func(l leg) func(ctx context.Context, tx GenTx) error {
		return func(ctx context.Context, tx GenTx) error { return p.applyLeg(ctx, be, st, tx, l) }
	}
	var lock time.Duration
	if p.spLock {
		lock = be.Lock
	}
	var op dbop.Op[Result]
	switch p.shape {
	case shapeTx:
		op = be.InTx(w, apply(legs[0]), p.tx)
	case shapeSteps:
		op = be.InTx(w, func(ctx context.Context, tx GenTx) (Result, error) {
			return Result{}, p.applyLegInSteps(ctx, be, st, tx, lock, legs[0])
		}, p.tx)
	case shapeThen:
		credit := be.InTx(w, apply(legs[1]), p.tx).With(p.innerDecorators(st, nil)...)
		op = dbop.Then(be.InTx(w, apply(legs[0]), p.tx), func(ctx context.Context, _ Result) (Result, error) {
			return credit.Run(ctx)
		})
	case shapeAll:
		if be.Do != nil {
			all := dbop.All(p.allLimit, be.Do(w, applyDo(legs[0]), p.tx), be.Do(w, applyDo(legs[1]), p.tx))
			op = dbop.Then(all, func(context.Context, []struct{}) (Result, error) { return Result{}, nil })
			break
		}
		all := dbop.All(p.allLimit, be.InTx(w, apply(legs[0]), p.tx), be.InTx(w, apply(legs[1]), p.tx))
		op = dbop.Then(all, func(context.Context, []Result) (Result, error) { return Result{}, nil })
	case shapeTxThen:
		op = be.InTx(w, func(ctx context.Context, tx GenTx) (Result, error) {
			debit := dbop.Op[Result](func(ctx context.Context) (Result, error) { return apply(legs[0])(ctx, tx) })
			credit := dbop.Op[Result](func(ctx context.Context) (Result, error) { return apply(legs[1])(ctx, tx) })
			th := dbop.Then(debit.With(tx.Savepoint(lock)), func(ctx context.Context, _ Result) (Result, error) {
				return credit.With(tx.Savepoint(lock)).Run(ctx)
			})
			var sp dbop.Decorator
			if p.wrapThen {
				sp = tx.Savepoint(lock)
			}
			return th.With(p.innerDecorators(st, sp)...).Run(ctx)
		}, p.tx)
	case shapeReadThen:
		ro := p.tx.readOnly()
		readFn := func(ctx context.Context, tx GenTx) error {
			_, err := tx.QueryInt(ctx, be.Read, tr.Src)
			return err
		}
		write := be.InTx(w, apply(legs[0]), p.tx)
		if be.Do != nil {
			op = dbop.Then(be.Do(w, readFn, ro), func(ctx context.Context, _ struct{}) (Result, error) { return write.Run(ctx) })
			break
		}
		read := be.InTx(w, func(ctx context.Context, tx GenTx) (Result, error) { return Result{}, readFn(ctx, tx) }, ro)
		op = dbop.Then(read, func(ctx context.Context, _ Result) (Result, error) { return write.Run(ctx) })
	}
	return op.With(p.decorators(w, sh, st)...)
}

// applyLeg writes l's ledger row and, if this call wrote it, moves its
// amount. With plain SQL a ledger row already there is a unique violation:
// the leg ran again after it committed (or, in a transaction, after its
// savepoint was released), which it records.
func (p genPlan) applyLeg(ctx context.Context, be *Backend, st *Stats, tx GenTx, l leg) error {
	inserted, err := p.insertLedger(ctx, be, st, tx, l)
	if err != nil || !inserted {
		return err
	}
	for _, u := range []struct {
		id    int
		delta int64
	}{{l.row.Src, -l.row.Amount}, {l.row.Dst, l.row.Amount}} {
		if err := updateBalance(ctx, be, tx, u.id, u.delta); err != nil {
			return err
		}
	}
	return nil
}

func (p genPlan) insertLedger(ctx context.Context, be *Backend, st *Stats, tx GenTx, l leg) (bool, error) {
	q := be.Insert
	if p.idem {
		q = be.InsertIdem
	}
	n, err := tx.Exec(ctx, q, l.key, l.row.Src, l.row.Dst, l.row.Amount)
	if err != nil {
		if be.Dup(err) {
			st.rerun(ctx, l.key, err)
		}
		return false, err
	}
	return n == 1, nil
}

func updateBalance(ctx context.Context, be *Backend, tx GenTx, id int, delta int64) error {
	n, err := tx.Exec(ctx, be.Update, delta, id)
	if err != nil {
		return err
	}
	if n != 1 {
		return dbop.Classify(fmt.Errorf("account %d: updated %d rows", id, n), dbop.NotRetryable)
	}
	return nil
}

// applyLegInSteps is applyLeg with each statement a savepoint step with
// its own retry.
func (p genPlan) applyLegInSteps(ctx context.Context, be *Backend, st *Stats, tx GenTx, lock time.Duration, l leg) error {
	inserted, err := dbop.Op[bool](func(ctx context.Context) (bool, error) {
		return p.insertLedger(ctx, be, st, tx, l)
	}).With(p.innerDecorators(st, tx.Savepoint(lock))...).Run(ctx)
	if err != nil || !inserted {
		return err
	}
	for _, u := range []struct {
		id    int
		delta int64
	}{{l.row.Src, -l.row.Amount}, {l.row.Dst, l.row.Amount}} {
		if _, err := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
			return struct{}{}, updateBalance(ctx, be, tx, u.id, u.delta)
		}).With(p.innerDecorators(st, tx.Savepoint(lock))...).Run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// genRounds reads RoundsEnv.
func genRounds(t *testing.T) int {
	t.Helper()
	s := os.Getenv(RoundsEnv)
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number of rounds", RoundsEnv, s)
	}
	return n
}

// Setup prepares one round of a backend: its tables, pools, proxy and
// injector. It returns the backend, the injector, the fault minimums, and
// finish, which closes the workers' pools and reads the final state with a
// fresh connection.
type Setup func(t *testing.T, cfg RunConfig, st *Stats) (be *Backend, inject InjectFunc, minimums map[string]int, finish func() (map[string]LedgerRow, []int64))

// RunGenerated runs the rounds of one backend. setup prepares a round's
// tables and pools and returns the backend, the injector, and a function
// that closes the workers' pools and reads the final state with a fresh
// connection.
func RunGenerated(t *testing.T, setup Setup) {
	base := NewRunConfig(t)
	for round := range genRounds(t) {
		cfg := base
		cfg.Seed = base.Seed + uint64(round)
		cfg.RunID = NewRunID()
		t.Run(fmt.Sprintf("round%d-seed%d", round, cfg.Seed), func(t *testing.T) {
			st := NewStats()
			be, inject, minimums, finish := setup(t, cfg, st)
			sh := newGenShared()
			sh.sharing = drawSharing(rand.New(rand.NewPCG(cfg.Seed, 2<<32)), be)
			if be.Share {
				t.Logf("sharing commits: %v", sh.sharing)
			}
			plans := make([]genPlan, NumWorkers)
			workers := make([]Worker, NumWorkers)
			runs := make([]TransferFunc, NumWorkers)
			for w := range plans {
				rng := rand.New(rand.NewPCG(cfg.Seed, 1<<32+uint64(w)))
				p := drawPlan(t, rng, w, be, sh, st)
				plans[w], workers[w] = p, p
				runs[w] = func(ctx context.Context, tr Transfer) (wrote bool, err error) {
					if be.Caller != nil {
						var done func()
						ctx, done = be.Caller(ctx)
						defer done()
					}
					res, err := p.build(w, be, sh, st, tr).Run(scopes.OnCommitResolved(ctx, st.OnResolved))
					return !res.def, err
				}
				t.Logf("worker %d: %v", w, p)
			}
			t.Cleanup(func() {
				if t.Failed() {
					var b strings.Builder
					fmt.Fprintf(&b, "FAILED on %s with seed %d; replay with %s=%d %s=1 (and %s=%v). The pipelines:", be.Name, cfg.Seed, SeedEnv, cfg.Seed, RoundsEnv, DurationEnv, cfg.Duration)
					for w, p := range plans {
						fmt.Fprintf(&b, "\n\tworker %d: %v", w, p)
					}
					t.Log(b.String())
				}
			})
			outcomes := RunWorkload(t, cfg, workers, runs, inject, st)
			ledger, balances := finish()
			Verify(t, workers, outcomes, ledger, balances, st)
			CheckFaults(t, cfg, st, minimums)
			CheckCounts(t, cfg, st, be.CountMinimums)
		})
	}
}

// toldCommitted reports whether err tells its caller that a step of a Then
// or All had committed before the failure: ErrAlreadyCommitted from a
// retry, or the mark Then and All put on the error, which its message
// shows.
func toldCommitted(err error) bool {
	if errors.Is(err, dbop.ErrAlreadyCommitted) {
		return true
	}
	for range txmark.Afters(err) {
		return true
	}
	return false
}

// GeneratedMinimums returns minimums with the kinds named in drawn, which
// fire only as far as the drawn pipelines let them, at 0: a cut after
// COMMIT fires when a proxied worker sends a COMMIT while the cut is armed,
// and the two proxied workers may draw pipelines that seldom reach one (a
// per-attempt timeout of 100 ms under the injector's faults: 2 cuts in a
// round of 15 s, where the fixed workers' suites see more than 3). Those
// suites keep the minimums that prove the injector reaches its target; the
// armed count still proves it tried here.
func GeneratedMinimums(minimums map[string]int, drawn ...string) map[string]int {
	m := maps.Clone(minimums)
	for _, kind := range drawn {
		if _, ok := m[kind]; !ok {
			panic("generatedMinimums: no minimum named " + kind)
		}
		m[kind] = 0
	}
	return m
}
