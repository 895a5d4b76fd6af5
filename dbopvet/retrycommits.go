package dbopvet

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
)

// A txRun is a run of a transaction scope in an operation's function: a
// call X.Run(ctx) where X is InTx or Do of scopes or an adapter (through
// With calls and variables assigned once), or a call of a wrapper of them
// that runs the transaction itself.
type txRun struct {
	call  *ast.CallExpr
	scope string // "pgxdb.InTx", or the wrapper's name
	// writes: the transaction commits writes the analyzer sees: its
	// function writes (writes.go), with no ReadOnly option and every
	// option known.
	writes bool
	// surfaces: its error reaches the function as it is, with no Fallback,
	// OrDefault or decorator the analyzer cannot see in its With list.
	surfaces bool
}

// checkRetryCommits reports check 5: an operation under a retry not
// marked Idempotent whose function runs a transaction scope after another
// that committed, or one in a loop: the retry runs the whole function
// again after the later one failed, and the committed transaction is
// applied twice. dbop.Then and dbop.All see their steps commit; the
// operation's own function, the runtime cannot see into.
func (c *checker) checkRetryCommits(o op) {
	if o.fn == nil {
		return
	}
	retry := o.unmarkedRetry()
	if retry == nil {
		return
	}
	body, _ := funcBody(o.fn)
	if body == nil {
		return
	}
	runs, ok := c.txRunsIn(body)
	if !ok {
		return
	}
	const fix = "build the operation with dbop.Then (its retry refuses to run a committed step again), " +
		"put the retry on each transaction, or make the transactions idempotent and mark the retry dbop.Idempotent()"
	for j, later := range runs {
		if !later.surfaces || !c.reachesReturn(later.call, o.fn) {
			continue
		}
		for i := j - 1; i >= 0; i-- {
			first := runs[i]
			if !first.writes || !c.runsBefore(first.call, later.call) {
				continue
			}
			c.report(later.call.Pos(), catRetryCommits, fmt.Sprintf(
				"%s (%s) commits before this %s runs, under %s (%s) without dbop.Idempotent(): if this one fails "+
					"with an error the retry acts on, the retry runs the function again and the committed "+
					"transaction is applied twice; %s",
				first.scope, c.posLine(first.call.Pos(), later.call.Pos()), later.scope,
				retryName(retry), c.posLine(retry.listed.Pos(), later.call.Pos()), fix))
			break
		}
	}
	for _, run := range runs {
		if !run.writes || !run.surfaces || !c.reachesReturn(run.call, o.fn) {
			continue
		}
		loop, name := c.repeatingLoop(run.call, body)
		if loop == nil {
			continue
		}
		c.report(run.call.Pos(), catRetryCommits, fmt.Sprintf(
			"%s runs in %s (%s), under %s (%s) without dbop.Idempotent(): if the transaction of a later "+
				"iteration fails with an error the retry acts on, the retry runs the function again and the "+
				"transactions of the earlier iterations, committed, are applied twice; %s",
			run.scope, name, c.posLine(loop.Pos(), run.call.Pos()),
			retryName(retry), c.posLine(retry.listed.Pos(), run.call.Pos()),
			"build the operation with dbop.Then or dbop.All (their retry refuses to run a committed step again), "+
				"put the retry on each transaction, or make the transactions idempotent and mark the retry dbop.Idempotent()"))
	}
}

// txRunsIn returns the runs of a transaction scope in body, in source
// order: not those in function literals (run by a scope, by another
// goroutine, or later), deferred or started as goroutines. ok is false
// when body has a goto, which the order of the source does not follow.
func (c *checker) txRunsIn(body *ast.BlockStmt) (runs []txRun, ok bool) {
	ok = true
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit, *ast.DeferStmt, *ast.GoStmt:
			return false
		case *ast.BranchStmt:
			if n.Tok == token.GOTO {
				ok = false
			}
		case *ast.CallExpr:
			if r, isRun := c.txRunOf(n); isRun {
				runs = append(runs, r)
			}
		}
		return true
	})
	return runs, ok
}

