package dbopvet

import (
	"fmt"
	"go/ast"
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
	byHand bool       // begun by hand, not handed in by a scope
	scope  string     // the scope that handed it in
}

// checkRetryInTx reports check 3: a retry around statements on a
// transaction that no savepoint scope and no marked context protects.
func (c *checker) checkRetryInTx(o op, ctx ast.Expr) {
	if o.fn == nil {
		return
	}
	for i, d := range o.decos {
		if d.kind != decoRetry {
			continue
		}
		// A savepoint scope (or a decorator that may be one) inside the
		// retry protects it; one listed before it makes With panic.
		protected := false
		for j, other := range o.decos {
			protected = protected || other.kind == decoSavepoint || (j > i && other.kind == decoUnknown)
		}
		if protected {
			continue
		}
		use, ok := c.txUseIn(o.fn)
		if !ok || c.markOf(ctx, 0) != unmarked {
			return
		}
		name := use.v.Name()
		_, savepoint := adapterFor(use.v.Type(), name)
		if use.byHand {
			c.report(d.listed.Pos(), catRetryInTx, fmt.Sprintf(
				"%s runs the statements on %s again, inside %s, with no savepoint scope inside the retry and "+
					"a context not marked by dbop.WithinTx: after a deadlock or a serialization failure it retries "+
					"inside the doomed transaction (PostgreSQL fails every attempt with 25P02; MySQL has rolled it "+
					"back, so the attempts run in autocommit); list %s after the retry, or Run it with "+
					"dbop.WithinTx(ctx) so that the error reaches the code that began %s",
				retryName(&d), name, use.origin, savepoint, name))
		} else {
			c.report(d.listed.Pos(), catRetryInTx, fmt.Sprintf(
				"%s runs the statements on %s again, inside %s, with no savepoint scope inside the retry and "+
					"a context that is not the one %s handed in: after a deadlock or a serialization failure it "+
					"retries inside the doomed transaction (PostgreSQL fails every attempt with 25P02; MySQL has "+
					"rolled it back, so the attempts run in autocommit); Run it with the context %s handed in, "+
					"or list %s after the retry",
				retryName(&d), name, use.origin, use.scope, use.scope, savepoint))
		}
		return
	}
}

// txUseIn returns a transaction from outside fn on which fn runs
// statements, itself or by passing it to a function, when it is one the
// analyzer sees begun by hand or handed in by a scope.
func (c *checker) txUseIn(fn ast.Node) (txUse, bool) {
	body, _ := funcBody(fn)
	if body == nil {
		return txUse{}, false
	}
	info := c.pass.TypesInfo
	var found txUse
	ok := false
	consider := func(e ast.Expr) {
		if ok {
			return
		}
		h := handleOf(info.TypeOf(e))
		if h != tx && h != gormDB {
			return
		}
		r, rok := c.ix.rootOf(e)
		if !rok || r.begun {
			return
		}
		r = c.resolveLocal(r)
		if r.begun || len(r.path) > 0 || within(r.v.Pos(), fn) {
			return
		}
		if u, uok := c.txOrigin(r.v, fn); uok {
			u.at = e
			found, ok = u, true
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

// txOrigin says where the transaction in v comes from, when the analyzer
// knows: begun by hand (tx, err := pool.Begin(ctx)) or handed in to a
// function around fn by a transaction scope.
func (c *checker) txOrigin(v *types.Var, fn ast.Node) (txUse, bool) {
	for _, tf := range c.enclosingTxFuncs(fn) {
		if tf.tx == v {
			return txUse{v: v, origin: "the transaction " + tf.scope + " handed in", scope: tf.scope}, true
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
		f := callee(c.pass.TypesInfo, call)
		sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr)
		if f == nil || !isSel || (f.Name() != "Begin" && f.Name() != "BeginTx") {
			return txUse{}, false
		}
		if h := handleOf(c.pass.TypesInfo.TypeOf(sel.X)); h != pool && h != conn && h != gormDB {
			return txUse{}, false
		}
	}
	return txUse{
		v:      v,
		origin: "a transaction begun by hand (" + c.posLine(ds[0].rhs.Pos(), fn.Pos()) + ")",
		byHand: true,
	}, true
}
