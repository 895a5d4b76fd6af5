package dbopvet

import (
	"fmt"
	"go/ast"
	"go/types"
	"sort"
	"strings"
)

// txFuncFact marks a function that runs a function it is given inside a
// transaction a scope began, as InTx does: a wrapper such as
//
//	func (s *Store) inTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
//		return pgxdb.Do(s.pool, fn).Run(ctx)
//	}
//
// The function literals its callers pass are checked as InTx's are.
type txFuncFact struct {
	Params []txParam
}

// A txParam is a parameter of a function with a txFuncFact.
type txParam struct {
	Param int // the index of the function parameter
	Tx    int // the index of the transaction among that function's parameters
	Ctx   int // the index of the marked context among them, or -1
	// Writes: every transaction the function runs that parameter in is
	// one the analyzer sees may commit writes (a scope call whose options
	// it sees, none of them ReadOnly). retry-commits counts only those.
	Writes bool
	// DB is the index of the function's parameter that holds the database
	// the transaction is begun on (passed on to InTx as its db), or -1
	// when that is not one of its parameters. tx-on-busy-conn reads it.
	DB int
	// Shares: a transaction the function runs that parameter in is one
	// pgxdb shares with other operations' attempts (a pgxdb InTx or Do
	// given pgxdb.ShareCommits()). shared-settings reads it.
	Shares bool
}

func (*txFuncFact) AFact() {}

func (f *txFuncFact) String() string {
	var s []string
	for _, p := range f.Params {
		w := ""
		if p.Writes {
			w = " writes"
		}
		db := ""
		if p.DB >= 0 {
			db = fmt.Sprintf(" db %d", p.DB)
		}
		if p.Shares {
			w += " shares"
		}
		s = append(s, fmt.Sprintf("param %d: tx %d ctx %d%s%s", p.Param, p.Tx, p.Ctx, db, w))
	}
	return "txFunc(" + strings.Join(s, "; ") + ")"
}

// endsTxFact marks a function that commits or rolls back a transaction it
// is passed, by parameter index: "commits" or "rolls back".
type endsTxFact struct {
	Params map[int]string
}

func (*endsTxFact) AFact() {}

func (f *endsTxFact) String() string {
	var s []string
	for i, what := range f.Params {
		s = append(s, fmt.Sprintf("param %d %s", i, what))
	}
	sort.Strings(s)
	return "endsTx(" + strings.Join(s, "; ") + ")"
}

// txFuncOf returns what is known of fn as a wrapper of InTx.
func (c *checker) txFuncOf(fn *types.Func) []txParam {
	if fn == nil {
		return nil
	}
	if ps, ok := c.localTxFuncs[fn]; ok {
		return ps
	}
	if fn.Pkg() == c.pass.Pkg {
		return nil
	}
	var f txFuncFact
	if c.pass.ImportObjectFact(fn, &f) {
		return f.Params
	}
	return nil
}

// endsTxOf returns the parameters of fn whose transaction it ends.
func (c *checker) endsTxOf(fn *types.Func) map[int]string {
	if fn == nil {
		return nil
	}
	if ps, ok := c.localEndsTx[fn]; ok {
		return ps
	}
	if fn.Pkg() == c.pass.Pkg {
		return nil
	}
	var f endsTxFact
	if c.pass.ImportObjectFact(fn, &f) {
		return f.Params
	}
	return nil
}

// computeFacts finds the package's wrappers of InTx and the functions that
// end a transaction they are passed, to a fixed point, and exports them.
func (c *checker) computeFacts() {
	for changed := true; changed; {
		changed = false
		c.findTxFuncs()
		for fn, d := range c.ix.decls {
			if ps := c.wrapperParams(d); knowsMore(ps, c.localTxFuncs[fn]) {
				c.localTxFuncs[fn] = ps
				changed = true
			}
			if ends := c.endingParams(d); len(ends) > len(c.localEndsTx[fn]) {
				c.localEndsTx[fn] = ends
				changed = true
			}
		}
	}
	c.findTxFuncs()
	for fn, ps := range c.localTxFuncs {
		if len(ps) > 0 {
			c.pass.ExportObjectFact(fn, &txFuncFact{Params: ps})
		}
	}
	for fn, ends := range c.localEndsTx {
		if len(ends) > 0 {
			c.pass.ExportObjectFact(fn, &endsTxFact{Params: ends})
		}
	}
	// Only an exported function can be called from another package.
	for fn, d := range c.ix.decls {
		if !fn.Exported() {
			continue
		}
		if c.nodeWrites(d) {
			c.pass.ExportObjectFact(fn, new(writesFact))
		}
		if c.commitsTx(fn) {
			c.pass.ExportObjectFact(fn, new(commitsTxFact))
		}
	}
}