// reachesReturn reports whether the error of the run call can reach the
// return of fn, the function it is in: call is a result of a return of
// fn, or the error it yields is assigned to a variable that a return of fn
// uses (return 0, err; return 0, fmt.Errorf("…: %w", err)). An error that
// is discarded, or handled and not returned, never reaches the retry.
func (c *checker) reachesReturn(call *ast.CallExpr, fn ast.Node) bool {
	body, _ := funcBody(fn)
	if body == nil {
		return false
	}
	var n ast.Node = call
	p := c.ix.parents[n]
	for {
		if _, ok := p.(*ast.ParenExpr); !ok {
			break
		}
		n, p = p, c.ix.parents[p]
	}
	var errs map[*types.Var]bool
	switch p := p.(type) {
	case *ast.ReturnStmt:
		return c.innermostFunc(p) == fn
	case *ast.AssignStmt:
		if len(p.Rhs) != 1 || p.Rhs[0] != n {
			return false
		}
		errs = c.errVars(p.Lhs)
	case *ast.ValueSpec:
		if len(p.Values) != 1 || p.Values[0] != n {
			return false
		}
		lhs := make([]ast.Expr, len(p.Names))
		for i, name := range p.Names {
			lhs[i] = name
		}
		errs = c.errVars(lhs)
	default:
		return false
	}
	return c.returnsErr(body, errs)
}

// innermostFunc returns the function literal or declaration around n.
func (c *checker) innermostFunc(n ast.Node) ast.Node {
	for p := c.ix.parents[n]; p != nil; p = c.ix.parents[p] {
		switch p.(type) {
		case *ast.FuncLit, *ast.FuncDecl:
			return p
		}
	}
	return nil
}

// txRunOf returns the run of a transaction scope call is, if it is one.
func (c *checker) txRunOf(call *ast.CallExpr) (txRun, bool) {
	fn := callee(c.pass.TypesInfo, call)
	if fn == nil {
		return txRun{}, false
	}
	if isOpMethod(fn, "Run") && len(call.Args) == 1 {
		r, ok := c.txOpOf(ast.Unparen(call.Fun).(*ast.SelectorExpr).X, 0)
		r.call = call
		return r, ok
	}
	// A wrapper that runs the transaction itself: it returns no operation
	// to run.
	if ps := c.txFuncOf(fn); len(ps) > 0 {
		if returnsOp(fn) {
			return txRun{}, false
		}
		return txRun{call: call, scope: c.runName(call, fn), writes: c.wrapperWrites(call, ps), surfaces: true}, true
	}
	// A function that runs a transaction that writes, and returns its
	// error.
	if c.commitsTx(fn) {
		return txRun{call: call, scope: c.runName(call, fn), writes: true, surfaces: true}, true
	}
	return txRun{}, false
}

// txOpOf returns what is known of e as an operation that runs a
// transaction scope.
func (c *checker) txOpOf(e ast.Expr, depth int) (txRun, bool) {
	if depth > maxDepth {
		return txRun{}, false
	}
	switch x := ast.Unparen(e).(type) {
	case *ast.Ident:
		v := c.ix.varOf(x)
		if v == nil || v.IsField() || c.ix.paramOf[v] != nil {
			return txRun{}, false
		}
		if d, ok := c.ix.singleDef(v); ok && d.index < 0 {
			return c.txOpOf(d.rhs, depth+1)
		}
	case *ast.CallExpr:
		fn := callee(c.pass.TypesInfo, x)
		switch {
		case isTxFunc(fn):
			i, ok := txFuncArg(fn, x)
			if !ok {
				return txRun{}, false
			}
			writes := c.scopeWrites(x, i) && c.funcWrites(x.Args[i])
			return txRun{scope: qualifiedName(fn), writes: writes, surfaces: true}, true
		case isOpMethod(fn, "With"):
			r, ok := c.txOpOf(ast.Unparen(x.Fun).(*ast.SelectorExpr).X, depth+1)
			for _, arg := range x.Args {
				if x.Ellipsis.IsValid() {
					r.surfaces = false
					break
				}
				for _, d := range c.resolveDeco(arg, arg, depth+1) {
					switch {
					case d.kind == decoUnknown, d.kind == decoSavepoint,
						d.kind == decoNeutral && (d.name == "Fallback" || d.name == "OrDefault"):
						r.surfaces = false
					}
				}
			}
			return r, ok
		case len(c.txFuncOf(fn)) > 0 && returnsOp(fn):
			return txRun{scope: c.runName(x, fn), writes: c.wrapperWrites(x, c.txFuncOf(fn)), surfaces: true}, true
		}
	}
	return txRun{}, false
}

