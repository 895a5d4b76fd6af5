package dbopvet

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// Analyzer reports transaction misuse in code that uses dbop: see the
// package documentation.
var Analyzer = &analysis.Analyzer{
	Name:      "dbopvet",
	Doc:       doc,
	URL:       "https://pkg.go.dev/github.com/dbop-go/dbop/dbopvet",
	Run:       run,
	FactTypes: []analysis.Fact{new(txFuncFact), new(endsTxFact), new(writesFact), new(commitsTxFact)},
}

const doc = `report transaction misuse in code that uses dbop

dbopvet finds the mistakes no runtime check can catch in time:

  - outside-tx: inside a function run by InTx or Do (of scopes, pgxdb,
    sqldb or gormdb), a statement through a pool, *sql.DB, *gorm.DB or
    connection from outside instead of the transaction handed in, or on
    another transaction begun by hand (or by GORM's Transaction) or handed
    in by an enclosing InTx;
  - ends-tx: such a function committing or rolling back the transaction it
    was handed;
  - retry-in-tx: a dbop.WithRetry around work on a transaction begun by
    hand (or by GORM's Transaction, or handed in by InTx), run with a
    context not marked by
    dbop.WithinTx, with no savepoint scope listed after it in the same With
    (one in a step of a Then or an All, in an Op of your own or in another
    With covers only its own step);
  - autocommit-retry: an INSERT, UPDATE or DELETE through a pool, *sql.DB
    or *gorm.DB in an operation decorated with dbop.WithRetry that is not
    marked dbop.Idempotent();
  - retry-commits: in such an operation, a transaction scope (InTx, Do or
    a wrapper) run after another that committed, or inside a loop: when
    the later one fails, the retry applies the committed one again;
  - then-ctx: a step of dbop.Then, a function literal, that ignores the
    context Then hands it (_, unnamed or unused) and runs its work with
    another one: Then cannot count what it commits, and a retry around the
    Then runs the committed step again;
  - one-shot: a pgx.CopyFromSource, a *pgx.Batch or an io.Reader given to
    pgconn's CopyFrom, built outside a function a dbop.WithRetry may run
    more than once (an operation's, or the one its InTx or Do runs) and
    used up inside it: a retry copies nothing and commits, or fails; and a
    GORM model with a create hook, built outside such a function and saved
    inside it by Save: a retry inserts it with the hook skipped;
  - tx-on-busy-conn: an InTx or Do (of sqldb, gormdb, pgxdb or a wrapper)
    given a connection (*sql.Conn, *pgxpool.Conn, *pgx.Conn, a GORM
    Connection's *gorm.DB) on which the same function began a transaction
    by hand that is still open: the scope begins again on the same
    session, where MySQL and MariaDB commit yours and PostgreSQL ignores
    the second BEGIN; use InSavepoint on your transaction, or the pool;
  - shared-settings: inside a function run by a pgxdb InTx or Do given
    pgxdb.ShareCommits(), whose transaction other operations' attempts
    share, a statement on it that changes the transaction's settings (SET
    LOCAL, set_config(…, true), SET TRANSACTION, SET CONSTRAINTS): it
    stays in force for the attempts after it; pass the limit as an option
    (pgxdb.LockTimeout, pgxdb.StatementTimeout) or drop ShareCommits.

A comment //dbopvet:ignore <reason> on the line of a finding, or on the
line before, silences it; the reason is required.`

// Categories of the findings, one per check.
const (
	catOutsideTx       = "outside-tx"
	catEndsTx          = "ends-tx"
	catRetryInTx       = "retry-in-tx"
	catAutocommitRetry = "autocommit-retry"
	catRetryCommits    = "retry-commits"
	catThenCtx         = "then-ctx"
	catOneShot         = "one-shot"
	catBusyConn        = "tx-on-busy-conn"
	catSharedSettings  = "shared-settings"
	catIgnore          = "ignore"
)

const ignoreDirective = "//dbopvet:ignore"

// checker is the state of one pass.
type checker struct {
	pass *analysis.Pass
	ix   *index

	txFuncs      map[ast.Node]*txFunc
	localTxFuncs map[*types.Func][]txParam
	localEndsTx  map[*types.Func]map[int]string
	// writesMemo and commitsMemo hold what is known of the package's
	// functions as ones that write, and ones that run a transaction that
	// writes (writes.go).
	writesMemo  map[ast.Node]int
	commitsMemo map[*ast.FuncDecl]int

	// ignores are the lines silenced by a //dbopvet:ignore comment, by file.
	ignores  map[string]map[int]bool
	reported map[token.Pos]bool
}

func run(pass *analysis.Pass) (any, error) {
	c := &checker{
		pass:         pass,
		ix:           newIndex(pass),
		localTxFuncs: map[*types.Func][]txParam{},
		localEndsTx:  map[*types.Func]map[int]string{},
		writesMemo:   map[ast.Node]int{},
		commitsMemo:  map[*ast.FuncDecl]int{},
		ignores:      map[string]map[int]bool{},
		reported:     map[token.Pos]bool{},
	}
	c.readIgnores()
	c.computeFacts()
	c.checkTxFuncs()
	c.checkOps()
	c.checkBusyConns()
	return nil, nil
}

// readIgnores collects the //dbopvet:ignore comments and reports those
// that give no reason.
func (c *checker) readIgnores() {
	for _, f := range c.pass.Files {
		for _, group := range f.Comments {
			for _, cm := range group.List {
				text, ok := strings.CutPrefix(cm.Text, ignoreDirective)
				if !ok || (text != "" && !strings.HasPrefix(text, " ") && !strings.HasPrefix(text, "\t")) {
					continue
				}
				pos := c.pass.Fset.Position(cm.Slash)
				lines := c.ignores[pos.Filename]
				if lines == nil {
					lines = map[int]bool{}
					c.ignores[pos.Filename] = lines
				}
				lines[pos.Line] = true
				if strings.TrimSpace(text) == "" {
					c.pass.Report(analysis.Diagnostic{
						Pos:      cm.Slash,
						Category: catIgnore,
						Message: "//dbopvet:ignore needs a reason: say why the finding does not apply, " +
							"as in //dbopvet:ignore the audit log is another database, on purpose",
					})
				}
			}
		}
	}
}

// report reports a finding at pos, unless a //dbopvet:ignore comment on
// its line or the line before silences it, or it was reported already.
func (c *checker) report(pos token.Pos, category, msg string) {
	if c.reported[pos] {
		return
	}
	c.reported[pos] = true
	p := c.pass.Fset.Position(pos)
	if lines := c.ignores[p.Filename]; lines[p.Line] || lines[p.Line-1] {
		return
	}
	c.pass.Report(analysis.Diagnostic{Pos: pos, Category: category, Message: msg})
}

// posLine returns "line N" for pos, with the file when it is another one
// than that of at.
func (c *checker) posLine(pos, at token.Pos) string {
	p, a := c.pass.Fset.Position(pos), c.pass.Fset.Position(at)
	if p.Filename != a.Filename {
		return fmt.Sprintf("%s:%d", shortFile(p.Filename), p.Line)
	}
	return fmt.Sprintf("line %d", p.Line)
}

func shortFile(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		return name[i+1:]
	}
	return name
}
