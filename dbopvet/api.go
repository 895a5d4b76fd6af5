package dbopvet

import (
	"go/ast"
	"go/types"
	"strings"

	"golang.org/x/tools/go/types/typeutil"
)

// Import paths of the packages whose API the analyzer knows.
const (
	dbopPath   = "github.com/dbop-go/dbop"
	scopesPath = dbopPath + "/scopes"
	pgxdbPath  = dbopPath + "/adapters/pgxdb"
	sqldbPath  = dbopPath + "/adapters/sqldb"
	gormdbPath = dbopPath + "/adapters/gormdb"

	pgxPath     = "github.com/jackc/pgx/v5"
	pgxpoolPath = "github.com/jackc/pgx/v5/pgxpool"
	sqlPath     = "database/sql"
	gormPath    = "gorm.io/gorm"
	contextPath = "context"
	testingPath = "testing"
)

// scopePackages are the packages with the InTx family and InSavepoint, by
// the short name a message uses for them.
var scopePackages = map[string]string{
	scopesPath: "scopes",
	pgxdbPath:  "pgxdb",
	sqldbPath:  "sqldb",
	gormdbPath: "gormdb",
}

// isLibrary reports whether path is one of dbop's own packages: a call into
// them never runs a user's statements on a transaction it is given.
func isLibrary(path string) bool {
	return path == dbopPath || strings.HasPrefix(path, dbopPath+"/")
}

// callee returns the function or method a call expression calls, or nil
// for a call of a function value, a conversion or a builtin. For a generic
// function it returns the generic (uninstantiated) function.
func callee(info *types.Info, call *ast.CallExpr) *types.Func {
	fn, _ := typeutil.Callee(info, call).(*types.Func)
	if fn == nil {
		return nil
	}
	return fn.Origin()
}

// funcPath returns the import path of fn's package, or "".
func funcPath(fn *types.Func) string {
	if fn == nil || fn.Pkg() == nil {
		return ""
	}
	return fn.Pkg().Path()
}

// isFunc reports whether fn is the package-level function path.name.
func isFunc(fn *types.Func, path, name string) bool {
	if fn == nil || fn.Name() != name || funcPath(fn) != path {
		return false
	}
	sig, _ := fn.Type().(*types.Signature)
	return sig != nil && sig.Recv() == nil
}

// isTxFunc reports whether fn is InTx or Do of scopes or an adapter: a
// function that runs the function it is given in a transaction of its own.
func isTxFunc(fn *types.Func) bool {
	if fn == nil || (fn.Name() != "InTx" && fn.Name() != "Do") {
		return false
	}
	_, ok := scopePackages[funcPath(fn)]
	return ok && recvNamed(fn) == nil
}

// isSavepointFunc reports whether fn builds a decorator that runs each
// attempt inside a transaction the caller owns: InSavepoint of scopes or of
// an adapter, or dbop.AroundTx.
func isSavepointFunc(fn *types.Func) bool {
	if fn == nil || recvNamed(fn) != nil {
		return false
	}
	if fn.Name() == "InSavepoint" {
		_, ok := scopePackages[funcPath(fn)]
		return ok
	}
	return isFunc(fn, dbopPath, "AroundTx")
}

// qualifiedName is "pgxdb.InTx" for a function of a known package, and
// the function's name otherwise.
func qualifiedName(fn *types.Func) string {
	if fn.Pkg() == nil {
		return fn.Name()
	}
	return fn.Pkg().Name() + "." + fn.Name()
}

// recvNamed returns the named type of fn's receiver, or nil for a function.
func recvNamed(fn *types.Func) *types.Named {
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil || sig.Recv() == nil {
		return nil
	}
	return namedOf(sig.Recv().Type())
}

// namedOf returns the named type t is, or points to, or nil.
func namedOf(t types.Type) *types.Named {
	t = types.Unalias(t)
	if p, ok := t.(*types.Pointer); ok {
		t = types.Unalias(p.Elem())
	}
	n, _ := t.(*types.Named)
	return n
}

// isNamed reports whether n is path.name (or an instance of it).
func isNamed(n *types.Named, path, name string) bool {
	if n == nil {
		return false
	}
	obj := n.Origin().Obj()
	return obj.Name() == name && obj.Pkg() != nil && obj.Pkg().Path() == path
}

// isOpMethod reports whether fn is the method name of dbop.Op.
func isOpMethod(fn *types.Func, name string) bool {
	return fn != nil && fn.Name() == name && isNamed(recvNamed(fn), dbopPath, "Op")
}

// isOpType reports whether t is an instance of dbop.Op.
func isOpType(t types.Type) bool {
	n, _ := types.Unalias(t).(*types.Named)
	return isNamed(n, dbopPath, "Op")
}

// txFuncArg returns the index, among a call's arguments, of the function
// an InTx-family function runs in its transaction: its parameter fn, or
// else its first parameter of an unnamed function type (scopes' begin is a
// BeginFunc).
func txFuncArg(fn *types.Func, call *ast.CallExpr) (int, bool) {
	if i, ok := paramNamed(fn, call, "fn"); ok {
		return i, true
	}
	sig, _ := fn.Type().(*types.Signature)
	for i := 0; sig != nil && i < sig.Params().Len() && i < len(call.Args); i++ {
		if _, ok := types.Unalias(sig.Params().At(i).Type()).(*types.Signature); ok {
			return i, true
		}
	}
	return 0, false
}

