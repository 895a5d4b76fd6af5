package dbopvet

import (
	"go/ast"
	"go/types"
)

// A decoKind is what a decorator in a With list does, as far as the checks
// of retries care.
type decoKind int

const (
	decoNeutral   decoKind = iota // a dbop decorator that neither retries nor opens a scope
	decoRetry                     // dbop.WithRetry
	decoSavepoint                 // InSavepoint, dbop.AroundTx: a scope on a transaction the caller owns
	decoUnknown                   // anything the analyzer cannot see into
)

// A deco is one decorator of an operation, as resolved from its With lists.
type deco struct {
	kind   decoKind
	listed ast.Expr      // the With argument it was listed as (a Chain variable, say)
	with   *ast.CallExpr // the With call it was listed in (set by resolveOp)
	name   string        // for a neutral one, the dbop function that made it
	// For a savepoint scope: the call that made it (InSavepoint, AroundTx).
	scope *ast.CallExpr
	// For a retry:
	retry      *ast.CallExpr
	idempotent bool // dbop.Idempotent() is among its options
	optsKnown  bool // every option is one the analyzer recognises
}

// An op is what the analyzer knows of an operation: the function it runs
// and its decorators, outermost first.
type op struct {
	fn    ast.Node // *ast.FuncLit or *ast.FuncDecl; nil when not known
	decos []deco
}

const maxDepth = 16

// unmarkedRetry returns the outermost retry of o whose options are all
// known and that is not marked Idempotent, or nil.
func (o *op) unmarkedRetry() *deco {
	for i := range o.decos {
		if d := &o.decos[i]; d.kind == decoRetry && d.optsKnown && !d.idempotent {
			return d
		}
	}
	return nil
}

// neutralDecorators are dbop's decorators that neither retry nor run an
// attempt in a transaction scope. Any other is unknown: it might (an
// Around can run its own SAVEPOINT and ROLLBACK TO).
var neutralDecorators = map[string]bool{
	"WithTimeout": true, "ClassifyBy": true, "Before": true,
	"Bulkhead": true, "Fallback": true, "OrDefault": true,
}

// resolveOp returns what e, an expression of type dbop.Op[T], runs.
func (c *checker) resolveOp(e ast.Expr, depth int) op {
	if depth > maxDepth {
		return op{}
	}
	info := c.pass.TypesInfo
	switch e := ast.Unparen(e).(type) {
	case *ast.FuncLit:
		return op{fn: e}
	case *ast.Ident:
		v := c.ix.varOf(e)
		if v == nil || v.IsField() || c.ix.paramOf[v] != nil {
			return op{}
		}
		if d, ok := c.ix.singleDef(v); ok && d.index < 0 {
			return c.resolveOp(d.rhs, depth+1)
		}
	case *ast.CallExpr:
		if tv, ok := info.Types[e.Fun]; ok && tv.IsType() {
			if isOpType(tv.Type) && len(e.Args) == 1 {
				return op{fn: c.ix.funcNode(e.Args[0])}
			}
			return op{}
		}
		fn := callee(info, e)
		if !isOpMethod(fn, "With") {
			return op{}
		}
		base := c.resolveOp(ast.Unparen(e.Fun).(*ast.SelectorExpr).X, depth+1)
		var ds []deco
		for _, arg := range e.Args {
			if e.Ellipsis.IsValid() {
				ds = append(ds, deco{kind: decoUnknown, listed: arg})
				continue
			}
			ds = append(ds, c.resolveDeco(arg, arg, depth+1)...)
		}
		for i := range ds {
			ds[i].with = e
		}
		return op{fn: base.fn, decos: append(ds, base.decos...)}
	}
	return op{}
}