// wrapperWrites reports whether the call of a wrapper of InTx, whose
// function parameters are ps, commits writes the analyzer sees: each
// transaction the wrapper runs them in may write, and one of the functions
// the call passes writes.
func (c *checker) wrapperWrites(call *ast.CallExpr, ps []txParam) bool {
	writes := false
	for _, p := range ps {
		if !p.Writes {
			return false
		}
		if p.Param < len(call.Args) && !call.Ellipsis.IsValid() && c.funcWrites(call.Args[p.Param]) {
			writes = true
		}
	}
	return writes
}

// runName is how a message names the function a call of a wrapper calls:
// a method by the expression of the call (s.inTx), a function by its
// package (store.InTx).
func (c *checker) runName(call *ast.CallExpr, fn *types.Func) string {
	if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok {
		if s := c.pass.TypesInfo.Selections[sel]; s != nil && s.Kind() == types.MethodVal {
			return types.ExprString(sel)
		}
	}
	if recv := recvNamed(fn); recv != nil {
		return "(" + types.TypeString(fn.Type().(*types.Signature).Recv().Type(), (*types.Package).Name) + ")." + fn.Name()
	}
	return qualifiedName(fn)
}

// returnsOp reports whether one of fn's results is a dbop.Op.
func returnsOp(fn *types.Func) bool {
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil {
		return false
	}
	for i := 0; i < sig.Results().Len(); i++ {
		if isOpType(sig.Results().At(i).Type()) {
			return true
		}
	}
	return false
}

// scopeWrites reports whether the InTx-family call, whose function
// argument is at index fnArg, may commit writes: none of the options after
// it is ReadOnly, and each is one the analyzer recognises.
func (c *checker) scopeWrites(call *ast.CallExpr, fnArg int) bool {
	if call.Ellipsis.IsValid() {
		return false
	}
	for _, opt := range call.Args[min(fnArg+1, len(call.Args)):] {
		if name := c.txOption(opt, 0); name == "" || name == "ReadOnly" {
			return false
		}
	}
	return true
}

// txOption returns the name of the function of scopes or an adapter that
// made the transaction option e, or "" when it is not known.
func (c *checker) txOption(e ast.Expr, depth int) string {
	return c.optionMaker(e, depth, func(fn *types.Func) bool {
		_, ok := scopePackages[funcPath(fn)]
		return ok
	})
}

