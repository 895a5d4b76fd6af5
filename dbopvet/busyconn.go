package dbopvet

import (
	"fmt"
	"go/ast"
	"go/types"
)

// checkBusyConns reports check 8, tx-on-busy-conn: an InTx or Do of an
// adapter (or a wrapper of one, known as a fact, whose database is one of
// its parameters) given a connection on which the same function began a
// transaction by hand that is still open at the call. The adapter begins
// again on that connection: MySQL and MariaDB commit the open transaction
// at START TRANSACTION, PostgreSQL ignores the second BEGIN, and the
// scope's ROLLBACK or COMMIT then ends the caller's transaction.
func (c *checker) checkBusyConns() {
	info := c.pass.TypesInfo
	for _, f := range c.pass.Files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || call.Ellipsis.IsValid() {
				return true
			}
			fn := callee(info, call)
			if fn == nil {
				return true
			}
			if isTxFunc(fn) {
				if i, ok := txFuncArg(fn, call); ok && funcPath(fn) != scopesPath && i > 0 {
					c.checkBusyConn(call, fn, call.Args[0])
				}
				return true
			}
			for _, tp := range c.txFuncOf(fn) {
				if tp.DB >= 0 && tp.DB < len(call.Args) {
					c.checkBusyConn(call, fn, call.Args[tp.DB])
					break
				}
			}
			return true
		})
	}
}

// checkBusyConn reports call, of scope fn, whose database db is a
// connection on which a transaction the function began by hand is still
// open.
func (c *checker) checkBusyConn(call *ast.CallExpr, fn *types.Func, db ast.Expr) {
	r, ok := c.rootOfBeginner(db)
	if !ok || len(r.path) > 0 || !c.isOneConn(r.v) || !c.runsNow(call) {
		return
	}
	fns := c.ix.enclosingFuncs(call)
	if len(fns) == 0 {
		return
	}
	home := fns[0]
	body, _ := funcBody(home)
	if body == nil {
		return
	}
	for _, b := range c.beginsOn(home, body, r, call) {
		if c.reassigned(r.v, b.stmt, call) || c.mayHaveEnded(home, b, r, call) {
			continue
		}
		c.reportBusyConn(call, fn, db, b)
		return
	}
}

// runsNow reports whether the transaction call makes begins where call
// stands: call runs it itself (a wrapper that returns no operation), or
// the operation it returns is run in the same expression
// (sqldb.Do(…).With(…).Run(ctx)). An operation built here and run later,
// perhaps after the transaction by hand ended, is not known to.
func (c *checker) runsNow(call *ast.CallExpr) bool {
	info := c.pass.TypesInfo
	if !isOpType(info.TypeOf(call)) {
		return true
	}
	var e ast.Node = call
	for {
		sel, ok := c.ix.parents[e].(*ast.SelectorExpr)
		if !ok || sel.X != e {
			return false
		}
		p, ok := c.ix.parents[sel].(*ast.CallExpr)
		if !ok || p.Fun != sel {
			return false
		}
		switch fn := callee(info, p); {
		case isOpMethod(fn, "Run"):
			return true
		case isOpMethod(fn, "With"):
			e = p
		default:
			return false
		}
	}
}

// reassigned reports whether v may be assigned another value between the
// statement s and call (or is one the analyzer cannot see assigned).
func (c *checker) reassigned(v *types.Var, s ast.Stmt, call *ast.CallExpr) bool {
	for _, d := range c.ix.defs[v] {
		if d.rhs == nil || (d.rhs.Pos() > s.End() && d.rhs.Pos() < call.Pos()) {
			return true
		}
	}
	return false
}

// isOneConn reports whether v holds one connection of the database, one
// server session: a *sql.Conn, a *pgx.Conn, a *pgxpool.Conn, or the
// *gorm.DB a GORM Connection hands its function
// (gdb.Connection(func(c *gorm.DB) error { … })).
func (c *checker) isOneConn(v *types.Var) bool {
	switch handleOf(v.Type()) {
	case conn:
		return true
	case gormDB:
		lit, ok := c.ix.paramOf[v].(*ast.FuncLit)
		if !ok {
			return false
		}
		if ps := c.ix.params(lit); len(ps) == 0 || ps[0] != v {
			return false
		}
		return c.gormConnection(lit) != nil
	}
	return false
}

