package dbopvet

import (
	"fmt"
	"go/ast"
)

// checkAutocommitRetry reports check 4: a write in autocommit in an
// operation whose retry is not marked Idempotent.
func (c *checker) checkAutocommitRetry(o op) {
	if o.fn == nil {
		return
	}
	retry := o.unmarkedRetry()
	if retry == nil {
		return
	}
	info := c.pass.TypesInfo
	body, _ := funcBody(o.fn)
	if body == nil {
		return
	}
	ast.Inspect(body, func(n ast.Node) bool {
		if lit, ok := n.(*ast.FuncLit); ok && c.txFuncs[lit] != nil {
			return false // its statements run in a transaction
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		fn := callee(info, call)
		sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr)
		if fn == nil || !isSel || recvNamed(fn) == nil {
			return true
		}
		t := info.TypeOf(sel.X)
		h := handleOf(t)
		if (h != pool && h != gormDB) || !isStatement(t, fn.Name()) {
			return true
		}
		if h == gormDB {
			r, ok := c.ix.rootOf(sel.X)
			if !ok || r.begun || !c.gormPool(c.resolveLocal(r)) {
				return true
			}
		}
		text, ok := statementText(info, call)
		if !ok {
			return true
		}
		verb := writeVerb(text)
		if verb == "" {
			return true
		}
		adapter := map[handle]string{pool: "sqldb", gormDB: "gormdb"}[h]
		if n := namedOf(t); isNamed(n, pgxpoolPath, "Pool") {
			adapter = "pgxdb"
		}
		c.report(sel.Sel.Pos(), catAutocommitRetry, fmt.Sprintf(
			"%s through %s (%s) runs in autocommit under %s (%s) without dbop.Idempotent(): "+
				"if the connection drops after it was sent, nobody knows whether it was applied, and the retry "+
				"may apply it twice; run it in %s.InTx, or give it an idempotency key (a unique id, "+
				"ON CONFLICT DO NOTHING) and mark the retry dbop.Idempotent()",
			verb, rootString(sel.X), typeName(t), retryName(retry), c.posLine(retry.listed.Pos(), sel.Pos()), adapter))
		return true
	})
}
