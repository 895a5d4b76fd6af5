package dbopvet

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
)

const pgconnPath = "github.com/jackc/pgx/v5/pgconn"

// A oneShotUse is a call that uses up a value it is given: what the value
// is and what using it twice does.
type oneShotUse struct {
	arg      ast.Expr   // the value, as passed
	v        *types.Var // the variable it is
	consumer string     // tx.CopyFrom
	kind     string     // "copy", "batch", "reader" or "model"
	hook     string     // for a model: the create hook a retry's Save skips
}

// checkOneShot reports check 7 on an operation decorated by with, o: a
// one-shot source (a pgx.CopyFromSource, a *pgx.Batch, an io.Reader
// copied by pgconn), or a GORM model with a create hook, built outside a
// function that a retry in o's With lists may run more than once, and
// used up (saved) inside it. The functions are
// o's own, and the one an InTx or Do (or a wrapper of them) at the base of
// the With chain runs.
func (c *checker) checkOneShot(with *ast.CallExpr, o op) {
	var retry *deco
	for i := range o.decos {
		if d := &o.decos[i]; d.kind == decoRetry && !c.singleAttempt(d) {
			retry = d
			break
		}
	}
	if retry == nil {
		return
	}
	if o.fn != nil {
		c.checkOneShotIn(o.fn, "the operation's function", retry)
	}
	base, ok := c.opBase(with, 0).(*ast.CallExpr)
	if !ok {
		return
	}
	fn := callee(c.pass.TypesInfo, base)
	if fn == nil {
		return
	}
	runner := "the function " + qualifiedName(fn) + " runs"
	if isTxFunc(fn) {
		if i, ok := txFuncArg(fn, base); ok {
			if node := c.ix.funcNode(base.Args[i]); node != nil {
				c.checkOneShotIn(node, runner, retry)
			}
		}
	}
	for _, tp := range c.txFuncOf(fn) {
		if tp.Param < len(base.Args) {
			if node := c.ix.funcNode(base.Args[tp.Param]); node != nil {
				c.checkOneShotIn(node, runner, retry)
			}
		}
	}
}

// singleAttempt reports whether the retry d is given dbop.MaxAttempts(1)
// as its last MaxAttempts option: it makes one attempt, no retry.
func (c *checker) singleAttempt(d *deco) bool {
	if d.retry == nil || d.retry.Ellipsis.IsValid() {
		return false
	}
	single := false
	for _, opt := range d.retry.Args[min(1, len(d.retry.Args)):] {
		call, ok := ast.Unparen(opt).(*ast.CallExpr)
		if !ok || len(call.Args) != 1 || !isFunc(callee(c.pass.TypesInfo, call), dbopPath, "MaxAttempts") {
			continue
		}
		tv := c.pass.TypesInfo.Types[call.Args[0]]
		n, exact := int64(0), false
		if tv.Value != nil {
			n, exact = constant.Int64Val(tv.Value)
		}
		single = exact && n == 1
	}
	return single
}

