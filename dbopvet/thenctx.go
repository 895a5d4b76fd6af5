package dbopvet

import (
	"fmt"
	"go/ast"
	"go/types"
)

// checkThenCtx reports check 6: a step of dbop.Then, a function literal
// passed as its f, whose context parameter is blank, unnamed or never
// used, and that runs work known to commit a transaction with another
// context (stepWork). Then counts the transactions a step commits through
// the context it hands the step; work run with another one escapes the
// count, and a retry around the Then would run the committed step again.
// retry is the retry seen around the Then, or nil: the message then says
// what a retry would do, not that there is one.
//
// Only the literal's own statements are looked at: a function literal
// inside it runs when, and with the context, its caller decides, and a
// call started with go may commit after the step returned. Nor is work
// run with the context of a transaction (handed in by a scope, or marked
// by dbop.WithinTx): dbop counts the savepoints a step releases into the
// transaction the Then runs in, whichever of its contexts it used. Once the
// parameter is unused, no context in the step can be the one Then handed
// over: that one reaches the step only through its parameter.
func (c *checker) checkThenCtx(then *ast.CallExpr, retry *deco) {
	if len(then.Args) != 2 || then.Ellipsis.IsValid() {
		return
	}
	lit, ok := ast.Unparen(then.Args[1]).(*ast.FuncLit)
	if !ok || lit.Type.Params == nil || len(lit.Type.Params.List) == 0 {
		return
	}
	var param string // how the message describes the parameter
	var fix string
	first := lit.Type.Params.List[0]
	switch {
	case len(first.Names) == 0:
		param, fix = "the parameter is unnamed", "name the parameter and pass it"
	case first.Names[0].Name == "_":
		param, fix = "the parameter is _", "name the parameter and pass it"
	default:
		v, _ := c.pass.TypesInfo.Defs[first.Names[0]].(*types.Var)
		if v == nil || c.uses(lit.Body, v) {
			return
		}
		param, fix = "the parameter "+v.Name()+" is never used", "pass "+v.Name()
	}
	if !isContextType(c.pass.TypesInfo.TypeOf(first.Type)) {
		return
	}
	ast.Inspect(lit.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit, *ast.GoStmt:
			return false
		case *ast.CallExpr:
			work, ctx, ok := c.stepWork(n)
			// The context a transaction scope handed in, or one marked by
			// dbop.WithinTx, carries the transaction the Then may run in:
			// dbop counts the savepoints a step releases into it.
			if !ok || c.markOf(ctx, 0) == marked {
				return true
			}
			// Without a retry in sight, the message says what one would do.
			again := "a retry around this Then, if one is added, would run this committed step again"
			if retry != nil {
				again = "a retry around the Then (" + c.posLine(retry.listed.Pos(), n.Pos()) +
					") would run this committed step again"
			}
			c.report(n.Pos(), catThenCtx, fmt.Sprintf(
				"this step of dbop.Then runs %s with %s, not with the context Then handed it (%s): "+
					"Then counts the transactions a step commits through its context, and %s; %s",
				work, types.ExprString(ctx), param, again, fix))
		}
		return true
	})
}

// stepWork returns what call runs and the context it runs it with, when it
// runs, with the context it is passed, work known to commit a transaction
// that writes: X.Run(ctx) of an operation that commits one (opCommits), or
// a call, with a context as its first argument, of a wrapper of InTx that
// runs a transaction that may write with a function that writes, or of a
// function that runs a transaction that writes (commitsTx). A plain
// operation, a read-only transaction, or one whose function the analyzer
// does not see write is not such work.
func (c *checker) stepWork(call *ast.CallExpr) (work string, ctx ast.Expr, ok bool) {
	fn := callee(c.pass.TypesInfo, call)
	if fn == nil || len(call.Args) == 0 || call.Ellipsis.IsValid() {
		return "", nil, false
	}
	if isOpMethod(fn, "Run") && len(call.Args) == 1 {
		x := ast.Unparen(call.Fun).(*ast.SelectorExpr).X
		if !c.opCommits(x, 0) {
			return "", nil, false
		}
		return c.opName(x, 0), call.Args[0], true
	}
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil || sig.Params().Len() == 0 || !isContextType(sig.Params().At(0).Type()) {
		return "", nil, false
	}
	if ps := c.txFuncOf(fn); (len(ps) > 0 && !returnsOp(fn) && c.wrapperWrites(call, ps)) || c.commitsTx(fn) {
		return c.runName(call, fn), call.Args[0], true
	}
	return "", nil, false
}