// knowsMore reports whether ps, found for a function after old, says
// more: more parameters, one found to run in a transaction that may not
// write or that is shared, or the database of one found. Writes only ever
// goes from true to false, Shares from false to true, and DB from -1 to an
// index, so that the fixed point is reached.
func knowsMore(ps, old []txParam) bool {
	if len(ps) != len(old) {
		return len(ps) > len(old)
	}
	for i := range ps {
		if old[i].Writes && !ps[i].Writes || old[i].DB < 0 && ps[i].DB >= 0 || !old[i].Shares && ps[i].Shares {
			return true
		}
	}
	return false
}

// wrapperParams returns the function parameters of d that d runs inside
// a transaction: passed on to InTx or to another wrapper, or called, inside
// a function InTx runs, with InTx's transaction.
func (c *checker) wrapperParams(d *ast.FuncDecl) []txParam {
	if d.Body == nil {
		return nil
	}
	params := c.ix.params(d)
	indexOf := func(e ast.Expr) int {
		v := c.ix.varOf(e)
		for i, p := range params {
			if v != nil && p == v {
				if _, ok := p.Type().Underlying().(*types.Signature); ok {
					return i
				}
			}
		}
		return -1
	}
	// dbIndexOf returns the index of the parameter e, the database an
	// InTx is begun on, or -1.
	dbIndexOf := func(e ast.Expr) int {
		r, ok := c.rootOfBeginner(e)
		if !ok || len(r.path) > 0 {
			return -1
		}
		for i, p := range params {
			if p != nil && p == r.v {
				return i
			}
		}
		return -1
	}
	found := map[int]txParam{}
	add := func(tp txParam) {
		if old, ok := found[tp.Param]; ok {
			tp.Writes = tp.Writes && old.Writes
			tp.Shares = tp.Shares || old.Shares
			if tp.DB != old.DB {
				tp.DB = -1 // begun on different databases: none is the one
			}
		}
		found[tp.Param] = tp
	}
	ast.Inspect(d.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		fn := callee(c.pass.TypesInfo, call)
		if isTxFunc(fn) {
			if i, ok := txFuncArg(fn, call); ok {
				if p := indexOf(call.Args[i]); p >= 0 {
					db := -1
					if funcPath(fn) != scopesPath && i > 0 {
						db = dbIndexOf(call.Args[0])
					}
					add(txParam{Param: p, Tx: 1, Ctx: 0, Writes: c.scopeWrites(call, i), DB: db, Shares: c.scopeShares(fn, call, i)})
				}
			}
		}
		for _, tp := range c.txFuncOf(fn) {
			if tp.Param < len(call.Args) {
				if p := indexOf(call.Args[tp.Param]); p >= 0 {
					db := -1
					if tp.DB >= 0 && tp.DB < len(call.Args) {
						db = dbIndexOf(call.Args[tp.DB])
					}
					add(txParam{Param: p, Tx: tp.Tx, Ctx: tp.Ctx, Writes: tp.Writes, DB: db, Shares: tp.Shares})
				}
			}
		}
		// A parameter called inside a function run in a transaction, with
		// that function's transaction.
		if p := indexOf(call.Fun); p >= 0 {
			for _, tf := range c.enclosingTxFuncs(call) {
				tp := txParam{Param: p, Tx: -1, Ctx: -1, Writes: tf.writes, DB: -1, Shares: tf.shares}
				if !tf.unknown && len(tf.beginners) == 1 && len(tf.beginners[0].path) == 0 {
					for j, pv := range params {
						if pv != nil && pv == tf.beginners[0].v {
							tp.DB = j
						}
					}
				}
				for j, arg := range call.Args {
					if r, ok := c.ix.rootOf(arg); ok && len(r.path) == 0 && !r.begun {
						switch {
						case r.v == tf.tx:
							tp.Tx = j
						case r.v == tf.ctx:
							tp.Ctx = j
						}
					}
				}
				if tp.Tx >= 0 {
					add(tp)
					break
				}
			}
		}
		return true
	})
	ps := make([]txParam, 0, len(found))
	for _, p := range found {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Param < ps[j].Param })
	return ps
}

// endingParams returns the parameters of d whose transaction d commits or
// rolls back, itself or through another function.
func (c *checker) endingParams(d *ast.FuncDecl) map[int]string {
	if d.Body == nil {
		return nil
	}
	params := c.ix.params(d)
	ends := map[int]string{}
	for i, p := range params {
		if p == nil || !hasMethods(p.Type(), "Commit", "Rollback") {
			continue
		}
		c.walkRunning(d.Body, func(call *ast.CallExpr) {
			if what, _, ok := c.endsTx(call, func(r root) bool { return r.v == p }); ok {
				if ends[i] != "commits" {
					ends[i] = what
				}
			}
		})
	}
	return ends
}

// walkRunning calls f for each call in body that runs when body runs:
// it does not enter function literals, except one called or deferred
// where it stands (defer func() { … }()).
func (c *checker) walkRunning(body ast.Node, f func(*ast.CallExpr)) {
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			call, ok := c.ix.parents[n].(*ast.CallExpr)
			return ok && call.Fun == n
		case *ast.CallExpr:
			f(n)
		}
		return true
	})
}