// resolveDeco returns the decorators e, listed in a With call as listed,
// stands for: one, or those of a Chain.
func (c *checker) resolveDeco(e, listed ast.Expr, depth int) []deco {
	unknown := []deco{{kind: decoUnknown, listed: listed}}
	if depth > maxDepth {
		return unknown
	}
	info := c.pass.TypesInfo
	switch x := ast.Unparen(e).(type) {
	case *ast.Ident:
		v := c.ix.varOf(x)
		if v == nil || v.IsField() || c.ix.paramOf[v] != nil {
			return unknown
		}
		if d, ok := c.ix.singleDef(v); ok && d.index < 0 {
			return c.resolveDeco(d.rhs, listed, depth+1)
		}
		return unknown
	case *ast.CallExpr:
		fn := callee(info, x)
		switch {
		case isFunc(fn, dbopPath, "WithRetry"):
			d := deco{kind: decoRetry, listed: listed, retry: x, optsKnown: !x.Ellipsis.IsValid()}
			for _, opt := range x.Args[min(1, len(x.Args)):] {
				switch c.retryOption(opt, depth+1) {
				case "Idempotent":
					d.idempotent = true
				case "":
					d.optsKnown = false
				}
			}
			return []deco{d}
		case isFunc(fn, dbopPath, "Chain"):
			if x.Ellipsis.IsValid() {
				return unknown
			}
			var ds []deco
			for _, arg := range x.Args {
				ds = append(ds, c.resolveDeco(arg, listed, depth+1)...)
			}
			return ds
		case isSavepointFunc(fn):
			return []deco{{kind: decoSavepoint, listed: listed, scope: x}}
		case fn != nil && funcPath(fn) == dbopPath && neutralDecorators[fn.Name()] && recvNamed(fn) == nil:
			return []deco{{kind: decoNeutral, listed: listed, name: fn.Name()}}
		}
	}
	return unknown
}

// optionMaker returns the name of the package-level function that made
// the option e (followed through variables assigned once) when from says
// it is one the analyzer knows, or "" otherwise.
func (c *checker) optionMaker(e ast.Expr, depth int, from func(*types.Func) bool) string {
	if depth > maxDepth {
		return ""
	}
	switch x := ast.Unparen(e).(type) {
	case *ast.Ident:
		v := c.ix.varOf(x)
		if v == nil || v.IsField() || c.ix.paramOf[v] != nil {
			return ""
		}
		if d, ok := c.ix.singleDef(v); ok && d.index < 0 {
			return c.optionMaker(d.rhs, depth+1, from)
		}
	case *ast.CallExpr:
		if fn := callee(c.pass.TypesInfo, x); fn != nil && recvNamed(fn) == nil && from(fn) {
			return fn.Name()
		}
	}
	return ""
}

// retryOption returns the name of the dbop function that made the retry
// option e, or "" when it is not known.
func (c *checker) retryOption(e ast.Expr, depth int) string {
	return c.optionMaker(e, depth, func(fn *types.Func) bool { return funcPath(fn) == dbopPath })
}

// checkOps runs checks 3, 4, 5 and 7 on every decorated operation, and
// check 6 on every dbop.Then.
func (c *checker) checkOps() {
	info := c.pass.TypesInfo
	var thens []*ast.CallExpr
	// thenRetries are the retries seen around a Then: the first one not
	// marked Idempotent in a With list on it.
	thenRetries := map[ast.Expr]*deco{}
	for _, f := range c.pass.Files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			fn := callee(info, call)
			switch {
			case isOpMethod(fn, "With") && !c.isInnerWith(call):
				o := c.resolveOp(call, 0)
				c.checkAutocommitRetry(o)
				c.checkRetryCommits(o)
				c.checkOneShot(call, o)
				if base := c.opBase(call, 0); thenRetries[base] == nil {
					thenRetries[base] = o.unmarkedRetry()
				}
			case isOpMethod(fn, "Run") && len(call.Args) == 1:
				x := ast.Unparen(call.Fun).(*ast.SelectorExpr).X
				c.checkRetryInTx(x, c.resolveOp(x, 0), call.Args[0])
			case isFunc(fn, dbopPath, "Then"):
				thens = append(thens, call)
			}
			return true
		})
	}
	for _, then := range thens {
		c.checkThenCtx(then, thenRetries[then])
	}
}

// isInnerWith reports whether call is the receiver of another With call,
// which checks the whole chain.
func (c *checker) isInnerWith(call *ast.CallExpr) bool {
	sel, ok := c.ix.parents[call].(*ast.SelectorExpr)
	if !ok || sel.X != call {
		return false
	}
	outer, ok := c.ix.parents[sel].(*ast.CallExpr)
	return ok && isOpMethod(callee(c.pass.TypesInfo, outer), "With")
}

func retryName(d *deco) string {
	if d.listed != nil && d.retry != nil && d.listed != ast.Expr(d.retry) {
		return "dbop.WithRetry in " + types.ExprString(d.listed)
	}
	return "dbop.WithRetry"
}
