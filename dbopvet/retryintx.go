package dbopvet

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"strings"
)

// A mark is what the analyzer knows of a context: whether it is marked as
// running inside a transaction (dbop.WithinTx, or the context a
// transaction scope handed over).
type mark int

const (
	markUnknown mark = iota
	marked
	unmarked
)

// markOf returns what is known of the context e.
func (c *checker) markOf(e ast.Expr, depth int) mark {
	if depth > maxDepth {
		return markUnknown
	}
	info := c.pass.TypesInfo
	switch x := ast.Unparen(e).(type) {
	case *ast.CallExpr:
		fn := callee(info, x)
		switch {
		case fn == nil:
			return markUnknown
		case isFunc(fn, dbopPath, "WithinTx"):
			return marked
		case isFunc(fn, contextPath, "Background"), isFunc(fn, contextPath, "TODO"):
			return unmarked
		case funcPath(fn) == contextPath && strings.HasPrefix(fn.Name(), "With") && len(x.Args) > 0:
			return c.markOf(x.Args[0], depth+1)
		case fn.Name() == "Context" && funcPath(fn) == testingPath:
			return unmarked // t.Context()
		}
		return markUnknown
	case *ast.Ident:
		v := c.ix.varOf(x)
		if v == nil || v.IsField() || isPackageLevel(v) {
			return markUnknown
		}
		if node := c.ix.paramOf[v]; node != nil {
			if tf := c.txFuncs[node]; tf != nil {
				if tf.ctx == v {
					return marked
				}
				return markUnknown
			}
			d, ok := node.(*ast.FuncDecl)
			if !ok {
				return markUnknown // a literal's parameter: whoever calls it decides
			}
			if fn, ok := info.Defs[d.Name].(*types.Func); ok && c.ix.valueUses[fn] {
				return markUnknown // a function passed as a value, perhaps to a scope
			}
			return unmarked
		}
		ds := c.ix.defs[v]
		if len(ds) == 0 {
			return markUnknown
		}
		m := markUnknown
		for i, d := range ds {
			var dm mark
			switch {
			case d.rhs == nil:
				return markUnknown
			case d.index < 0:
				dm = c.markOf(d.rhs, depth+1)
			case d.index == 0:
				// ctx, cancel := context.WithTimeout(parent, d)
				call, ok := ast.Unparen(d.rhs).(*ast.CallExpr)
				if !ok {
					return markUnknown
				}
				fn := callee(info, call)
				if fn == nil || funcPath(fn) != contextPath || !strings.HasPrefix(fn.Name(), "With") || len(call.Args) == 0 {
					return markUnknown
				}
				dm = c.markOf(call.Args[0], depth+1)
			default:
				return markUnknown
			}
			if dm == markUnknown || (i > 0 && dm != m) {
				return markUnknown
			}
			m = dm
		}
		return m
	}
	return markUnknown
}

// A txUse is a transaction whose statements an operation's function runs.
type txUse struct {
	at     ast.Expr   // where the function uses it
	v      *types.Var // the variable holding it
	origin string     // how the message describes it
	byHand bool       // begun by hand or by GORM's Transaction, not handed in by a scope
	scope  string     // the scope that handed it in
	// For byHand: where it was begun, and by what ("by hand", "by GORM's
	// Transaction").
	begunAt token.Pos
	begunBy string
}

