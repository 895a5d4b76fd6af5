package dbopvet

import (
	"fmt"
	"go/ast"
	"go/types"
)

// checkOutside reports a statement, inside a function run in a
// transaction, on a database handle from outside it (check 1), and a
// handle from outside passed to a function where the transaction fits.
func (c *checker) checkOutside(tf *txFunc, call *ast.CallExpr) {
	info := c.pass.TypesInfo
	fn := callee(info, call)
	if fn == nil {
		return
	}
	if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok && recvNamed(fn) != nil {
		t := info.TypeOf(sel.X)
		if h := handleOf(t); h != notHandle && isStatement(t, fn.Name()) &&
			c.checkOtherTx(tf, sel.X, "this statement runs in it, stays applied when this transaction rolls back, "+
				"and runs again on every retry of it; run it in %[1]s, or outside this function") {
			return
		}
		if h := handleOf(t); h != notHandle && h != tx && isStatement(t, fn.Name()) {
			if r, ok := c.ix.rootOf(sel.X); ok && c.outside(tf, r, h) {
				c.report(sel.X.Pos(), catOutsideTx, fmt.Sprintf(
					"%s (%s) runs this statement outside the transaction %s handed in: it commits on its own, "+
						"stays applied if the transaction rolls back, and runs again on every retry of the transaction; "+
						"run it on %s",
					rootString(sel.X), typeName(t), tf.scope, tf.tx.Name()))
			}
			return
		}
	}
	// A savepoint scope on another transaction, listed on an operation.
	if fn.Name() == "InSavepoint" && isSavepointFunc(fn) && len(call.Args) > 0 && c.inWithList(call) {
		c.checkOtherTx(tf, call.Args[0], "the operation runs in a savepoint of it, what it does stays applied "+
			"when this transaction rolls back, and runs again on every retry of it; build the savepoint scope on %[1]s")
		return
	}
	// A handle from outside passed where the transaction would fit.
	if isLibrary(funcPath(fn)) {
		return
	}
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil || call.Ellipsis.IsValid() {
		return
	}
	if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok {
		if s := info.Selections[sel]; s != nil && s.Kind() == types.MethodExpr {
			return // T.M(recv, …): the arguments are shifted by the receiver
		}
	}
	for i, arg := range call.Args {
		h := handleOf(info.TypeOf(arg))
		if h != pool && h != gormDB {
			continue
		}
		pi := i
		if sig.Variadic() && pi >= sig.Params().Len()-1 {
			continue
		}
		pt := sig.Params().At(pi).Type()
		if !c.txFits(tf, pt) {
			continue
		}
		if r, ok := c.ix.rootOf(arg); ok && c.outside(tf, r, h) {
			c.report(arg.Pos(), catOutsideTx, fmt.Sprintf(
				"%s (%s) is passed to %s where the transaction fits: its statements run outside the transaction "+
					"%s handed in, commit on their own, and run again on every retry of the transaction; pass %s",
				rootString(arg), typeName(info.TypeOf(arg)), qualifiedName(fn), tf.scope, tf.tx.Name()))
		}
	}
}

// txFits reports whether tf's transaction could be passed for a parameter
// of type pt: an interface with methods that the transaction implements,
// or *gorm.DB for a GORM transaction.
func (c *checker) txFits(tf *txFunc, pt types.Type) bool {
	txt := tf.tx.Type()
	if handleOf(pt) == gormDB {
		return handleOf(txt) == gormDB
	}
	iface, ok := pt.Underlying().(*types.Interface)
	if !ok || iface.NumMethods() == 0 {
		return false
	}
	return types.Implements(txt, iface)
}

// outside reports whether the handle rooted at r, of kind h, used inside
// tf, is one from outside tf's transaction.
func (c *checker) outside(tf *txFunc, r root, h handle) bool {
	if r.begun {
		return false
	}
	r = c.resolveLocal(r)
	if r.begun || r.v == tf.tx || r.v == tf.ctx {
		return false
	}
	if within(r.v.Pos(), tf.node) {
		// Declared inside: a local the analyzer could not follow, or a
		// parameter. A method's receiver (s in s.pool) is from outside.
		d, ok := tf.node.(*ast.FuncDecl)
		if !ok || d.Recv == nil || len(d.Recv.List) == 0 || !within(r.v.Pos(), d.Recv) {
			return false
		}
	}
	for _, f := range r.path {
		for _, pos := range c.ix.fieldWrites[f] {
			if within(pos, tf.node) {
				return false // the field is set inside: it may hold the transaction
			}
		}
	}
	isBeginner := false
	for _, b := range tf.beginners {
		isBeginner = isBeginner || b.same(r)
	}
	switch h {
	case pool:
		return true
	case conn:
		// A statement on the connection the transaction was begun on runs
		// inside it.
		return !tf.unknown && !isBeginner
	case gormDB:
		// A *gorm.DB is a pool or a transaction: report only one known to
		// be a pool.
		return isBeginner || c.gormPool(r)
	}
	return false
}