// checkOneShotIn reports the one-shot sources built outside fn and used
// up inside it, fn being run again by retry; runner names fn in the
// message.
func (c *checker) checkOneShotIn(fn ast.Node, runner string, retry *deco) {
	body, _ := funcBody(fn)
	if body == nil {
		return
	}
	ast.Inspect(body, func(n ast.Node) bool {
		if lit, ok := n.(*ast.FuncLit); ok && c.txFuncs[lit] == nil && c.escapes(lit, fn) {
			return false // kept for later, perhaps run once only
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		u, ok := c.oneShotUseOf(call)
		if !ok || !c.builtOutside(u, fn) {
			return true
		}
		built, at := "declared", u.v.Pos()
		if d, ok := c.ix.singleDef(u.v); ok {
			built, at = "built", d.rhs.Pos()
		}
		name := u.v.Name()
		var what, why, fix string
		switch u.kind {
		case "copy":
			what = "consumed by"
			why = "the first attempt consumes " + name + ", and a retry copies nothing and commits: " +
				"success reported, no rows written"
			fix = "build it inside the function"
		case "batch":
			what = "sent by"
			why = "pgx keeps in " + name + " the descriptions of the statements the first attempt prepared, " +
				"and a retry on another connection fails with 26000 (prepared statement does not exist)"
			fix = "build the batch inside the function"
		case "reader":
			what = "read by"
			why = "the first attempt reads " + name + " to its end, and a retry copies nothing and commits: " +
				"success reported, no rows written"
			fix = "build it inside the function (or seek it back to the start there)"
		case "model":
			what = "saved by"
			why = "GORM writes the primary key the first attempt got back into " + name + ", and the rollback keeps it: " +
				"a retry's Save takes " + name + " for an update, updates no row and inserts it with hooks skipped, " +
				"so its " + u.hook + " runs on no attempt that commits"
			fix = "build it inside the function"
		}
		c.report(u.arg.Pos(), catOneShot, fmt.Sprintf(
			"%s (%s) is %s outside %s (%s) and %s %s inside it; %s (%s) may run the function more than once: %s; %s",
			name, typeName(u.v.Type()), built, runner, c.posLine(at, u.arg.Pos()), what, u.consumer,
			retryName(retry), c.posLine(retry.listed.Pos(), u.arg.Pos()), why, fix))
		return true
	})
}

// oneShotUseOf returns the one-shot source call uses up: the rows of a
// CopyFrom of pgx (a pgx.CopyFromSource), the batch of a SendBatch of pgx
// (a *pgx.Batch), or the reader of pgconn's CopyFrom, when it is a
// variable.
func (c *checker) oneShotUseOf(call *ast.CallExpr) (oneShotUse, bool) {
	info := c.pass.TypesInfo
	fn := callee(info, call)
	sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if fn == nil || !isSel || call.Ellipsis.IsValid() {
		return oneShotUse{}, false
	}
	if s := info.Selections[sel]; s == nil || s.Kind() != types.MethodVal {
		return oneShotUse{}, false
	}
	recv := namedOf(info.TypeOf(sel.X))
	if recv == nil || recv.Obj().Pkg() == nil {
		return oneShotUse{}, false
	}
	u := oneShotUse{consumer: types.ExprString(call.Fun)}
	var index int
	switch path := recv.Obj().Pkg().Path(); {
	case (path == pgxPath || path == pgxpoolPath) && fn.Name() == "CopyFrom":
		u.kind, index = "copy", 3
	case (path == pgxPath || path == pgxpoolPath) && fn.Name() == "SendBatch":
		u.kind, index = "batch", 1
	case path == pgconnPath && recv.Obj().Name() == "PgConn" && fn.Name() == "CopyFrom":
		u.kind, index = "reader", 1
	case path == gormPath && recv.Obj().Name() == "DB" && fn.Name() == "Save":
		// Save of a struct whose primary key is set updates it, and on
		// no row inserts it with hooks skipped (docs/backends.md §9.9).
		u.kind, index = "model", 0
	default:
		return oneShotUse{}, false
	}
	if index >= len(call.Args) {
		return oneShotUse{}, false
	}
	u.arg = call.Args[index]
	e := ast.Unparen(u.arg)
	if x, ok := e.(*ast.UnaryExpr); ok && x.Op == token.AND && (u.kind == "batch" || u.kind == "model") {
		e = ast.Unparen(x.X) // &batch, of a pgx.Batch; &order, of a model
	}
	id, ok := e.(*ast.Ident)
	if !ok {
		return oneShotUse{}, false
	}
	u.v = c.ix.varOf(id)
	if u.v == nil || u.v.IsField() {
		return oneShotUse{}, false
	}
	switch n := namedOf(u.v.Type()); u.kind {
	case "copy":
		// A type of the user's own may start over at each attempt.
		ok = isNamed(n, pgxPath, "CopyFromSource") && types.IsInterface(u.v.Type())
	case "batch":
		ok = isNamed(n, pgxPath, "Batch")
	case "reader":
		ok = true
	case "model":
		u.hook = createHook(u.v.Type())
		ok = u.hook != ""
	}
	return u, ok
}

// createHook returns the name of a GORM create hook of t, a struct type or
// a pointer to one — AfterCreate, else BeforeCreate — or "" if it has
// none: a retry's Save of a model without one still inserts it all.
func createHook(t types.Type) string {
	n := namedOf(t)
	if n == nil {
		return ""
	}
	if _, ok := n.Underlying().(*types.Struct); !ok {
		return ""
	}
	ms := types.NewMethodSet(types.NewPointer(n))
	for _, hook := range [...]string{"AfterCreate", "BeforeCreate"} {
		if sel := ms.Lookup(n.Obj().Pkg(), hook); sel != nil {
			return hook
		}
	}
	return ""
}

// builtOutside reports whether u's variable, used inside fn, holds a value
// built outside fn: declared outside, never assigned inside, and, for a
// reader, not rewound inside (Seek, Reset).
func (c *checker) builtOutside(u oneShotUse, fn ast.Node) bool {
	if within(u.v.Pos(), fn) {
		return false
	}
	for _, d := range c.ix.defs[u.v] {
		if d.rhs != nil && within(d.rhs.Pos(), fn) {
			return false // built again at each attempt
		}
	}
	if u.kind != "reader" {
		return true
	}
	body, _ := funcBody(fn)
	rewound := false
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || rewound {
			return !rewound
		}
		if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok && (sel.Sel.Name == "Seek" || sel.Sel.Name == "Reset") {
			rewound = c.ix.varOf(sel.X) == u.v
		}
		return true
	})
	return !rewound
}