// checkRetryInTx reports check 3: a retry around work on a transaction
// begun by hand or handed in by a scope, run with a context not marked as
// inside it (ctx, passed to x.Run, where o is what x resolves to). Without
// the mark the retry cannot tell that it runs inside the transaction, not
// around the code that begins it; only a savepoint scope listed after it
// in the same With (a Chain there included) tells it, and covers all its
// attempt runs. It reports the retry when its attempt runs statements on
// the transaction with no savepoint scope inside it, and when the
// savepoint scopes its attempt reaches on the transaction are elsewhere:
// in another With inside it, in a step of a Then or an All, in the
// function of an Op of the user's.
func (c *checker) checkRetryInTx(x ast.Expr, o op, ctx ast.Expr) {
	for i := range o.decos {
		d := &o.decos[i]
		if d.kind != decoRetry {
			continue
		}
		// A savepoint scope listed after the retry in the same With runs
		// every attempt inside it, and the retry knows; one listed before
		// it there makes With panic; one in a With outside it hands the
		// retry a context marked as inside the transaction. A decorator
		// the analyzer cannot see into, inside the retry, may be a
		// savepoint scope.
		protected := false
		var scopes []*ast.CallExpr // savepoint scopes in a With inside the retry's
		for j := range o.decos {
			other := &o.decos[j]
			switch {
			case other.kind == decoUnknown && j > i,
				other.kind == decoSavepoint && (other.with == d.with || j < i):
				protected = true
			case other.kind == decoSavepoint:
				scopes = append(scopes, other.scope)
			}
		}
		if protected {
			continue
		}
		if c.markOf(ctx, 0) != unmarked {
			return
		}
		a := &attempt{seen: map[ast.Node]bool{}}
		c.collectOp(x, 0, a, false)
		scopes = append(scopes, a.scopes...)
		// The transaction: that of a savepoint scope, or else one the
		// functions run statements on; the scope the message names: one on
		// that transaction, if any.
		use, ok := txUse{}, false
		var named *ast.CallExpr
		for _, sc := range scopes {
			if e := c.savepointTx(sc); e != nil {
				if use, ok = c.txFromOutside(e, sc, a.fns); ok {
					named = sc
					break
				}
			}
		}
		for _, fn := range a.fns {
			if ok {
				break
			}
			use, ok = c.txUseIn(fn, a.fns)
		}
		if !ok {
			return
		}
		if named == nil && len(scopes) > 0 {
			named = scopes[0]
		}
		name := use.v.Name()
		_, savepoint := adapterFor(use.v.Type(), name)
		switch {
		case named != nil && use.byHand:
			c.report(d.listed.Pos(), catRetryInTx, fmt.Sprintf(
				"%s runs the work on %s again, inside %s, with a context not marked by dbop.WithinTx: "+
					"without the mark it cannot tell that it runs inside the transaction, not around the code "+
					"that begins it, and the savepoint scope inside it (%s), not listed after it in the same With, "+
					"covers only its own step: after a deadlock, which ends the transaction on MySQL and MariaDB, "+
					"the retry runs the work again, each statement then committed on its own; Run it with "+
					"dbop.WithinTx(ctx) so that the error reaches the code that began %s, or list %s after the "+
					"retry in the same With",
				retryName(d), name, use.origin, c.posLine(named.Pos(), d.listed.Pos()), name, savepoint))
		case named != nil:
			c.report(d.listed.Pos(), catRetryInTx, fmt.Sprintf(
				"%s runs the work on %s again, inside %s, with a context that is not the one %s handed in: "+
					"without the mark it cannot tell that it runs inside the transaction, not around the code "+
					"that begins it, and the savepoint scope inside it (%s), not listed after it in the same With, "+
					"covers only its own step: after a deadlock, which ends the transaction on MySQL and MariaDB, "+
					"the retry runs the work again, each statement then committed on its own; Run it with the "+
					"context %s handed in, or list %s after the retry in the same With",
				retryName(d), name, use.origin, use.scope, c.posLine(named.Pos(), d.listed.Pos()),
				use.scope, savepoint))
		case use.byHand:
			c.report(d.listed.Pos(), catRetryInTx, fmt.Sprintf(
				"%s runs the statements on %s again, inside %s, with no savepoint scope inside the retry and "+
					"a context not marked by dbop.WithinTx: after a deadlock or a serialization failure it retries "+
					"inside the doomed transaction (PostgreSQL fails every attempt with 25P02; MySQL has rolled it "+
					"back, so the attempts run in autocommit); list %s after the retry, or Run it with "+
					"dbop.WithinTx(ctx) so that the error reaches the code that began %s",
				retryName(d), name, use.origin, savepoint, name))
		default:
			c.report(d.listed.Pos(), catRetryInTx, fmt.Sprintf(
				"%s runs the statements on %s again, inside %s, with no savepoint scope inside the retry and "+
					"a context that is not the one %s handed in: after a deadlock or a serialization failure it "+
					"retries inside the doomed transaction (PostgreSQL fails every attempt with 25P02; MySQL has "+
					"rolled it back, so the attempts run in autocommit); Run it with the context %s handed in, "+
					"or list %s after the retry",
				retryName(d), name, use.origin, use.scope, use.scope, savepoint))
		}
		return
	}
}

