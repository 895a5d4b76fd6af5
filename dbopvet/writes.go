package dbopvet

import (
	"go/ast"
	"go/types"
)

// writesFact marks a function the analyzer sees write: it runs a
// statement whose constant text begins with INSERT, UPDATE or DELETE, or
// a GORM Create, Save, Update… or Delete, itself or through a function it
// calls or passes on. retry-commits counts a transaction as one that
// commits writes only when it sees its function write.
type writesFact struct{}

func (*writesFact) AFact() {}

func (*writesFact) String() string { return "writes" }

// commitsTxFact marks a function that runs a transaction scope that
// writes, as its own top-level statement (in no if, switch, loop or
// function literal, and after no return on success), and returns its
// error: a repository method such as
//
//	func (r *Repo) Reserve(ctx context.Context, id int64) error {
//		_, err := pgxdb.Do(r.pool, reserve).Run(ctx)
//		return err
//	}
//
// retry-commits counts a call of it as a run of a transaction.
type commitsTxFact struct{}

func (*commitsTxFact) AFact() {}

func (*commitsTxFact) String() string { return "commitsTx" }

// Writes by GORM's methods, whatever the statement they build.
var gormWrites = map[string]bool{
	"Create": true, "CreateInBatches": true, "Save": true, "Update": true, "Updates": true,
	"UpdateColumn": true, "UpdateColumns": true, "Delete": true,
}

// memo states.
const (
	memoComputing = 1
	memoYes       = 2
	memoNo        = 3
)

// funcWrites reports whether the function e denotes is one the analyzer
// sees write: a function literal or a function of this package whose body
// it sees, or a function of another package with a writesFact.
func (c *checker) funcWrites(e ast.Expr) bool {
	if node := c.ix.funcNode(e); node != nil {
		return c.nodeWrites(node)
	}
	var id *ast.Ident
	switch x := ast.Unparen(e).(type) {
	case *ast.Ident:
		id = x
	case *ast.SelectorExpr:
		id = x.Sel
	}
	if id == nil {
		return false
	}
	fn, _ := c.pass.TypesInfo.Uses[id].(*types.Func)
	if fn == nil || fn.Pkg() == nil || fn.Pkg() == c.pass.Pkg {
		return false
	}
	return c.pass.ImportObjectFact(fn.Origin(), new(writesFact))
}

// nodeWrites reports whether the body of the function node writes.
func (c *checker) nodeWrites(node ast.Node) bool {
	switch c.writesMemo[node] {
	case memoComputing, memoNo:
		return false
	case memoYes:
		return true
	}
	body, _ := funcBody(node)
	if body == nil {
		c.writesMemo[node] = memoNo
		return false
	}
	c.writesMemo[node] = memoComputing
	writes := false
	info := c.pass.TypesInfo
	ast.Inspect(body, func(n ast.Node) bool {
		if writes {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return false // seen where it is called or passed on
		case *ast.CallExpr:
			if fn := callee(info, n); fn != nil {
				if sel, ok := ast.Unparen(n.Fun).(*ast.SelectorExpr); ok && recvNamed(fn) != nil {
					t := info.TypeOf(sel.X)
					if isStatement(t, fn.Name()) {
						if text, ok := statementText(info, n); ok && writeVerb(text) != "" {
							writes = true
						}
						if isNamed(recvNamed(fn), gormPath, "DB") && gormWrites[fn.Name()] {
							writes = true
						}
					}
				}
			}
			if c.funcWrites(n.Fun) {
				writes = true
			}
			for _, arg := range n.Args {
				if _, ok := types.Unalias(info.TypeOf(arg)).(*types.Signature); ok && c.funcWrites(arg) {
					writes = true
				}
			}
		}
		return true
	})
	if writes {
		c.writesMemo[node] = memoYes
	} else {
		c.writesMemo[node] = memoNo
	}
	return writes
}

// commitsTx reports whether fn runs a transaction that writes and returns
// its error, as commitsTxFact says.
func (c *checker) commitsTx(fn *types.Func) bool {
	if fn == nil {
		return false
	}
	fn = fn.Origin()
	if fn.Pkg() != c.pass.Pkg {
		return fn.Pkg() != nil && c.pass.ImportObjectFact(fn, new(commitsTxFact))
	}
	d := c.ix.decls[fn]
	if d == nil || d.Body == nil {
		return false
	}
	switch c.commitsMemo[d] {
	case memoComputing, memoNo:
		return false
	case memoYes:
		return true
	}
	c.commitsMemo[d] = memoComputing
	ok := c.bodyCommits(d.Body)
	c.commitsMemo[d] = memoNo
	if ok {
		c.commitsMemo[d] = memoYes
	}
	return ok
}

// bodyCommits reports whether one of the top-level statements of body
// runs a transaction that writes, after no return other than on an error,
// and the function returns its error.
func (c *checker) bodyCommits(body *ast.BlockStmt) bool {
	isRun := func(e ast.Expr) bool {
		call, ok := ast.Unparen(e).(*ast.CallExpr)
		if !ok {
			return false
		}
		r, ok := c.txRunOf(call)
		return ok && r.writes && r.surfaces
	}
	for i, s := range body.List {
		switch s := s.(type) {
		case *ast.ReturnStmt:
			for _, r := range s.Results {
				if isRun(r) {
					return true
				}
			}
		case *ast.AssignStmt:
			if len(s.Rhs) == 1 && isRun(s.Rhs[0]) {
				errs := c.errVars(s.Lhs)
				for _, later := range body.List[i+1:] {
					if c.returnsErr(later, errs) {
						return true
					}
					if c.returnsOtherwise(later) {
						return false
					}
				}
			}
		case *ast.IfStmt:
			if as, ok := s.Init.(*ast.AssignStmt); ok && len(as.Rhs) == 1 && isRun(as.Rhs[0]) {
				errs := c.errVars(as.Lhs)
				if neq, ok := c.errCheck(s.Cond); ok && neq && c.refersTo(s.Cond, errs) && c.returnsErr(s.Body, errs) {
					return true
				}
			}
		}
		if c.returnsOtherwise(s) {
			return false
		}
	}
	return false
}

// errVars returns the variables of type error among lhs.
func (c *checker) errVars(lhs []ast.Expr) map[*types.Var]bool {
	vars := map[*types.Var]bool{}
	for _, l := range lhs {
		if v := c.ix.varOf(l); v != nil && isErrorType(v.Type()) {
			vars[v] = true
		}
	}
	return vars
}

func isErrorType(t types.Type) bool {
	errType, _ := types.Universe.Lookup("error").Type().Underlying().(*types.Interface)
	return t != nil && errType != nil && types.Implements(t, errType)
}

// returnsErr reports whether n holds a return, outside function literals,
// whose results use one of errs.
func (c *checker) returnsErr(n ast.Node, errs map[*types.Var]bool) bool {
	found := false
	ast.Inspect(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			for _, r := range n.Results {
				if c.refersTo(r, errs) {
					found = true
				}
			}
		}
		return !found
	})
	return len(errs) > 0 && found
}

// returnsOtherwise reports whether s holds a return, outside function
// literals, that is not in the branch of an if err != nil (or the else of
// an if err == nil) inside s: one that may return on success.
func (c *checker) returnsOtherwise(s ast.Stmt) bool {
	found := false
	ast.Inspect(s, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			if !c.onErrorPath(n, s) {
				found = true
			}
		}
		return !found
	})
	return found
}