// runsBefore reports whether, in the function both are in, the run first
// may be followed by the run later on one path: later comes after first in
// the source, not in a branch that excludes first's (the other branch of
// an if, another case of a switch), not after a return, a break or a
// continue that leaves first's path, and not on the path taken when first
// failed (if err != nil { … } after it, with first's error).
func (c *checker) runsBefore(first, later *ast.CallExpr) bool {
	if first.End() > later.Pos() {
		return false // one inside the other, or out of order
	}
	parents := c.ix.parents
	above := map[ast.Node]bool{}
	for n := ast.Node(first); n != nil; n = parents[n] {
		above[n] = true
	}
	var a ast.Node // the innermost node around both
	for n := parents[later]; n != nil; n = parents[n] {
		if above[n] {
			a = n
			break
		}
	}
	if a == nil {
		return false
	}
	c1, c2 := childOn(parents, first, a), childOn(parents, later, a)

	// first runs on every path that reaches later, as far as blocks show:
	// it is in no branch of an if, case of a switch or clause of a select
	// that later is not also in (if kind == "a" { A }; if kind == "b" { B }).
	for n := ast.Node(first); n != a; n = parents[n] {
		switch p := parents[n].(type) {
		case *ast.IfStmt:
			if n == p.Body || n == p.Else {
				return false
			}
		case *ast.CaseClause, *ast.CommClause:
			return false
		}
	}

	// first's path, when it succeeded, goes on to the end of c1.
	errs := c.resultVars(first)
	for n := ast.Node(first); n != c1; n = parents[n] {
		p := parents[n]
		if _, ok := n.(*ast.ReturnStmt); ok {
			return false
		}
		if s, ok := p.(*ast.IfStmt); ok && n == s.Init && c.successEnds(s, errs, a) {
			return false
		}
		if stmts := stmtList(p); stmts != nil {
			if i := stmtIndex(stmts, n); i >= 0 {
				for _, s := range stmts[i+1:] {
					if c.ends(s, a) || c.successEnds(s, errs, a) {
						return false
					}
				}
			}
		}
	}
	if _, ok := c1.(*ast.ReturnStmt); ok {
		return false
	}

	switch a := a.(type) {
	case *ast.IfStmt:
		if c1 == a.Body {
			return false // later is in the else branch
		}
	case *ast.BlockStmt, *ast.CaseClause, *ast.CommClause:
		switch c1.(type) {
		case *ast.CaseClause, *ast.CommClause:
			return false // another case
		}
		stmts := stmtList(a)
		i, j := stmtIndex(stmts, c1), stmtIndex(stmts, c2)
		if i < 0 || j < 0 {
			return false
		}
		for _, s := range stmts[i+1 : j] {
			if c.ends(s, a) || c.successEnds(s, errs, a) {
				return false
			}
		}
	}

	// later is not on first's error path: not the right operand of
	// first() == nil || … or first() != nil && …, evaluated only when
	// first failed,
	for n := ast.Node(later); n != a; n = parents[n] {
		if b, ok := parents[n].(*ast.BinaryExpr); ok && n == b.Y && within(first.Pos(), b.X) &&
			(b.Op == token.LOR || b.Op == token.LAND) {
			x, isBin := ast.Unparen(b.X).(*ast.BinaryExpr)
			neq, isCheck := c.errCheck(b.X)
			if isBin && isCheck && (ast.Unparen(x.X) == first || ast.Unparen(x.Y) == first || c.refersTo(x, errs)) &&
				neq == (b.Op == token.LAND) {
				return false
			}
		}
	}
	// nor in a branch taken on first's error.
	if len(errs) == 0 {
		return true
	}
	for n := ast.Node(later); n != a; n = parents[n] {
		if !c.onSuccessPath(n, parents[n], errs) {
			return false
		}
	}
	return true
}

// onSuccessPath reports whether n, a child of p, runs whatever the
// variables in errs hold, or only when the error among them is nil: it is
// not in a branch of an if or a case chosen on them otherwise.
func (c *checker) onSuccessPath(n, p ast.Node, errs map[*types.Var]bool) bool {
	switch p := p.(type) {
	case *ast.IfStmt:
		if (n != p.Body && n != p.Else) || !c.refersTo(p.Cond, errs) {
			return true
		}
		neq, ok := c.errCheck(p.Cond)
		return ok && ((n == p.Body && !neq) || (n == p.Else && neq))
	case *ast.CaseClause:
		sw, _ := c.ix.parents[c.ix.parents[p]].(*ast.SwitchStmt)
		if sw != nil && sw.Tag != nil && c.refersTo(sw.Tag, errs) {
			return false
		}
		for _, e := range p.List {
			if c.refersTo(e, errs) {
				// case err == nil: the success path; case err != nil,
				// or any other test of the error: not.
				neq, ok := c.errCheck(e)
				return ok && !neq && len(p.List) == 1
			}
		}
		// In a tagless switch, the clauses after a case err == nil, and
		// its default wherever it stands, run only when it is not nil.
		if sw != nil && sw.Tag == nil {
			for _, s := range sw.Body.List {
				cc, _ := s.(*ast.CaseClause)
				if cc == nil || (cc == p && p.List != nil) {
					break
				}
				if cc != p && c.isNilCase(cc, errs) {
					return false
				}
			}
		}
	}
	return true
}

