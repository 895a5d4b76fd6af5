package dbopvet

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

// A def is one value assigned to a variable: rhs, or, when rhs yields
// several values (tx, err := pool.Begin(ctx)), its result index.
type def struct {
	rhs   ast.Expr // nil: a value the analyzer cannot see (a range variable)
	index int      // -1 when rhs yields one value
}

// index holds what the checks look up about the package being analysed.
type index struct {
	pass    *analysis.Pass
	parents map[ast.Node]ast.Node
	// defs are the values assigned to each variable of the package, in its
	// declaration and in assignments.
	defs map[*types.Var][]def
	// decls are the package's function and method declarations.
	decls map[*types.Func]*ast.FuncDecl
	// funcs are the package's functions, declared or literal, by the
	// position of their func keyword, and the parameters of each.
	paramOf map[*types.Var]ast.Node
	// valueUses are the functions used as values (passed, stored) and not
	// only called.
	valueUses map[*types.Func]bool
	// fieldWrites are the struct fields assigned anywhere in the package.
	fieldWrites map[*types.Var][]token.Pos
}

func newIndex(pass *analysis.Pass) *index {
	ix := &index{
		pass:        pass,
		parents:     map[ast.Node]ast.Node{},
		defs:        map[*types.Var][]def{},
		decls:       map[*types.Func]*ast.FuncDecl{},
		paramOf:     map[*types.Var]ast.Node{},
		valueUses:   map[*types.Func]bool{},
		fieldWrites: map[*types.Var][]token.Pos{},
	}
	info := pass.TypesInfo
	for _, f := range pass.Files {
		var stack []ast.Node
		ast.Inspect(f, func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return false
			}
			if len(stack) > 0 {
				ix.parents[n] = stack[len(stack)-1]
			}
			stack = append(stack, n)
			switch n := n.(type) {
			case *ast.FuncDecl:
				if fn, ok := info.Defs[n.Name].(*types.Func); ok {
					ix.decls[fn] = n
				}
				ix.addParams(n, n.Recv)
				ix.addParams(n, n.Type.Params)
			case *ast.FuncLit:
				ix.addParams(n, n.Type.Params)
			case *ast.AssignStmt:
				ix.addAssign(n.Lhs, n.Rhs)
			case *ast.ValueSpec:
				lhs := make([]ast.Expr, len(n.Names))
				for i, name := range n.Names {
					lhs[i] = name
				}
				ix.addAssign(lhs, n.Values)
			case *ast.RangeStmt:
				for _, e := range []ast.Expr{n.Key, n.Value} {
					if v := ix.varOf(e); v != nil {
						ix.defs[v] = append(ix.defs[v], def{index: -1})
					}
				}
			case *ast.Ident:
				if fn, ok := info.Uses[n].(*types.Func); ok {
					ix.valueUses[fn] = ix.valueUses[fn] || !ix.isCalled(n, stack)
				}
			}
			return true
		})
	}
	return ix
}

// isCalled reports whether the identifier at the top of stack names the
// function a call calls (f(…) or x.f(…)).
func (ix *index) isCalled(id *ast.Ident, stack []ast.Node) bool {
	var e ast.Node = id
	i := len(stack) - 2
	if i >= 0 {
		if sel, ok := stack[i].(*ast.SelectorExpr); ok && sel.Sel == id {
			e, i = sel, i-1
		}
	}
	if i < 0 {
		return false
	}
	call, ok := stack[i].(*ast.CallExpr)
	return ok && call.Fun == e
}

func (ix *index) addParams(fn ast.Node, fields *ast.FieldList) {
	if fields == nil {
		return
	}
	for _, field := range fields.List {
		for _, name := range field.Names {
			if v, ok := ix.pass.TypesInfo.Defs[name].(*types.Var); ok {
				ix.paramOf[v] = fn
			}
		}
	}
}

