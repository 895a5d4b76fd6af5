package dbopvet

import (
	"fmt"
	"go/ast"
	"go/types"
)

// checkEndsTx reports a call that commits or rolls back tf's transaction.
func (c *checker) checkEndsTx(tf *txFunc, call *ast.CallExpr) {
	what, via, ok := c.endsTx(call, func(r root) bool { return r.v == tf.tx })
	if !ok {
		return
	}
	scope, tx := tf.scope, tf.tx.Name()
	subject := types.ExprString(call.Fun)
	if via != "" {
		subject = via + " (passed " + tx + ")"
	}
	var msg string
	switch deferred := c.deferred(call, tf.node); {
	case what == "commits" && deferred:
		msg = fmt.Sprintf("deferred %s commits the transaction %s handed in when the function returns, "+
			"even after an error, before %s ends it: %s's own COMMIT or ROLLBACK then fails on the closed "+
			"transaction, and committed work is reported as an ambiguous outcome, of which the caller learns only that it may have committed; "+
			"return nil and let %s commit", subject, scope, scope, scope, scope)
	case what == "commits":
		msg = fmt.Sprintf("%s commits the transaction %s handed in before %s does: later statements on %s fail, "+
			"%s's own COMMIT fails on the closed transaction, and the committed work is reported as an ambiguous "+
			"outcome, of which the caller learns only that it may have committed; return nil and let %s commit", subject, scope, scope, tx, scope, scope)
	case deferred:
		msg = fmt.Sprintf("deferred %s rolls back the transaction %s handed in when the function returns, "+
			"before %s commits it: %s's COMMIT then fails on the closed transaction, and the work is lost and "+
			"reported as a commit error; return an error to roll back, and let %s end the transaction",
			subject, scope, scope, scope, scope)
	default:
		msg = fmt.Sprintf("%s rolls back the transaction %s handed in, which %s rolls back itself when the "+
			"function returns an error: later statements on %s fail, and if the function returns nil, %s's "+
			"COMMIT fails on the closed transaction and the lost work is reported as a commit error; "+
			"return the error and let %s roll back", subject, scope, scope, tx, scope, scope)
	}
	c.report(call.Lparen, catEndsTx, msg)
}

// deferred reports whether call, inside fn, runs when fn returns: the
// call of a defer statement, or inside a function literal deferred so.
func (c *checker) deferred(call *ast.CallExpr, fn ast.Node) bool {
	var n ast.Node = call
	for p := c.ix.parents[n]; p != nil && p != fn; n, p = p, c.ix.parents[p] {
		if d, ok := p.(*ast.DeferStmt); ok {
			if d.Call == n {
				return true
			}
			if lit, ok := ast.Unparen(d.Call.Fun).(*ast.FuncLit); ok && within(call.Pos(), lit) {
				return true
			}
		}
	}
	return false
}

// endsTx reports whether call ends a transaction rooted where isTx says:
// its Commit or Rollback method, a COMMIT or ROLLBACK statement run on it,
// or a function that ends a transaction it is passed. what is "commits" or
// "rolls back"; via names the function, for the last.
func (c *checker) endsTx(call *ast.CallExpr, isTx func(root) bool) (what, via string, ok bool) {
	info := c.pass.TypesInfo
	fn := callee(info, call)
	if fn == nil {
		return "", "", false
	}
	if sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr); isSel && recvNamed(fn) != nil {
		if r, ok := c.ix.rootOf(sel.X); ok && c.isTxRoot(r, isTx) {
			switch fn.Name() {
			case "Commit":
				return "commits", "", true
			case "Rollback":
				return "rolls back", "", true
			}
			if isStatement(info.TypeOf(sel.X), fn.Name()) {
				if text, ok := statementText(info, call); ok {
					switch verb, _ := endsTxText(text); verb {
					case "COMMIT":
						return "commits", "", true
					case "ROLLBACK":
						return "rolls back", "", true
					}
				}
			}
		}
	}
	for i, w := range c.endsTxOf(fn) {
		arg, ok := argFor(call, i)
		if !ok {
			continue
		}
		if r, ok := c.ix.rootOf(arg); ok && c.isTxRoot(r, isTx) {
			return w, qualifiedName(fn), true
		}
	}
	return "", "", false
}