// isNilCase reports whether the clause cc of a tagless switch is case
// err == nil, on one of errs.
func (c *checker) isNilCase(cc *ast.CaseClause, errs map[*types.Var]bool) bool {
	for _, e := range cc.List {
		if neq, ok := c.errCheck(e); ok && !neq && c.refersTo(e, errs) {
			return true
		}
	}
	return false
}

// successEnds reports whether s is an if on first's error, errs, whose
// branch taken when it is nil ends the path through the list around it
// (if err == nil { return n, nil }).
func (c *checker) successEnds(s ast.Stmt, errs map[*types.Var]bool, a ast.Node) bool {
	ifs, ok := s.(*ast.IfStmt)
	if !ok || len(errs) == 0 || !c.refersTo(ifs.Cond, errs) {
		return false
	}
	neq, ok := c.errCheck(ifs.Cond)
	if !ok {
		return false
	}
	branch := ifs.Body
	if neq {
		branch, _ = ifs.Else.(*ast.BlockStmt)
	}
	return branch != nil && len(branch.List) > 0 && c.ends(branch.List[len(branch.List)-1], a)
}

// resultVars returns the variables the statement around call assigns
// (_, err := X.Run(ctx)).
func (c *checker) resultVars(call *ast.CallExpr) map[*types.Var]bool {
	var n ast.Node = call
	for n != nil {
		if _, ok := n.(ast.Stmt); ok {
			break
		}
		n = c.ix.parents[n]
	}
	vars := map[*types.Var]bool{}
	add := func(e ast.Expr) {
		if v := c.ix.varOf(e); v != nil {
			vars[v] = true
		}
	}
	switch s := n.(type) {
	case *ast.AssignStmt:
		for _, l := range s.Lhs {
			add(l)
		}
	case *ast.DeclStmt:
		if g, ok := s.Decl.(*ast.GenDecl); ok {
			for _, spec := range g.Specs {
				if vs, ok := spec.(*ast.ValueSpec); ok {
					for _, name := range vs.Names {
						add(name)
					}
				}
			}
		}
	}
	return vars
}

// refersTo reports whether e uses one of vars.
func (c *checker) refersTo(e ast.Node, vars map[*types.Var]bool) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && vars[c.ix.varOf(id)] {
			found = true
		}
		return !found
	})
	return found
}

// errCheck reports whether cond is err != nil (neq) or err == nil, with
// err of a type that implements error.
func (c *checker) errCheck(cond ast.Expr) (neq, ok bool) {
	b, isBin := ast.Unparen(cond).(*ast.BinaryExpr)
	if !isBin || (b.Op != token.NEQ && b.Op != token.EQL) {
		return false, false
	}
	x, y := b.X, b.Y
	if c.isNil(x) {
		x, y = y, x
	}
	if !c.isNil(y) {
		return false, false
	}
	t := c.pass.TypesInfo.TypeOf(x)
	errType, _ := types.Universe.Lookup("error").Type().Underlying().(*types.Interface)
	if t == nil || errType == nil || !types.Implements(t, errType) {
		return false, false
	}
	return b.Op == token.NEQ, true
}

func (c *checker) isNil(e ast.Expr) bool {
	tv, ok := c.pass.TypesInfo.Types[ast.Unparen(e)]
	return ok && tv.IsNil()
}

