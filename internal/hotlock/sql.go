package hotlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Tx is what [Take] runs the lock's statements on: one transaction, through
// whatever driver API the scope has ([SQL] adapts database/sql's).
type Tx interface {
	QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error }
	Exec(ctx context.Context, query string, args ...any) error
}

// SQLTx is a transaction of database/sql: a *sql.Tx, or GORM's connection
// pool of one.
type SQLTx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SQL adapts a database/sql transaction to [Tx].
func SQL(tx SQLTx) Tx { return sqlTx{tx} }

type sqlTx struct{ tx SQLTx }

func (t sqlTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(dst ...any) error } {
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t sqlTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

// Step is what the scope does after [Take].
type Step int

const (
	// Held: the lock is held; run the attempt in the transaction.
	Held Step = iota
	// Again: the lock was waited for in a transaction whose snapshot
	// predates the holder's commit (PostgreSQL, REPEATABLE READ or
	// SERIALIZABLE): roll it back, begin a new one and take the lock
	// again.
	Again
)

// waited is how long a locking read of MySQL's lock row must take for the
// scope to report that another transaction held it: InnoDB does not say
// whether a lock was waited for, and an uncontended read of one row takes
// well under a millisecond on a local server.
const waited = 2 * time.Millisecond

// Take takes r's lock in tx, as the first statements of the
// transaction: on PostgreSQL (postgres true) the advisory lock, tried
// without waiting and then waited for; on MySQL and MariaDB the lock
// table's row, added the first time. It records on r what it did. An
// error is a statement's, and the caller rolls tx back; sql.ErrNoRows
// means the lock row could not be added.
func Take(ctx context.Context, tx Tx, postgres bool, r *Request) (Step, error) {
	if postgres {
		var got bool
		var isolation string
		if err := tx.QueryRow(ctx, PostgresTry, r.Key).Scan(&got, &isolation); err != nil {
			return Held, err
		}
		if got {
			r.Took()
			if isolation == "read committed" {
				r.InPlace()
			}
			return Held, nil
		}
		r.Waited()
		if err := tx.Exec(ctx, PostgresWait, r.Key); err != nil {
			return Held, err
		}
		if isolation != "read committed" {
			return Again, nil
		}
		r.Took()
		r.InPlace()
		return Held, nil
	}
	for added := false; ; added = true {
		start := time.Now()
		var id int64
		err := tx.QueryRow(ctx, MySQLLock, r.Key).Scan(&id)
		if err == nil {
			r.Took()
			r.InPlace()
			if time.Since(start) > waited {
				r.Waited()
			}
			return Held, nil
		}
		if !errors.Is(err, sql.ErrNoRows) || added {
			return Held, err
		}
		if err := tx.Exec(ctx, MySQLAdd, r.Key); err != nil {
			return Held, err
		}
	}
}

// Scope is what [Begin] needs of an adapter's transaction scope.
type Scope[T any] struct {
	// Begin begins one attempt's transaction.
	Begin func() (T, error)
	// Tx is the transaction's statements, for [Take].
	Tx func(T) Tx
	// Rollback rolls back a transaction the attempt will not run in;
	// Begin bounds it by RollbackTimeout, on a context the attempt's end
	// does not cancel.
	Rollback        func(ctx context.Context, t T) error
	RollbackTimeout time.Duration
	// Retryable reports whether the scope's classifier retries an error.
	// An error of the lock's statements that it does not retry (no lock
	// function, 42883; no lock table, 1146), or a lock row that could not
	// be added (sql.ErrNoRows), means the server has no such lock: the
	// scope then goes on uncoordinated, and Off remembers it for later
	// transactions.
	Retryable func(error) bool
	Off       *atomic.Bool
	Postgres  bool
	// Name prefixes the error of a wait that failed: "pgxdb", "sqldb", ….
	Name string
}

// Begin begins an attempt's transaction with s and, when ctx carries a
// request no scope has claimed, takes the lock in it ([Take]), beginning
// again while Take says so. A wait that failed (a lock or statement
// timeout, a lost connection) is returned for the retry to judge.
func Begin[T any](ctx context.Context, s Scope[T]) (T, error) {
	t, err := s.Begin()
	if err != nil || s.Off.Load() {
		return t, err
	}
	req := From(ctx)
	if req == nil || !req.Claim() {
		return t, nil
	}
	for {
		step, err := Take(ctx, s.Tx(t), s.Postgres, req)
		if err == nil && step == Held {
			return t, nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.RollbackTimeout)
		_ = s.Rollback(rctx, t)
		cancel()
		if err != nil {
			if !s.Retryable(err) || errors.Is(err, sql.ErrNoRows) {
				s.Off.Store(true)
				return s.Begin()
			}
			var zero T
			return zero, fmt.Errorf("%s: waiting for the hot spot's lock: %w", s.Name, err)
		}
		if t, err = s.Begin(); err != nil {
			return t, err
		}
	}
}