// gormPool reports whether the *gorm.DB rooted at r is known to be a
// pool: a package-level variable or a local one assigned only from
// gorm.Open or from another pool, never from Begin.
func (c *checker) gormPool(r root) bool {
	if len(r.path) > 0 || c.ix.paramOf[r.v] != nil {
		return false
	}
	ds := c.ix.defs[r.v]
	if len(ds) == 0 {
		return false
	}
	for _, d := range ds {
		if d.rhs == nil {
			return false
		}
		if call, ok := ast.Unparen(d.rhs).(*ast.CallExpr); ok {
			if fn := callee(c.pass.TypesInfo, call); fn != nil && isFunc(fn, gormPath, "Open") && d.index <= 0 {
				continue
			}
		}
		if d.index >= 0 {
			return false
		}
		next, ok := c.ix.rootOf(d.rhs)
		if !ok || next.begun || next.v == r.v || !c.gormPool(next) {
			return false
		}
	}
	return true
}

// checkOtherTx reports e, a transaction used inside tf, when it is not the
// one tf was handed but one the analyzer sees begun by hand outside tf or
// handed in by a scope around it; what, a format with the name of tf's
// transaction as its argument, says what then happens; it returns whether
// it reported.
func (c *checker) checkOtherTx(tf *txFunc, e ast.Expr, what string) bool {
	t := c.pass.TypesInfo.TypeOf(e)
	if h := handleOf(t); h != tx && h != gormDB {
		return false
	}
	r, ok := c.ix.rootOf(e)
	if !ok || r.begun {
		return false
	}
	r = c.resolveLocal(r)
	if r.begun || len(r.path) > 0 || r.v == tf.tx || within(r.v.Pos(), tf.node) {
		return false
	}
	// The inner transaction may be begun on this one (a savepoint, inside
	// which its statements run): report only when every beginner is known
	// and none is it.
	if tf.unknown {
		return false
	}
	for _, b := range tf.beginners {
		if b.same(r) {
			return false
		}
	}
	u, ok := c.txOrigin(r.v, tf.node)
	if !ok {
		return false
	}
	origin := "handed in by " + u.scope + " at " + c.posLine(r.v.Pos(), e.Pos())
	if u.byHand {
		origin = "begun " + u.begunBy + " at " + c.posLine(u.begunAt, e.Pos())
	}
	name := tf.tx.Name()
	c.report(e.Pos(), catOutsideTx, fmt.Sprintf(
		"%s (%s, %s) is another transaction than the one %s handed in (%s): %s",
		rootString(e), typeName(t), origin, tf.scope, name, fmt.Sprintf(what, name)))
	return true
}

// inWithList reports whether call is listed in a With call of an operation.
func (c *checker) inWithList(call *ast.CallExpr) bool {
	p, ok := c.ix.parents[call].(*ast.CallExpr)
	if !ok || !isOpMethod(callee(c.pass.TypesInfo, p), "With") {
		return false
	}
	for _, a := range p.Args {
		if a == call {
			return true
		}
	}
	return false
}

// checkNestedTx reports, inside a function run in a transaction, work known
// to commit a transaction of its own that writes (stepWork: X.Run(ctx) of an
// InTx or Do, a wrapper of one, a function that runs one) run with a context
// that is certainly not the one the scope handed in (context.Background(),
// t.Context(), a context of the enclosing function's own): the scope counts
// the transactions its function commits through the context it hands in, so
// that a retry around it does not run a committed one again
// (dbop.ErrAlreadyCommitted); one run with another context escapes the
// count, stays applied when the scope's transaction rolls back, and runs
// again on every retry of it. Run with the scope's context, or one derived
// from it, it is counted, and not reported; nor where the context's origin
// is not known.
func (c *checker) checkNestedTx(tf *txFunc, call *ast.CallExpr) {
	work, ctx, ok := c.stepWork(call)
	if !ok || c.markOf(ctx, 0) != unmarked {
		return
	}
	param, pass := "its context parameter", "name the context parameter and pass it"
	if tf.ctx != nil && tf.ctx.Name() != "_" && tf.ctx.Name() != "" {
		param, pass = tf.ctx.Name(), "pass "+tf.ctx.Name()
	}
	c.report(call.Pos(), catOutsideTx, fmt.Sprintf(
		"%s runs a transaction of its own with %s, not with the context %s handed in (%s): it commits on its own, "+
			"stays applied if this transaction rolls back, and %s counts only what commits through its context, so "+
			"a retry around it runs this committed transaction again; %s",
		work, types.ExprString(ctx), tf.scope, param, tf.scope, pass))
}