func (ix *index) addAssign(lhs, rhs []ast.Expr) {
	for i, l := range lhs {
		if sel, ok := ast.Unparen(l).(*ast.SelectorExpr); ok {
			if v, ok := ix.pass.TypesInfo.Uses[sel.Sel].(*types.Var); ok && v.IsField() {
				ix.fieldWrites[v] = append(ix.fieldWrites[v], sel.Pos())
			}
			continue
		}
		v := ix.varOf(l)
		if v == nil {
			continue
		}
		switch {
		case len(rhs) == len(lhs):
			ix.defs[v] = append(ix.defs[v], def{rhs: rhs[i], index: -1})
		case len(rhs) == 1:
			ix.defs[v] = append(ix.defs[v], def{rhs: rhs[0], index: i})
		}
	}
}

// varOf returns the variable an identifier declares or refers to.
func (ix *index) varOf(e ast.Expr) *types.Var {
	id, ok := ast.Unparen(e).(*ast.Ident)
	if !ok || id.Name == "_" {
		return nil
	}
	if v, ok := ix.pass.TypesInfo.Defs[id].(*types.Var); ok {
		return v
	}
	v, _ := ix.pass.TypesInfo.Uses[id].(*types.Var)
	return v
}

// singleDef returns the one value assigned to v, if it was assigned once.
func (ix *index) singleDef(v *types.Var) (def, bool) {
	ds := ix.defs[v]
	if len(ds) != 1 || ds[0].rhs == nil {
		return def{}, false
	}
	return ds[0], true
}

// within reports whether pos lies inside node.
func within(pos token.Pos, node ast.Node) bool {
	return node != nil && node.Pos() <= pos && pos < node.End()
}

// enclosingFuncs returns the functions, literal or declared, around n,
// innermost first.
func (ix *index) enclosingFuncs(n ast.Node) []ast.Node {
	var fns []ast.Node
	for p := ix.parents[n]; p != nil; p = ix.parents[p] {
		switch p.(type) {
		case *ast.FuncLit, *ast.FuncDecl:
			fns = append(fns, p)
		}
	}
	return fns
}

// funcBody returns the body and the type of a function node.
func funcBody(fn ast.Node) (*ast.BlockStmt, *ast.FuncType) {
	switch fn := fn.(type) {
	case *ast.FuncLit:
		return fn.Body, fn.Type
	case *ast.FuncDecl:
		return fn.Body, fn.Type
	}
	return nil, nil
}

// params returns the parameters of a function node, in order, receiver
// excluded; an unnamed parameter is nil.
func (ix *index) params(fn ast.Node) []*types.Var {
	_, ft := funcBody(fn)
	if ft == nil || ft.Params == nil {
		return nil
	}
	var vs []*types.Var
	for _, field := range ft.Params.List {
		if len(field.Names) == 0 {
			vs = append(vs, nil)
			continue
		}
		for _, name := range field.Names {
			v, _ := ix.pass.TypesInfo.Defs[name].(*types.Var)
			vs = append(vs, v)
		}
	}
	return vs
}

// funcNode returns the function an expression denotes, when the analyzer
// can see its body: a function literal, a function or method of this
// package, or a local variable assigned a function literal once.
func (ix *index) funcNode(e ast.Expr) ast.Node {
	e = ast.Unparen(e)
	switch e := e.(type) {
	case *ast.FuncLit:
		return e
	case *ast.Ident:
		switch obj := ix.pass.TypesInfo.Uses[e].(type) {
		case *types.Func:
			if d := ix.decls[obj]; d != nil {
				return d
			}
		case *types.Var:
			if d, ok := ix.singleDef(obj); ok && d.index < 0 && !obj.IsField() {
				if lit, ok := ast.Unparen(d.rhs).(*ast.FuncLit); ok {
					return lit
				}
			}
		}
	case *ast.SelectorExpr:
		if sel := ix.pass.TypesInfo.Selections[e]; sel != nil && sel.Kind() == types.MethodVal {
			if fn, ok := sel.Obj().(*types.Func); ok {
				if d := ix.decls[fn]; d != nil {
					return d
				}
			}
			return nil
		}
		if fn, ok := ix.pass.TypesInfo.Uses[e.Sel].(*types.Func); ok {
			if d := ix.decls[fn]; d != nil {
				return d
			}
		}
	}
	return nil
}

// isPackageLevel reports whether v is a package-level variable.
func isPackageLevel(v *types.Var) bool {
	return v.Pkg() != nil && v.Parent() == v.Pkg().Scope()
}