// opCommits reports whether running the operation e commits a transaction
// that writes, as far as the analyzer sees: e is, through With calls and
// variables assigned once, an InTx or Do of scopes or an adapter with no
// ReadOnly option, every option known, and a function seen to write; a
// call of a wrapper of InTx that returns such an operation; or a call of a
// function of this package whose body returns one (return pgxdb.InTx(…)).
// A With list with a savepoint scope, or a decorator the analyzer cannot
// see into, may run it in a transaction the caller owns: not counted.
func (c *checker) opCommits(e ast.Expr, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch x := ast.Unparen(e).(type) {
	case *ast.Ident:
		v := c.ix.varOf(x)
		if v == nil || v.IsField() || c.ix.paramOf[v] != nil {
			return false
		}
		if d, ok := c.ix.singleDef(v); ok && d.index < 0 {
			return c.opCommits(d.rhs, depth+1)
		}
	case *ast.CallExpr:
		fn := callee(c.pass.TypesInfo, x)
		switch {
		case fn == nil:
			return false
		case isTxFunc(fn):
			i, ok := txFuncArg(fn, x)
			return ok && c.scopeWrites(x, i) && c.funcWrites(x.Args[i])
		case isOpMethod(fn, "With"):
			if x.Ellipsis.IsValid() {
				return false
			}
			for _, arg := range x.Args {
				for _, d := range c.resolveDeco(arg, arg, depth+1) {
					if d.kind == decoSavepoint || d.kind == decoUnknown {
						return false
					}
				}
			}
			return c.opCommits(ast.Unparen(x.Fun).(*ast.SelectorExpr).X, depth+1)
		case !returnsOp(fn):
			return false
		case len(c.txFuncOf(fn)) > 0:
			return c.wrapperWrites(x, c.txFuncOf(fn))
		}
		// A function of this package that returns the operation it builds.
		if d := c.ix.decls[fn]; d != nil && d.Body != nil && len(d.Body.List) == 1 {
			if ret, ok := d.Body.List[0].(*ast.ReturnStmt); ok && len(ret.Results) == 1 {
				return c.opCommits(ret.Results[0], depth+1)
			}
		}
	}
	return false
}

// opName is how a message names the operation e: its source, without
// its With lists, or the InTx-family function that made it.
func (c *checker) opName(e ast.Expr, depth int) string {
	e = ast.Unparen(e)
	if call, ok := e.(*ast.CallExpr); ok && depth < maxDepth {
		fn := callee(c.pass.TypesInfo, call)
		switch {
		case isOpMethod(fn, "With"):
			return c.opName(ast.Unparen(call.Fun).(*ast.SelectorExpr).X, depth+1)
		case isTxFunc(fn):
			return qualifiedName(fn)
		}
		if hasFuncLit(e) {
			return types.ExprString(call.Fun) + "(…)"
		}
	}
	if hasFuncLit(e) {
		return "the operation"
	}
	return types.ExprString(e)
}

func hasFuncLit(e ast.Node) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			found = true
		}
		return !found
	})
	return found
}

// uses reports whether n refers to v.
func (c *checker) uses(n ast.Node, v *types.Var) bool {
	found := false
	ast.Inspect(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && c.pass.TypesInfo.Uses[id] == v {
			found = true
		}
		return !found
	})
	return found
}

// isContextType reports whether t is context.Context.
func isContextType(t types.Type) bool {
	n, _ := types.Unalias(t).(*types.Named)
	return isNamed(n, contextPath, "Context")
}

// opBase returns the expression an operation e is made of, through its
// With calls and the variables assigned once that hold it.
func (c *checker) opBase(e ast.Expr, depth int) ast.Expr {
	e = ast.Unparen(e)
	if depth > maxDepth {
		return e
	}
	switch x := e.(type) {
	case *ast.Ident:
		v := c.ix.varOf(x)
		if v == nil || v.IsField() || c.ix.paramOf[v] != nil {
			return e
		}
		if d, ok := c.ix.singleDef(v); ok && d.index < 0 {
			return c.opBase(d.rhs, depth+1)
		}
	case *ast.CallExpr:
		if isOpMethod(callee(c.pass.TypesInfo, x), "With") {
			return c.opBase(ast.Unparen(x.Fun).(*ast.SelectorExpr).X, depth+1)
		}
	}
	return e
}
