package dboptest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
)

// ErrTxDone is returned by a statement run on a [Tx] after its COMMIT or
// ROLLBACK, successful or not.
var ErrTxDone = errors.New("dboptest: transaction has already been committed or rolled back")

// ErrNoSavepoint is matched by the error of ROLLBACK TO SAVEPOINT or RELEASE
// SAVEPOINT naming a savepoint that does not exist (any more).
var ErrNoSavepoint = errors.New("dboptest: no such savepoint")

// Recorder is a fake database that records, as strings, the statements run
// in the transactions it begins, and fails the ones a test scripts with
// [Recorder.FailNext]. Its [Recorder.Begin] method is a
// [scopes.BeginFunc] for [scopes.InTx], and its transactions ([*Tx]) are
// [scopes.Tx] and [scopes.Savepointer] values:
//
//	var rec dboptest.Recorder
//	rec.FailNext("COMMIT", nil, errNetwork) // the second COMMIT fails
//	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
//		return 1, tx.Exec(ctx, "INSERT a")
//	})
//	…
//	want := []string{"BEGIN", "INSERT a", "COMMIT"}
//	if diff := cmp.Diff(want, rec.Log()); diff != "" { … }
//
// The statements it logs are BEGIN (or BEGIN READ ONLY), COMMIT, ROLLBACK,
// SAVEPOINT name, ROLLBACK TO SAVEPOINT name, RELEASE SAVEPOINT name, and
// whatever the operation passes to [Tx.Exec]. A statement that fails is
// logged too: it was sent, and the server answered with an error. Like a
// driver, a Recorder does not send a statement whose context is already
// done: it is not logged, and the context's error is returned.
//
// By default a failed statement leaves the transaction as it was, as
// SQLite and MySQL do after most errors. Set [Recorder.Aborts] to have it
// abort the transaction, as PostgreSQL does. A Recorder does not model a
// server that ends the transaction after an error (MySQL and MariaDB
// after a deadlock, SQLite after an interrupted write, where later
// statements commit one by one): script what such a server answers next,
// or test that code against the server itself.
//
// The zero Recorder is ready to use. A Recorder is safe for concurrent use;
// the statements of concurrent transactions are interleaved in one log.
type Recorder struct {
	// Aborts makes a failed statement abort its transaction, as on
	// PostgreSQL: until ROLLBACK TO SAVEPOINT of a savepoint set before
	// the failure, every later statement is logged and fails with
	// SQLSTATE 25P02 (in_failed_sql_transaction), and a COMMIT ends the
	// transaction and fails with [pgx.ErrTxCommitRollback], which is
	// what pgx reports for the ROLLBACK the server answers. Code that
	// catches an error and goes on in the same transaction ("insert,
	// else update") then fails against the Recorder as it would against
	// the server.
	Aborts bool

	mu    sync.Mutex
	log   []string
	fails []*failure
}

// failure is the script of one FailNext call.
type failure struct {
	stmt string
	errs []error
}

// Tx is a fake transaction begun by a [Recorder]. It implements [scopes.Tx]
// and [scopes.Savepointer]. It keeps track of its savepoints, as a server
// does: ROLLBACK TO SAVEPOINT keeps the savepoint and drops the later ones,
// RELEASE SAVEPOINT drops it and the later ones, and naming a savepoint that
// does not exist fails with [ErrNoSavepoint]. After COMMIT or ROLLBACK,
// successful or not, every statement fails with [ErrTxDone] without being
// logged.
type Tx struct {
	rec        *Recorder
	done       bool     // guarded by rec.mu
	savepoints []string // guarded by rec.mu
	// aborted: a statement failed and Recorder.Aborts is set; valid is
	// how many of savepoints were set before the failure. Guarded by
	// rec.mu.
	aborted bool
	valid   int
}

// Begin begins a transaction, logging "BEGIN", or "BEGIN READ ONLY" when
// opts.ReadOnly is set. It has the type [scopes.BeginFunc][*Tx].
func (r *Recorder) Begin(ctx context.Context, opts scopes.BeginOptions) (*Tx, error) {
	stmt := "BEGIN"
	if opts.ReadOnly {
		stmt = "BEGIN READ ONLY"
	}
	if err := r.exec(ctx, nil, stmt); err != nil {
		return nil, err
	}
	return &Tx{rec: r}, nil
}