// gormConnection returns the receiver of the GORM Connection call lit is
// passed to, or nil.
func (c *checker) gormConnection(lit *ast.FuncLit) ast.Expr {
	p, ok := c.ix.parents[lit].(*ast.CallExpr)
	if !ok || len(p.Args) != 1 || p.Args[0] != lit {
		return nil
	}
	f := callee(c.pass.TypesInfo, p)
	if f == nil || f.Name() != "Connection" || !isNamed(recvNamed(f), gormPath, "DB") {
		return nil
	}
	return ast.Unparen(p.Fun).(*ast.SelectorExpr).X
}

// A handBegin is a transaction begun by hand on a connection: the
// statement that begins it, the call, and the variable it is kept in.
type handBegin struct {
	stmt ast.Stmt
	call *ast.CallExpr
	tx   *types.Var
}

// beginsOn returns the transactions begun by hand on the connection r in
// body, the body of home, that certainly run before call: kept in a
// variable (tx, err := conn.BeginTx(ctx, nil), tx := c.Begin()) by a
// statement of home itself (not of a function literal inside it) that
// comes before call in a block around it.
func (c *checker) beginsOn(home ast.Node, body *ast.BlockStmt, r root, call *ast.CallExpr) []handBegin {
	var found []handBegin
	ast.Inspect(body, func(n ast.Node) bool {
		if n == nil || n.Pos() >= call.Pos() {
			return false
		}
		if _, ok := n.(*ast.FuncLit); ok {
			return false
		}
		bc, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		on, ok := c.beginByHand(bc)
		if !ok {
			return true
		}
		if br, ok := c.rootOfBeginner(on); !ok || !br.same(r) {
			return true
		}
		var stmt ast.Stmt
		var lhs ast.Expr
		switch s := c.ix.parents[bc].(type) {
		case *ast.AssignStmt:
			if len(s.Rhs) == 1 && s.Rhs[0] == bc {
				stmt, lhs = s, s.Lhs[0]
			}
		case *ast.ValueSpec:
			if len(s.Values) == 1 && s.Values[0] == bc && len(s.Names) > 0 {
				if ds, ok := c.ix.parents[s].(*ast.GenDecl); ok {
					if st, ok := c.ix.parents[ds].(*ast.DeclStmt); ok {
						stmt, lhs = st, s.Names[0]
					}
				}
			}
		}
		tx := c.ix.varOf(lhs)
		if stmt == nil || tx == nil {
			return true // not kept: nothing tells when it ends
		}
		// The statement runs before call on every path that reaches it:
		// it is in a block (or the init of an if, a switch or a for) that
		// holds call, before it.
		outer := c.ix.parents[stmt]
		if f, ok := outer.(*ast.ForStmt); ok && f.Post == stmt {
			return true
		}
		if !within(call.Pos(), outer) || stmt.End() > call.Pos() {
			return true
		}
		found = append(found, handBegin{stmt: stmt, call: bc, tx: tx})
		return true
	})
	return found
}

// mayHaveEnded reports whether the transaction b, begun on the connection
// r, may have ended before call, both in home: whether, between the two,
// anything may commit or roll it back on a path that goes on to call —
// its Commit or Rollback (a deferred one, which runs when home returns,
// aside), a COMMIT or ROLLBACK statement on it or on the connection, a
// statement on either whose text is not a constant, a function known to
// end it, the connection closed or released, or a use of the transaction
// the analyzer cannot follow (passed to a function value or an interface
// method, stored, captured by a function literal kept for later). What
// ends it in a block that then returns does not count. When unsure, it
// says it may have: the check stays silent.
func (c *checker) mayHaveEnded(home ast.Node, b handBegin, r root, call *ast.CallExpr) bool {
	info := c.pass.TypesInfo
	body, _ := funcBody(home)
	isTx := func(x root) bool { return len(x.path) == 0 && !x.begun && x.v == b.tx }
	isConn := func(x root) bool {
		if x.begun || len(x.path) > 0 {
			return false
		}
		return c.resolveLocal(x).same(r)
	}
	ended := false
	ast.Inspect(body, func(n ast.Node) bool {
		if ended || n == nil {
			return false
		}
		if n.End() <= b.stmt.End() || n.Pos() >= call.Pos() {
			return false // wholly before the Begin's statement, or from call on
		}
		if d, ok := n.(*ast.DeferStmt); ok && c.funcOf(d) == home {
			return false // runs when home returns, after call
		}
		var at ast.Node
		switch x := n.(type) {
		case *ast.CallExpr:
			if _, _, ok := c.endsTx(x, isTx); ok {
				at = x
			} else if _, _, ok := c.endsTx(x, isConn); ok {
				at = x
			} else if c.unclearOn(x, isTx, isConn) {
				at = x
			}
		case *ast.Ident:
			if v, ok := info.Uses[x].(*types.Var); ok && v == b.tx && !c.harmlessUse(x) {
				at = x
			}
		}
		if at != nil && !c.thenReturns(at, home, call) {
			ended = true
		}
		return true
	})
	return ended
}