// An attempt is what an attempt of an operation runs, as far as the
// analyzer sees: the functions of the user's it calls (an Op's function,
// the steps of Then and All) and the savepoint scopes listed on the
// operations it runs, there and in those functions.
type attempt struct {
	fns    []ast.Node
	scopes []*ast.CallExpr
	seen   map[ast.Node]bool
}

// collectOp adds to a what running the operation e runs; with decos, the
// savepoint scopes in e's own With lists too.
func (c *checker) collectOp(e ast.Expr, depth int, a *attempt, decos bool) {
	if depth > maxDepth {
		return
	}
	o := c.resolveOp(e, depth)
	if decos {
		for _, d := range o.decos {
			if d.kind == decoSavepoint {
				a.scopes = append(a.scopes, d.scope)
			}
		}
	}
	if o.fn != nil {
		c.collectFunc(o.fn, depth+1, a)
		return
	}
	call, ok := c.opBase(e, depth).(*ast.CallExpr)
	if !ok || call.Ellipsis.IsValid() {
		return
	}
	switch fn := callee(c.pass.TypesInfo, call); {
	case isFunc(fn, dbopPath, "Then") && len(call.Args) == 2:
		c.collectOp(call.Args[0], depth+1, a, true)
		if f := c.ix.funcNode(call.Args[1]); f != nil {
			c.collectFunc(f, depth+1, a)
		}
	case isFunc(fn, dbopPath, "All") && len(call.Args) > 1:
		for _, arg := range call.Args[1:] {
			c.collectOp(arg, depth+1, a, true)
		}
	}
}

// collectFunc adds fn to a, and what the operations it runs run. A
// function run in a transaction of its own (InTx's) is left out.
func (c *checker) collectFunc(fn ast.Node, depth int, a *attempt) {
	if depth > maxDepth || a.seen[fn] {
		return
	}
	a.seen[fn] = true
	a.fns = append(a.fns, fn)
	body, _ := funcBody(fn)
	if body == nil {
		return
	}
	ast.Inspect(body, func(n ast.Node) bool {
		if lit, isLit := n.(*ast.FuncLit); isLit && c.txFuncs[lit] != nil {
			return false
		}
		if call, isCall := n.(*ast.CallExpr); isCall && len(call.Args) == 1 &&
			isOpMethod(callee(c.pass.TypesInfo, call), "Run") {
			c.collectOp(ast.Unparen(call.Fun).(*ast.SelectorExpr).X, depth+1, a, true)
		}
		return true
	})
}

// savepointTx returns the transaction a savepoint scope is built on:
// InSavepoint's tx, scopes.InSavepoint(pgxdb.Savepoints(tx))'s, AroundTx's
// handle; nil when it is not known.
func (c *checker) savepointTx(scope *ast.CallExpr) ast.Expr {
	if scope == nil || len(scope.Args) == 0 || scope.Ellipsis.IsValid() {
		return nil
	}
	arg := scope.Args[0]
	if fn := callee(c.pass.TypesInfo, scope); funcPath(fn) != scopesPath {
		return arg
	}
	inner, ok := ast.Unparen(arg).(*ast.CallExpr)
	if !ok || len(inner.Args) != 1 {
		return nil
	}
	if fn := callee(c.pass.TypesInfo, inner); fn == nil || !isLibrary(funcPath(fn)) {
		return nil
	}
	return inner.Args[0]
}

// txUseIn returns a transaction from outside fn and each of outside on
// which fn runs statements, itself or by passing it to a function, when
// it is one the analyzer sees begun by hand or handed in by a scope.
func (c *checker) txUseIn(fn ast.Node, outside []ast.Node) (txUse, bool) {
	body, _ := funcBody(fn)
	if body == nil {
		return txUse{}, false
	}
	info := c.pass.TypesInfo
	var found txUse
	ok := false
	consider := func(e ast.Expr) {
		if !ok {
			found, ok = c.txFromOutside(e, fn, append([]ast.Node{fn}, outside...))
		}
	}
	ast.Inspect(body, func(n ast.Node) bool {
		if lit, isLit := n.(*ast.FuncLit); isLit && c.txFuncs[lit] != nil {
			return false
		}
		call, isCall := n.(*ast.CallExpr)
		if !isCall {
			return true
		}
		f := callee(info, call)
		if f == nil {
			return true
		}
		if sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr); isSel && recvNamed(f) != nil {
			if isStatement(info.TypeOf(sel.X), f.Name()) {
				consider(sel.X)
			}
		}
		if !isLibrary(funcPath(f)) && funcPath(f) != pgxPath && funcPath(f) != sqlPath && funcPath(f) != gormPath {
			for _, arg := range call.Args {
				consider(arg)
			}
		}
		return true
	})
	return found, ok
}

