package hotlock

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// SQLTx is what a transaction scope over database/sql runs the lock's
// statements on: a *sql.Tx, or GORM's connection pool of one.
type SQLTx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Step is what the scope does after [TakeSQL].
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

// TakeSQL takes r's lock in tx, as the first statements of the
// transaction: on PostgreSQL (postgres true) the advisory lock, tried
// without waiting and then waited for; on MySQL and MariaDB the lock
// table's row, added the first time. It records on r what it did. An
// error is a statement's, and the caller rolls tx back; sql.ErrNoRows
// means the lock row could not be added.
func TakeSQL(ctx context.Context, tx SQLTx, postgres bool, r *Request) (Step, error) {
	if postgres {
		var got bool
		var isolation string
		if err := tx.QueryRowContext(ctx, PostgresTry, r.Key).Scan(&got, &isolation); err != nil {
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
		if _, err := tx.ExecContext(ctx, PostgresWait, r.Key); err != nil {
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
		err := tx.QueryRowContext(ctx, MySQLLock, r.Key).Scan(&id)
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
		if _, err := tx.ExecContext(ctx, MySQLAdd, r.Key); err != nil {
			return Held, err
		}
	}
}
