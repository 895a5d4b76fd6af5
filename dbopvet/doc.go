// Package dbopvet is an analyzer that reports transaction misuse in code
// that uses github.com/dbop-go/dbop: the mistakes no runtime check can
// catch in time. Its command, github.com/dbop-go/dbop/dbopvet/cmd/dbopvet,
// runs on its own (dbopvet ./...) and as go vet's tool (go vet
// -vettool=$(which dbopvet) ./...); package gclplugin makes it a
// golangci-lint module plugin.
//
// # What it knows
//
// The InTx family: InTx and Do of scopes, pgxdb, sqldb and gormdb, with
// the function they run given as a function literal, a named function or
// method, or a local variable holding a literal, and their ReadOnly
// option (and pgxdb's ShareCommits); and the user's own wrappers of them (a function that passes its
// function parameter on to InTx, or calls it with InTx's transaction, and
// whether that transaction may be read-only), across packages, as facts.
// The savepoint scopes: InSavepoint of scopes, pgxdb, sqldb and gormdb, and
// dbop.AroundTx. Operations (dbop.Op), their With lists, dbop.Chain,
// dbop.WithRetry and its options, followed through variables assigned
// once. Contexts marked by dbop.WithinTx, and the context a transaction
// scope hands over. The database handles of pgx (*pgxpool.Pool,
// *pgxpool.Conn, *pgx.Conn, pgx.Tx), database/sql (*sql.DB, *sql.Conn,
// *sql.Tx) and GORM (*gorm.DB, a pool or a transaction as it was made, or
// the one connection GORM's Connection hands its function).
//
// # The checks
//
// outside-tx: inside a function run by InTx or Do, a statement through a
// pool, a *sql.DB, a *gorm.DB or a connection from outside instead of the
// transaction handed in, or such a handle passed to a function where the
// transaction would fit (an interface the transaction implements, as
// sqlc's DBTX): it runs outside the transaction, commits on its own, stays
// applied when the transaction rolls back, and runs again on every retry.
// The same check reports a transaction from outside: a statement on a
// pgx.Tx, a *sql.Tx or a *gorm.DB the analyzer knows is a transaction that
// is not the one handed in but one begun by hand outside the function (tx,
// err := pool.Begin(ctx), db.BeginTx(ctx, nil), gdb.Begin()) or handed in
// by an enclosing InTx (a nested InTx whose function uses the outer
// transaction), and a savepoint scope built on such a transaction
// (InSavepoint(outerTx) in a With list inside the function): the statement
// runs in the outer transaction, stays applied when the inner one rolls
// back, and runs again on every retry of it.
//
// ends-tx: such a function committing or rolling back the transaction it
// was handed (tx.Commit, a deferred tx.Rollback, tx.Exec("COMMIT"), or a
// function that does it, known across packages as a fact): the scope ends
// the transaction itself, and its own COMMIT then fails.
//
// retry-in-tx: a dbop.WithRetry in the With list of an operation whose
// attempt runs work on a transaction begun by hand (tx, err :=
// pool.Begin(ctx)), by GORM's Transaction (the tx of
// db.Transaction(func(tx *gorm.DB) error { … }), which hands its function
// no context) or handed in by InTx — statements in its function, in
// the steps of a Then or an All, or a savepoint scope on the transaction —,
// run with a context that is not marked: derived from neither
// dbop.WithinTx nor the context a transaction scope handed in
// (context.Background(), t.Context(), the caller's context). Without the
// mark the retry cannot tell that it runs inside the transaction, not
// around the code that begins it; only a savepoint scope listed after the
// retry in the same With (a Chain there included) tells it, and keeps the
// check silent. Reported: a retry with no savepoint scope inside it, which
// after a deadlock or a serialization failure runs the next attempt inside
// the doomed transaction; and a retry whose attempt reaches savepoint
// scopes on the transaction only elsewhere — in a With of their own inside
// the retry's, in a step of a Then or an All, in the function of an Op of
// your own —, each of which covers only its own step: after a deadlock,
// which ends the transaction on MySQL and MariaDB, the retry runs the work
// again, each statement then committed on its own.
//
// autocommit-retry: an INSERT, UPDATE or DELETE (the constant text of the
// statement, in any case, after white space and comments) through a pool,
// a *sql.DB or a *gorm.DB known to be a pool, in an operation decorated
// with a dbop.WithRetry not marked dbop.Idempotent(): if the answer is
// lost, the retry may apply the write twice.
//
// retry-commits: in an operation decorated with a dbop.WithRetry not
// marked dbop.Idempotent(), a function that runs a transaction scope
// (X.Run(ctx) of an InTx or Do, a call of a wrapper of them, or a call of
// a function that runs one that writes as a statement of its own and
// returns its error, such as a repository method) after another one
// committed, or one inside a for or range loop: if the later
// transaction fails with an error the retry acts on, the retry runs the
// whole function again, and the transaction that committed is applied
// twice. dbop.Then and dbop.All refuse to run a step that committed again;
// the runtime cannot see into the operation's own function. A transaction
// counts as the first only when the analyzer sees its function write (a
// statement whose constant text begins with INSERT, UPDATE or DELETE, or
// a GORM Create, Save, Update… or Delete, there or in a function it
// calls) and no ReadOnly() option; the later one, only when its error
// reaches the function's return (returned, or assigned to a variable a
// return uses). Nor do transactions count in branches that exclude each
// other, in a branch of an if or a case the later one is not in, after a
// return, on the path taken when the first one failed (if err != nil,
// the cases of a switch after case err == nil, first() == nil || …), in
// a function literal, deferred or started as a goroutine, in a loop that
// ends when its transaction succeeds (a retry written by hand), or on a
// path that leaves the loop right after it.
//
// then-ctx: a step of dbop.Then, a function literal passed as its f,
// whose context parameter is blank (_), unnamed or never used, and that
// runs its work with another context (the caller's, context.Background(),
// t.Context()) and is known to commit a transaction that writes:
// X.Run(ctx) of an InTx or Do with no ReadOnly option, every option known
// and a function seen to write (through With lists, variables assigned
// once and a function of the package that returns it), or a call, with
// that context as its first argument, of a wrapper of InTx with a
// function that writes or of a function that runs a transaction that
// writes. Then counts what a step commits through the context it hands
// the step, and a retry around the Then refuses to run a committed step
// again (dbop.ErrAlreadyCommitted); a step that runs its work with
// another context escapes the count, and a retry would run the committed
// step again (with no retry in sight, the message says so as a
// condition). A parameter used anywhere in the step, even in one call
// among others, keeps the step silent; so does work in a function literal
// inside the step (run when, and with the context, its caller decides) or
// started as a goroutine, work run with the context of a transaction
// (handed in by a scope, or marked by dbop.WithinTx: dbop counts the
// savepoints a step releases into the transaction the Then runs in), an
// operation that is no transaction, a read-only one, one whose function
// the analyzer does not see write, or one with a savepoint scope or a
// decorator it cannot see into in its With list, a call of a function the
// analyzer does not see run a transaction that writes, and a step that is
// a named function or a method value.
//
// one-shot: a source that can be used up once — a pgx.CopyFromSource
// given to CopyFrom of pgx, a *pgx.Batch given to SendBatch, an io.Reader
// given to CopyFrom of pgconn — held by a variable declared outside a
// function that a dbop.WithRetry may run more than once, never assigned
// inside it, and used up inside it. The function is the one an InTx or Do
// (or a wrapper of them) runs, when a dbop.WithRetry is in the With lists
// of that operation, or the function of an operation of one's own
// decorated with one (a savepoint step included), function literals it
// runs included. The first attempt uses the source up: a retry copies
// nothing and commits, reporting success with no rows written, or, for a
// batch, whose statements pgx prepared on the first attempt's connection,
// fails with 26000. A source of the user's own type (which may start
// over), a reader the function rewinds (Seek, Reset), and a retry given
// dbop.MaxAttempts(1) are not reported. So is a GORM model, a struct with
// a BeforeCreate or AfterCreate hook, held by such a variable and saved
// inside the function by (*gorm.DB).Save: GORM writes the key the first
// attempt got back into it, and a retry's Save takes it for an update,
// updates no row and inserts it with hooks skipped (docs/backends.md
// §9.9), so the hook runs on no attempt that commits.
//
// tx-on-busy-conn: an InTx or Do of sqldb, gormdb or pgxdb (or a wrapper
// of one whose database is one of its parameters, known across packages as
// a fact) given a connection — a *sql.Conn, a *pgxpool.Conn, a *pgx.Conn,
// or the *gorm.DB that GORM's Connection hands its function — on which the
// same function began a transaction by hand (tx, err := conn.BeginTx(ctx,
// nil), tx := c.Begin()) that is still open at the call. database/sql and
// pgx send the scope's BEGIN on the same server session: MySQL and MariaDB
// commit the open transaction at START TRANSACTION, PostgreSQL ignores the
// second BEGIN, and the scope's ROLLBACK then undoes the caller's work and
// its COMMIT commits it (pgxdb refuses such a connection at run time;
// sqldb and gormdb cannot tell). The fix: run the step in a savepoint of
// the transaction (InSavepoint(tx) in its With), or pass the pool. A
// transaction begun on a pool, or on a *gorm.DB that is not a
// Connection's, is not reported: the scope begins on another connection.
// Only a transaction certainly open is reported, and only where the
// operation is run as it is built (sqldb.Do(…).With(…).Run(ctx), or a
// wrapper that runs it itself; one built and run later is not): begun in
// the same function, before the call, in a block that holds it (not in a
// branch, not in a function literal), kept in a variable, on a connection
// held by a local variable or a parameter (not a field) not assigned in
// between. Whatever may end it on a path that goes on to the call keeps
// the check silent, even in one branch of an if: its Commit or Rollback
// (not a deferred one, which runs after the call, nor one in a block that
// then returns), a COMMIT or ROLLBACK statement on it or on the
// connection, a statement on either whose text is not a constant, a
// function known to end it, the connection closed or released, or the
// transaction passed to a function value or an interface method, stored,
// or used in a way the analyzer does not follow. It does not see a
// transaction begun by pgx.BeginFunc or GORM's Transaction around the
// call, a BEGIN sent as a statement, a call inside a function literal
// below the Begin, or a *gorm.DB opened on a connection of the user's.
//
// shared-settings: inside a function run by an InTx or Do of pgxdb given
// pgxdb.ShareCommits() among its arguments (directly, or through a
// variable assigned once; not through a slice passed as opts...), or by a
// wrapper of such a call (known across packages as a fact), a statement on
// the transaction handed in that changes the transaction's settings: SET
// LOCAL, SET TRANSACTION, SET CONSTRAINTS, or a call of set_config whose
// third argument is the constant true (the constant text of the
// statement, any of the statements it holds). The transaction is shared
// with other operations' attempts, each in a savepoint: unless the
// attempt is rolled back, the setting holds for the attempts that run
// after it in the same transaction. The fix: the limit as an
// option (pgxdb.LockTimeout, pgxdb.StatementTimeout, pgxdb.Isolation),
// which every attempt that shares the transaction has, or no ShareCommits
// for that operation. SET without LOCAL and SET SESSION (the session's
// settings), a set_config whose third argument is not a constant, and a
// statement sent by a helper the function calls are not reported.
//
// # Precision first
//
// A finding is reported only where the analyzer sees every fact it rests
// on; where it cannot see one, it stays silent. It does not report a
// *gorm.DB it cannot tell from a transaction (a parameter that is not the
// one the transaction was begun on, a struct field), a statement on the
// connection the transaction was begun on, a transaction or a context
// from a parameter whose caller it cannot see, a decorator, a retry
// option or a transaction option it cannot see into, a function literal
// kept for after the transaction (returned, or stored outside the
// function), a statement text that is not a constant, or a write that
// does not begin with INSERT, UPDATE or DELETE (WITH … INSERT).
//
// # Silencing a finding
//
// A comment //dbopvet:ignore followed by a reason, on the line of a
// finding or on the line before, silences it:
//
//	//dbopvet:ignore the audit log is another database, and keeps failed attempts on purpose
//	_, err := audit.Exec(ctx, "INSERT INTO attempts VALUES (now())")
//
// A directive without a reason is itself reported.
package dbopvet