// txFromOutside returns the transaction e holds, used at at, when the
// analyzer sees it begun by hand or handed in by a scope (txOrigin),
// outside each of fns.
func (c *checker) txFromOutside(e ast.Expr, at ast.Node, fns []ast.Node) (txUse, bool) {
	h := handleOf(c.pass.TypesInfo.TypeOf(e))
	if h != tx && h != gormDB {
		return txUse{}, false
	}
	r, ok := c.ix.rootOf(e)
	if !ok || r.begun {
		return txUse{}, false
	}
	r = c.resolveLocal(r)
	if r.begun || len(r.path) > 0 {
		return txUse{}, false
	}
	for _, fn := range fns {
		if within(r.v.Pos(), fn) {
			return txUse{}, false
		}
	}
	u, ok := c.txOrigin(r.v, at)
	u.at = e
	return u, ok
}

// txOrigin says where the transaction in v comes from, when the analyzer
// knows: begun by hand (tx, err := pool.Begin(ctx)), handed in to a
// function around fn by a transaction scope, or handed in by GORM's
// Transaction (db.Transaction(func(tx *gorm.DB) error { … })), which
// begins it and commits or rolls it back as by hand, and hands in no
// context.
func (c *checker) txOrigin(v *types.Var, fn ast.Node) (txUse, bool) {
	for _, tf := range c.enclosingTxFuncs(fn) {
		if tf.tx == v {
			return txUse{v: v, origin: "the transaction " + tf.scope + " handed in", scope: tf.scope}, true
		}
	}
	if lit, ok := c.ix.paramOf[v].(*ast.FuncLit); ok {
		if call := c.gormTransaction(lit); call != nil {
			if ps := c.ix.params(lit); len(ps) > 0 && ps[0] == v {
				return txUse{
					v:       v,
					origin:  "the transaction GORM's Transaction handed in (" + c.posLine(call.Pos(), fn.Pos()) + ")",
					byHand:  true,
					begunAt: call.Pos(),
					begunBy: "by GORM's Transaction",
				}, true
			}
		}
	}
	if c.ix.paramOf[v] != nil || isPackageLevel(v) {
		return txUse{}, false
	}
	ds := c.ix.defs[v]
	if len(ds) == 0 {
		return txUse{}, false
	}
	for _, d := range ds {
		call, ok := ast.Unparen(d.rhs).(*ast.CallExpr)
		if d.rhs == nil || !ok || d.index > 0 {
			return txUse{}, false
		}
		if _, ok := c.beginByHand(call); !ok {
			return txUse{}, false
		}
	}
	return txUse{
		v:       v,
		origin:  "a transaction begun by hand (" + c.posLine(ds[0].rhs.Pos(), fn.Pos()) + ")",
		byHand:  true,
		begunAt: ds[0].rhs.Pos(),
		begunBy: "by hand",
	}, true
}

// gormTransaction returns the call of GORM's Transaction lit is the
// function of (db.Transaction(lit, …)), or nil.
func (c *checker) gormTransaction(lit *ast.FuncLit) *ast.CallExpr {
	p, ok := c.ix.parents[lit].(*ast.CallExpr)
	if !ok || len(p.Args) == 0 || p.Args[0] != lit {
		return nil
	}
	f := callee(c.pass.TypesInfo, p)
	if f == nil || f.Name() != "Transaction" || !isNamed(recvNamed(f), gormPath, "DB") {
		return nil
	}
	return p
}

// beginByHand reports whether call begins a transaction by hand on a
// pool, a connection or a *gorm.DB (pool.Begin(ctx), db.BeginTx(ctx, nil),
// conn.BeginTx(ctx, opts), gdb.Begin()), and returns what it is begun on.
func (c *checker) beginByHand(call *ast.CallExpr) (on ast.Expr, ok bool) {
	f := callee(c.pass.TypesInfo, call)
	sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if f == nil || !isSel || (f.Name() != "Begin" && f.Name() != "BeginTx") {
		return nil, false
	}
	if h := handleOf(c.pass.TypesInfo.TypeOf(sel.X)); h != pool && h != conn && h != gormDB {
		return nil, false
	}
	return sel.X, true
}