// ends reports whether the statement s, in a statement list inside a,
// ends the path through that list: a return, a goto or fallthrough, a
// panic, or a break or continue that leaves a (one whose loop or switch is
// inside a only sends the path on past it).
func (c *checker) ends(s ast.Stmt, a ast.Node) bool {
	switch s := s.(type) {
	case *ast.ReturnStmt:
		return true
	case *ast.ExprStmt:
		if call, ok := ast.Unparen(s.X).(*ast.CallExpr); ok {
			if id, ok := ast.Unparen(call.Fun).(*ast.Ident); ok {
				if b, ok := c.pass.TypesInfo.Uses[id].(*types.Builtin); ok && b.Name() == "panic" {
					return true
				}
			}
		}
	case *ast.BranchStmt:
		if s.Tok != token.BREAK && s.Tok != token.CONTINUE || s.Label != nil {
			return true
		}
		target := c.branchTarget(s)
		return target == nil || target == a || !within(target.Pos(), a)
	}
	return false
}

// branchTarget returns the statement an unlabeled break or continue leaves
// or goes on with.
func (c *checker) branchTarget(s *ast.BranchStmt) ast.Node {
	for p := c.ix.parents[s]; p != nil; p = c.ix.parents[p] {
		switch p.(type) {
		case *ast.ForStmt, *ast.RangeStmt:
			return p
		case *ast.SwitchStmt, *ast.TypeSwitchStmt, *ast.SelectStmt:
			if s.Tok == token.BREAK {
				return p
			}
		case *ast.FuncLit, *ast.FuncDecl:
			return nil
		}
	}
	return nil
}

// repeatingLoop returns the innermost for or range loop in body whose body
// holds call and that goes on to its next iteration after one whose run
// succeeded: each way out of it (a return, a break, a continue to a loop
// outside it) is taken on an error (if err != nil { return err }). A loop
// that stops when a run succeeds (a retry written by hand) is not one.
func (c *checker) repeatingLoop(call *ast.CallExpr, body *ast.BlockStmt) (ast.Stmt, string) {
	for n := ast.Node(call); n != nil && n != body; n = c.ix.parents[n] {
		var loopBody *ast.BlockStmt
		var name string
		p := c.ix.parents[n]
		switch l := p.(type) {
		case *ast.ForStmt:
			loopBody, name = l.Body, "the for loop"
		case *ast.RangeStmt:
			loopBody, name = l.Body, "the loop over "+types.ExprString(l.X)
		}
		if loopBody == nil || n != loopBody {
			continue
		}
		if c.leavesAfter(call, p.(ast.Stmt)) {
			return nil, "" // it runs at most once: the loop is left after it
		}
		if c.leavesOnError(p.(ast.Stmt), loopBody) {
			return p.(ast.Stmt), name
		}
	}
	return nil, ""
}

// leavesAfter reports whether a statement after the one that holds call,
// in a statement list inside loop around it, leaves loop whatever
// happens: a return, a panic, or a break or continue to a loop outside.
func (c *checker) leavesAfter(call *ast.CallExpr, loop ast.Stmt) bool {
	for n := ast.Node(call); n != nil && n != ast.Node(loop); n = c.ix.parents[n] {
		stmts := stmtList(c.ix.parents[n])
		i := stmtIndex(stmts, n)
		if i < 0 {
			continue
		}
		for _, s := range stmts[i+1:] {
			switch s := s.(type) {
			case *ast.ReturnStmt:
				return true
			case *ast.ExprStmt:
				if c.ends(s, loop) { // panic
					return true
				}
			case *ast.BranchStmt:
				if c.leaves(s, loop) {
					return true
				}
			}
		}
	}
	return false
}

// leavesOnError reports whether the loop goes on after an iteration whose
// runs succeeded: every way out of it inside its body is taken on an
// error, or under a condition that tests no error (a cancelled context, a
// count), which the loop goes on after when it does not hold. One taken
// under a test of an error otherwise (if err == nil { break }), or whatever
// happens, stops the loop on success: a retry written by hand.
func (c *checker) leavesOnError(loop ast.Stmt, body *ast.BlockStmt) bool {
	ok := true
	ast.Inspect(body, func(n ast.Node) bool {
		if !ok {
			return false
		}
		switch s := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			ok = c.onErrorPath(s, loop) || c.underOtherTest(s, loop)
		case *ast.ExprStmt:
			if c.ends(s, loop) { // panic
				ok = c.onErrorPath(s, loop) || c.underOtherTest(s, loop)
			}
		case *ast.BranchStmt:
			if c.leaves(s, loop) {
				ok = c.onErrorPath(s, loop) || c.underOtherTest(s, loop)
			}
		}
		return true
	})
	return ok
}

