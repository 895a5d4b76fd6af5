package dbopvet

import (
	"go/ast"
	"go/token"
	"go/types"
)

// A root is where a value used as a receiver comes from: a variable and
// the fields selected from it (s.db is {s, [db]}).
type root struct {
	v    *types.Var
	path []*types.Var
	// begun: the value is a transaction begun on the root (db.Begin()).
	begun bool
}

func (r root) same(o root) bool {
	if r.v != o.v || len(r.path) != len(o.path) || r.begun != o.begun {
		return false
	}
	for i := range r.path {
		if r.path[i] != o.path[i] {
			return false
		}
	}
	return true
}

// rootOf returns the root of e: its variable, through parentheses,
// dereferences, field selections and GORM's chain methods (db.Where(…)
// is rooted at db). ok is false when e is not rooted at a variable (a call
// of another function, say).
func (ix *index) rootOf(e ast.Expr) (r root, ok bool) {
	info := ix.pass.TypesInfo
	var path []*types.Var
	for {
		switch x := ast.Unparen(e).(type) {
		case *ast.Ident:
			v, _ := info.Uses[x].(*types.Var)
			if v == nil {
				v, _ = info.Defs[x].(*types.Var)
			}
			if v == nil {
				return root{}, false
			}
			// path was collected outermost field first.
			for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
				path[i], path[j] = path[j], path[i]
			}
			r.v, r.path = v, path
			return r, true
		case *ast.StarExpr:
			e = x.X
		case *ast.UnaryExpr:
			if x.Op != token.AND {
				return root{}, false
			}
			e = x.X
		case *ast.SelectorExpr:
			sel := info.Selections[x]
			if sel == nil {
				// A package-qualified identifier.
				v, _ := info.Uses[x.Sel].(*types.Var)
				if v == nil {
					return root{}, false
				}
				r.v = v
				return r, true
			}
			if sel.Kind() != types.FieldVal {
				return root{}, false
			}
			path = append(path, sel.Obj().(*types.Var))
			e = x.X
		case *ast.CallExpr:
			fn := callee(info, x)
			sel, isSel := ast.Unparen(x.Fun).(*ast.SelectorExpr)
			if fn == nil || !isSel || !isNamed(recvNamed(fn), gormPath, "DB") || handleOf(info.TypeOf(x)) != gormDB {
				return root{}, false
			}
			if fn.Name() == "Begin" {
				r.begun = true
			}
			e = sel.X
		default:
			return root{}, false
		}
	}
}

// resolveLocal follows a variable assigned once from another rooted value
// (q := tx.WithContext(ctx)) to that value's root.
func (c *checker) resolveLocal(r root) root {
	for range 8 {
		if len(r.path) > 0 || r.begun || isPackageLevel(r.v) || c.ix.paramOf[r.v] != nil {
			return r
		}
		d, ok := c.ix.singleDef(r.v)
		if !ok || d.index >= 0 {
			return r
		}
		next, ok := c.ix.rootOf(d.rhs)
		if !ok || next.begun {
			return r // the variable holds a transaction begun on next
		}
		r = next
	}
	return r
}

// isTxRoot reports whether r, followed through local variables, is the
// transaction isTx looks for itself (not one begun on it, nor a field).
func (c *checker) isTxRoot(r root, isTx func(root) bool) bool {
	if len(r.path) > 0 || r.begun {
		return false
	}
	r = c.resolveLocal(r)
	return len(r.path) == 0 && !r.begun && isTx(r)
}

// rootString prints the receiver a message names: pool, s.db.
func rootString(e ast.Expr) string {
	for {
		call, ok := ast.Unparen(e).(*ast.CallExpr)
		if !ok {
			return types.ExprString(e)
		}
		sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr)
		if !ok {
			return types.ExprString(e)
		}
		e = sel.X
	}
}