// unclearOn reports whether call, a method call on the transaction or on
// the connection, may end the transaction in a way the analyzer cannot
// read: a statement whose text is not a constant, or the connection
// closed, released or handed over.
func (c *checker) unclearOn(call *ast.CallExpr, isTx, isConn func(root) bool) bool {
	info := c.pass.TypesInfo
	fn := callee(info, call)
	sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if fn == nil || !ok || recvNamed(fn) == nil {
		return false
	}
	rr, ok := c.ix.rootOf(sel.X)
	if !ok {
		return false
	}
	onTx, onConn := c.isTxRoot(rr, isTx), isConn(rr)
	if !onTx && !onConn {
		return false
	}
	t := info.TypeOf(sel.X)
	switch {
	case handleOf(t) == gormDB && (fn.Name() == "Exec" || fn.Name() == "Raw"),
		handleOf(t) != gormDB && isStatement(t, fn.Name()) && fn.Name() != "CopyFrom":
		if _, known := firstStringArg(info, call); !known {
			return true // the text is not a constant, or a batch
		}
	}
	if onConn {
		switch fn.Name() {
		case "Close", "Release", "Hijack", "Raw", "Conn", "PgConn":
			return true
		}
	}
	return false
}

// harmlessUse reports whether id, a use of the transaction's variable,
// is one that cannot end it unseen: the receiver of a method call (its
// Commit and Rollback, and COMMIT statements, are found as such), an
// argument of a function the analyzer sees (one known to end it is found
// as such), an operand of a comparison, the value of a variable assigned
// once, whose own uses endsTx follows, or a value thrown away (_ = tx).
func (c *checker) harmlessUse(id *ast.Ident) bool {
	info := c.pass.TypesInfo
	switch p := c.ix.parents[id].(type) {
	case *ast.SelectorExpr:
		call, ok := c.ix.parents[p].(*ast.CallExpr)
		return ok && call.Fun == p && p.X == id
	case *ast.CallExpr:
		if p.Fun == id {
			return false
		}
		fn := callee(info, p)
		if fn == nil {
			return false // a function value
		}
		if isLibrary(funcPath(fn)) {
			return true
		}
		sig, _ := fn.Type().(*types.Signature)
		if sig != nil && sig.Recv() != nil && types.IsInterface(sig.Recv().Type()) {
			return false // an interface method: any implementation
		}
		if sel, ok := ast.Unparen(p.Fun).(*ast.SelectorExpr); ok {
			if s := info.Selections[sel]; s != nil && s.Kind() == types.MethodExpr {
				return false
			}
		}
		return true
	case *ast.BinaryExpr:
		return true
	case *ast.AssignStmt:
		for i, rhs := range p.Rhs {
			if rhs == id && len(p.Lhs) == len(p.Rhs) {
				if l, ok := p.Lhs[i].(*ast.Ident); ok && l.Name == "_" {
					return true
				}
				v := c.ix.varOf(p.Lhs[i])
				_, once := c.ix.singleDef(v)
				return v != nil && once && !v.IsField() && c.ix.paramOf[v] == nil && !isPackageLevel(v)
			}
		}
	}
	return false
}

// thenReturns reports whether n, in home before call, is in a block that
// does not hold call and ends by returning (or panicking) with no break,
// continue or goto in it: a path through n never reaches call.
func (c *checker) thenReturns(n, home ast.Node, call *ast.CallExpr) bool {
	for p := c.ix.parents[n]; p != nil && p != home; p = c.ix.parents[p] {
		if _, ok := p.(*ast.FuncLit); ok {
			return false
		}
		var list []ast.Stmt
		switch b := p.(type) {
		case *ast.BlockStmt:
			list = b.List
		case *ast.CaseClause:
			list = b.Body
		case *ast.CommClause:
			list = b.Body
		default:
			continue
		}
		if within(call.Pos(), p) || len(list) == 0 || !terminates(list[len(list)-1]) || hasBranch(p) {
			continue
		}
		return true
	}
	return false
}