// FailNext scripts failures: the next len(errs) times stmt is run, spelled
// exactly as it appears in the log, it fails with the next of errs in turn.
// A nil entry lets that run succeed, so
//
//	rec.FailNext("COMMIT", nil, err)
//
// makes the second COMMIT fail with err. Scripts for the same statement are
// used in the order they were given.
func (r *Recorder) FailNext(stmt string, errs ...error) {
	if len(errs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails = append(r.fails, &failure{stmt: stmt, errs: slices.Clone(errs)})
}

// Log returns a copy of the statements logged so far, in the order they ran.
func (r *Recorder) Log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// Exec runs stmt, an opaque statement such as "INSERT a", in the
// transaction: it is logged, and fails if a [Recorder.FailNext] script says
// so.
func (tx *Tx) Exec(ctx context.Context, stmt string) error {
	return tx.rec.exec(ctx, tx, stmt)
}

// Commit logs "COMMIT" and ends the transaction, even when it fails.
func (tx *Tx) Commit(ctx context.Context) error {
	return tx.rec.exec(ctx, tx, "COMMIT")
}

// Rollback logs "ROLLBACK" and ends the transaction, even when it fails.
func (tx *Tx) Rollback(ctx context.Context) error {
	return tx.rec.exec(ctx, tx, "ROLLBACK")
}

// Savepoint logs "SAVEPOINT name".
func (tx *Tx) Savepoint(ctx context.Context, name string) error {
	return tx.rec.exec(ctx, tx, "SAVEPOINT "+name)
}

// RollbackTo logs "ROLLBACK TO SAVEPOINT name".
func (tx *Tx) RollbackTo(ctx context.Context, name string) error {
	return tx.rec.exec(ctx, tx, "ROLLBACK TO SAVEPOINT "+name)
}

// Release logs "RELEASE SAVEPOINT name".
func (tx *Tx) Release(ctx context.Context, name string) error {
	return tx.rec.exec(ctx, tx, "RELEASE SAVEPOINT "+name)
}

// exec logs stmt, run in tx (nil for BEGIN), and applies its effect on tx.
func (r *Recorder) exec(ctx context.Context, tx *Tx, stmt string) error {
	if err := ctx.Err(); err != nil {
		return err // a driver does not send it
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if tx != nil && tx.done {
		return fmt.Errorf("%s: %w", stmt, ErrTxDone)
	}
	r.log = append(r.log, stmt)
	err := r.scripted(stmt)
	if tx == nil {
		return err
	}
	if stmt == "COMMIT" || stmt == "ROLLBACK" {
		if err == nil && stmt == "COMMIT" && tx.aborted {
			err = pgx.ErrTxCommitRollback
		}
		tx.done = true
		tx.savepoints = nil
		return err
	}
	if err == nil && tx.aborted {
		if name, ok := strings.CutPrefix(stmt, "ROLLBACK TO SAVEPOINT "); ok {
			if !slices.Contains(tx.savepoints[:tx.valid], name) {
				return fmt.Errorf("%w: %s", ErrNoSavepoint, name) // 3B001 on the server
			}
			tx.aborted = false
			return tx.truncate(name, 1)
		}
		return fmt.Errorf("%s: %w", stmt, PgError("25P02", "current transaction is aborted, commands ignored until end of transaction block"))
	}
	if err == nil {
		if name, ok := strings.CutPrefix(stmt, "SAVEPOINT "); ok {
			tx.savepoints = append(tx.savepoints, name)
		} else if name, ok := strings.CutPrefix(stmt, "ROLLBACK TO SAVEPOINT "); ok {
			err = tx.truncate(name, 1)
		} else if name, ok := strings.CutPrefix(stmt, "RELEASE SAVEPOINT "); ok {
			err = tx.truncate(name, 0)
		}
	}
	if err != nil && r.Aborts && !tx.aborted {
		tx.aborted, tx.valid = true, len(tx.savepoints)
	}
	return err
}

// truncate drops the savepoints after the last one named name, keeping keep
// (0 or 1) of it.
func (tx *Tx) truncate(name string, keep int) error {
	for i, sp := range slices.Backward(tx.savepoints) {
		if sp == name {
			tx.savepoints = tx.savepoints[:i+keep]
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrNoSavepoint, name)
}

// scripted returns the scripted outcome of running stmt: nil, or the error a
// FailNext script assigns to it. r.mu must be held.
func (r *Recorder) scripted(stmt string) error {
	for i, f := range r.fails {
		if f.stmt != stmt {
			continue
		}
		err := f.errs[0]
		f.errs = f.errs[1:]
		if len(f.errs) == 0 {
			r.fails = slices.Delete(r.fails, i, i+1)
		}
		return err
	}
	return nil
}
