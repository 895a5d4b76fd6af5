package dbopvet

import (
	"go/ast"
	"go/types"
)

// A txFunc is a function the analyzer knows to run inside a transaction
// that a scope began for it and ends when it returns: the function passed
// to InTx or Do, directly or through a wrapper.
type txFunc struct {
	node    ast.Node // *ast.FuncLit or *ast.FuncDecl
	scope   string   // "pgxdb.InTx", or the wrapper's name
	ctx, tx *types.Var
	// beginners are the roots of the values the transaction was begun on,
	// one per call that runs node; unknown is set when one is not known.
	beginners []root
	unknown   bool
	// writes: every call that runs node is a scope call the analyzer sees
	// may commit writes (no ReadOnly option, every option known).
	writes bool
	// shares: a call that runs node runs it in a transaction pgxdb shares
	// with other operations' attempts (pgxdb.ShareCommits()); sharedBy is
	// the scope of the first such call.
	shares   bool
	sharedBy string
}

// findTxFuncs finds the functions run by InTx, Do and their wrappers.
func (c *checker) findTxFuncs() {
	c.txFuncs = map[ast.Node]*txFunc{}
	info := c.pass.TypesInfo
	for _, f := range c.pass.Files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			fn := callee(info, call)
			if fn == nil {
				return true
			}
			if isTxFunc(fn) {
				if i, ok := txFuncArg(fn, call); ok {
					// The database the transaction is begun on: the
					// adapters' first parameter (scopes' is a BeginFunc).
					var beginner ast.Expr
					if funcPath(fn) != scopesPath && i > 0 {
						beginner = call.Args[0]
					}
					c.addTxFunc(call.Args[i], qualifiedName(fn), 0, 1, beginner, c.scopeWrites(call, i), c.scopeShares(fn, call, i))
				}
			}
			for _, tp := range c.txFuncOf(fn) {
				if tp.Param < len(call.Args) {
					c.addTxFunc(call.Args[tp.Param], qualifiedName(fn), tp.Ctx, tp.Tx, nil, tp.Writes, tp.Shares)
				}
			}
			return true
		})
	}
}

func (c *checker) addTxFunc(arg ast.Expr, scope string, ctxIndex, txIndex int, beginner ast.Expr, writes, shares bool) {
	node := c.ix.funcNode(arg)
	if node == nil {
		return
	}
	params := c.ix.params(node)
	if txIndex < 0 || txIndex >= len(params) || params[txIndex] == nil {
		return
	}
	tf := c.txFuncs[node]
	if tf == nil {
		tf = &txFunc{node: node, scope: scope, tx: params[txIndex], writes: writes}
		if ctxIndex >= 0 && ctxIndex < len(params) {
			tf.ctx = params[ctxIndex]
		}
		c.txFuncs[node] = tf
	} else {
		tf.writes = tf.writes && writes
	}
	if shares && !tf.shares {
		tf.shares, tf.sharedBy = true, scope
	}
	if r, ok := c.rootOfBeginner(beginner); ok {
		tf.beginners = append(tf.beginners, r)
	} else {
		tf.unknown = true
	}
}

func (c *checker) rootOfBeginner(e ast.Expr) (root, bool) {
	if e == nil {
		return root{}, false
	}
	r, ok := c.ix.rootOf(e)
	if !ok || r.begun {
		return root{}, false
	}
	return c.resolveLocal(r), true
}

// enclosingTxFuncs returns the functions run in a transaction around n,
// innermost first.
func (c *checker) enclosingTxFuncs(n ast.Node) []*txFunc {
	var tfs []*txFunc
	for _, fn := range c.ix.enclosingFuncs(n) {
		if tf := c.txFuncs[fn]; tf != nil {
			tfs = append(tfs, tf)
		}
	}
	return tfs
}

// checkTxFuncs runs checks 1, 2 and 9 on every function run in a transaction.
func (c *checker) checkTxFuncs() {
	for _, tf := range c.txFuncs {
		body, _ := funcBody(tf.node)
		if body == nil {
			continue
		}
		ast.Inspect(body, func(n ast.Node) bool {
			if lit, ok := n.(*ast.FuncLit); ok {
				if c.txFuncs[lit] != nil {
					return false // checked on its own, against its own transaction
				}
				if c.escapes(lit, tf.node) {
					return false // kept for later, perhaps after the transaction
				}
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			c.checkOutside(tf, call)
			c.checkNestedTx(tf, call)
			c.checkEndsTx(tf, call)
			c.checkSharedSettings(tf, call)
			return true
		})
	}
}

// escapes reports whether the function literal lit, inside fn, is kept
// for later rather than run while fn runs: returned, sent, or stored
// outside fn (after = append(after, func() { … }), a hook run after the
// commit).
func (c *checker) escapes(lit *ast.FuncLit, fn ast.Node) bool {
	var n ast.Node = lit
	for p := c.ix.parents[n]; p != nil && p != fn; n, p = p, c.ix.parents[p] {
		switch p := p.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt, *ast.SendStmt:
			return true
		case *ast.AssignStmt:
			for _, l := range p.Lhs {
				v := c.ix.varOf(l)
				if v == nil || !within(v.Pos(), fn) {
					return true
				}
			}
			return false
		case *ast.CallExpr:
			if p.Fun == n {
				return false // called where it stands
			}
		case ast.Stmt:
			return false
		}
	}
	return false
}