// terminates reports whether s leaves the function: a return, or a call
// of panic.
func terminates(s ast.Stmt) bool {
	switch s := s.(type) {
	case *ast.ReturnStmt:
		return true
	case *ast.ExprStmt:
		call, ok := ast.Unparen(s.X).(*ast.CallExpr)
		if !ok {
			return false
		}
		id, ok := ast.Unparen(call.Fun).(*ast.Ident)
		return ok && id.Name == "panic"
	}
	return false
}

// hasBranch reports whether n holds a break, continue, goto or
// fallthrough.
func hasBranch(n ast.Node) bool {
	found := false
	ast.Inspect(n, func(m ast.Node) bool {
		if _, ok := m.(*ast.BranchStmt); ok {
			found = true
		}
		return !found
	})
	return found
}

// funcOf returns the innermost function, literal or declared, around n.
func (c *checker) funcOf(n ast.Node) ast.Node {
	if fns := c.ix.enclosingFuncs(n); len(fns) > 0 {
		return fns[0]
	}
	return nil
}

// reportBusyConn reports call, whose database db is the connection the
// transaction b was begun on.
func (c *checker) reportBusyConn(call *ast.CallExpr, fn *types.Func, db ast.Expr, b handBegin) {
	scope := qualifiedName(fn)
	tx := b.tx.Name()
	_, savepoint := adapterFor(b.tx.Type(), tx)
	if isTxFunc(fn) && funcPath(fn) == sqldbPath && len(call.Args) > 2 {
		savepoint = "sqldb.InSavepoint(" + tx + ", " + types.ExprString(call.Args[1]) + ")"
	}
	poolHint := "a pool"
	if p := c.poolOf(db); p != "" {
		poolHint = "the pool (" + p + ")"
	}
	conn := rootString(db)
	what := typeName(c.pass.TypesInfo.TypeOf(db))
	if r, ok := c.rootOfBeginner(db); ok {
		what = typeName(r.v.Type())
		if r.v.Name() != conn {
			what = r.v.Name() + ", " + what
		}
	}
	begun := c.posLine(b.call.Pos(), db.Pos())
	var hazard string
	if isNamed(namedOf(b.tx.Type()), pgxPath, "Tx") {
		hazard = "PostgreSQL ignores a BEGIN inside a transaction, so its ROLLBACK would undo " + tx +
			"'s work and its COMMIT commit it"
		if funcPath(fn) == pgxdbPath {
			hazard += " (pgxdb refuses it at run time, not retryable)"
		}
	} else {
		hazard = "MySQL and MariaDB commit " + tx + " at START TRANSACTION, and PostgreSQL ignores the " +
			"second BEGIN, so its ROLLBACK undoes " + tx + "'s work and its COMMIT commits it"
	}
	c.report(db.Pos(), catBusyConn, fmt.Sprintf(
		"%s (%s) is the connection the transaction %s was begun on by hand (%s), still open here: %s begins "+
			"again on the same connection, where %s; run the step in a savepoint of %s (%s in its With), "+
			"or pass %s, not the connection",
		conn, what, tx, begun, scope, hazard, tx, savepoint, poolHint))
}

// poolOf names the pool the connection db was taken from, when the
// analyzer sees it: conn, err := db.Conn(ctx), pool.Acquire(ctx), or the
// *gorm.DB a GORM Connection was called on.
func (c *checker) poolOf(db ast.Expr) string {
	r, ok := c.rootOfBeginner(db)
	if !ok || len(r.path) > 0 {
		return ""
	}
	if lit, ok := c.ix.paramOf[r.v].(*ast.FuncLit); ok {
		if recv := c.gormConnection(lit); recv != nil {
			return rootString(recv)
		}
		return ""
	}
	ds := c.ix.defs[r.v]
	if len(ds) != 1 || ds[0].rhs == nil || ds[0].index > 0 {
		return ""
	}
	call, ok := ast.Unparen(ds[0].rhs).(*ast.CallExpr)
	if !ok {
		return ""
	}
	fn := callee(c.pass.TypesInfo, call)
	sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if fn == nil || !isSel || (fn.Name() != "Conn" && fn.Name() != "Acquire") ||
		handleOf(c.pass.TypesInfo.TypeOf(sel.X)) != pool {
		return ""
	}
	return rootString(sel.X)
}