// paramNamed returns the index of the argument a call passes for the
// parameter of fn called name.
func paramNamed(fn *types.Func, call *ast.CallExpr, name string) (int, bool) {
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil {
		return 0, false
	}
	for i := 0; i < sig.Params().Len(); i++ {
		if sig.Params().At(i).Name() == name {
			if i < len(call.Args) {
				return i, true
			}
			return 0, false
		}
	}
	return 0, false
}

// argFor returns the argument a call passes for parameter i.
func argFor(call *ast.CallExpr, i int) (ast.Expr, bool) {
	if i < len(call.Args) && !call.Ellipsis.IsValid() {
		return call.Args[i], true
	}
	return nil, false
}

// A handle is the kind of a database value the analyzer tells apart.
type handle int

const (
	notHandle handle = iota
	// pool hands each statement to a connection of its own, in
	// autocommit: *pgxpool.Pool, *sql.DB.
	pool
	// conn is one connection, in autocommit unless a transaction is open on
	// it: *pgx.Conn, *pgxpool.Conn, *sql.Conn.
	conn
	// gormDB is a *gorm.DB: a pool or a transaction, as it was made.
	gormDB
	// tx is a transaction: pgx.Tx, *sql.Tx.
	tx
)

// handleOf returns the kind of database value of type t.
func handleOf(t types.Type) handle {
	t = types.Unalias(t)
	ptr := false
	if p, ok := t.(*types.Pointer); ok {
		t, ptr = types.Unalias(p.Elem()), true
	}
	n, _ := t.(*types.Named)
	if n == nil || n.Obj().Pkg() == nil {
		return notHandle
	}
	switch path, name := n.Obj().Pkg().Path(), n.Obj().Name(); {
	case ptr && path == pgxpoolPath && name == "Pool", ptr && path == sqlPath && name == "DB":
		return pool
	case ptr && path == pgxPath && name == "Conn", ptr && path == pgxpoolPath && name == "Conn",
		ptr && path == sqlPath && name == "Conn":
		return conn
	case ptr && path == gormPath && name == "DB":
		return gormDB
	case !ptr && path == pgxPath && name == "Tx", ptr && path == sqlPath && name == "Tx":
		return tx
	}
	return notHandle
}

// typeName is how a message names a handle's type: *pgxpool.Pool.
func typeName(t types.Type) string {
	return types.TypeString(t, func(p *types.Package) string { return p.Name() })
}

// hasMethods reports whether values of type t have all the named methods.
func hasMethods(t types.Type, names ...string) bool {
	for _, name := range names {
		obj, _, _ := types.LookupFieldOrMethod(t, true, nil, name)
		if _, ok := obj.(*types.Func); !ok {
			return false
		}
	}
	return true
}

// Methods that run a statement, by the API they belong to.
var (
	// pgx: *pgxpool.Pool, *pgxpool.Conn, *pgx.Conn and pgx.Tx.
	pgxStatements = map[string]bool{"Exec": true, "Query": true, "QueryRow": true, "SendBatch": true, "CopyFrom": true}
	// database/sql: *sql.DB, *sql.Conn and *sql.Tx.
	sqlStatements = map[string]bool{
		"Exec": true, "ExecContext": true, "Query": true, "QueryContext": true,
		"QueryRow": true, "QueryRowContext": true,
	}
	// gorm: the finisher methods of *gorm.DB, which run what the chain
	// before them built.
	gormStatements = map[string]bool{
		"Create": true, "CreateInBatches": true, "Save": true, "First": true, "Take": true,
		"Last": true, "Find": true, "FindInBatches": true, "FirstOrInit": true,
		"FirstOrCreate": true, "Update": true, "Updates": true, "UpdateColumn": true,
		"UpdateColumns": true, "Delete": true, "Count": true, "Row": true, "Rows": true,
		"Scan": true, "Pluck": true, "Exec": true,
	}
)

// isStatement reports whether calling method name on a value of type t runs
// a statement.
func isStatement(t types.Type, name string) bool {
	n := namedOf(t)
	if n == nil || n.Obj().Pkg() == nil {
		return false
	}
	switch n.Obj().Pkg().Path() {
	case pgxPath, pgxpoolPath:
		return pgxStatements[name]
	case sqlPath:
		return sqlStatements[name]
	case gormPath:
		return gormStatements[name]
	}
	return false
}

// adapterFor returns the package a message should name for a transaction
// of type t, and how its InSavepoint is called on tx.
func adapterFor(t types.Type, tx string) (pkg, savepoint string) {
	n := namedOf(t)
	switch {
	case isNamed(n, pgxPath, "Tx"):
		return "pgxdb", "pgxdb.InSavepoint(" + tx + ")"
	case isNamed(n, sqlPath, "Tx"):
		return "sqldb", "sqldb.InSavepoint(" + tx + ", dialect)"
	case isNamed(n, gormPath, "DB"):
		return "gormdb", "gormdb.InSavepoint(" + tx + ")"
	}
	return "scopes", "scopes.InSavepoint(savepointer)"
}