// underOtherTest reports whether s, inside loop, is in a branch of an if,
// a case of a switch or a clause of a select inside it, and none of the
// conditions around it up to loop uses a variable of type error.
func (c *checker) underOtherTest(s ast.Node, loop ast.Stmt) bool {
	conditional := false
	for n := s; n != nil && n != ast.Node(loop); n = c.ix.parents[n] {
		var conds []ast.Node
		switch p := c.ix.parents[n].(type) {
		case *ast.IfStmt:
			if n != p.Body && n != p.Else {
				continue
			}
			conds = append(conds, p.Cond)
			if p.Init != nil {
				conds = append(conds, p.Init)
			}
		case *ast.CaseClause:
			for _, e := range p.List {
				conds = append(conds, e)
			}
			if sw, ok := c.ix.parents[c.ix.parents[p]].(*ast.SwitchStmt); ok {
				if sw.Tag != nil {
					conds = append(conds, sw.Tag)
				}
				if sw.Init != nil {
					conds = append(conds, sw.Init)
				}
			} else {
				return false // a type switch
			}
		case *ast.CommClause:
			if p.Comm != nil {
				conds = append(conds, p.Comm)
			}
		default:
			continue
		}
		conditional = true
		for _, cond := range conds {
			if c.usesError(cond) {
				return false
			}
		}
	}
	return conditional
}

// usesError reports whether e uses a variable of type error.
func (c *checker) usesError(e ast.Node) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			if v, ok := c.pass.TypesInfo.Uses[id].(*types.Var); ok && isErrorType(v.Type()) {
				found = true
			}
		}
		return !found
	})
	return found
}

// leaves reports whether the branch statement s, inside loop, leaves it.
func (c *checker) leaves(s *ast.BranchStmt, loop ast.Stmt) bool {
	switch s.Tok {
	case token.GOTO:
		return true
	case token.FALLTHROUGH:
		return false
	}
	var target ast.Node
	if s.Label != nil {
		for p := c.ix.parents[s]; p != nil; p = c.ix.parents[p] {
			if l, ok := p.(*ast.LabeledStmt); ok && l.Label.Name == s.Label.Name {
				target = l.Stmt
				break
			}
		}
	} else {
		target = c.branchTarget(s)
	}
	switch {
	case target == nil:
		return true
	case target == ast.Node(loop):
		return s.Tok == token.BREAK
	}
	return !within(target.Pos(), loop)
}

// onErrorPath reports whether s, inside loop, runs only on an error: in
// the body of an if err != nil, or the else of an if err == nil.
func (c *checker) onErrorPath(s ast.Node, loop ast.Stmt) bool {
	for n := s; n != nil && n != ast.Node(loop); n = c.ix.parents[n] {
		if p, ok := c.ix.parents[n].(*ast.IfStmt); ok {
			if neq, isErr := c.errCheck(p.Cond); isErr && ((n == p.Body && neq) || (n == p.Else && !neq)) {
				return true
			}
		}
	}
	return false
}

// childOn returns the child of a on the way from n up to it.
func childOn(parents map[ast.Node]ast.Node, n, a ast.Node) ast.Node {
	for parents[n] != a {
		n = parents[n]
	}
	return n
}

// stmtList returns the statements n holds directly, if it is a block or a
// case.
func stmtList(n ast.Node) []ast.Stmt {
	switch n := n.(type) {
	case *ast.BlockStmt:
		return n.List
	case *ast.CaseClause:
		return n.Body
	case *ast.CommClause:
		return n.Body
	}
	return nil
}

func stmtIndex(stmts []ast.Stmt, n ast.Node) int {
	for i, s := range stmts {
		if ast.Node(s) == n {
			return i
		}
	}
	return -1
}
