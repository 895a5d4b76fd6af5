package resolve

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/txmark"
)

// SavepointTx is how SavepointLimits runs statements in the caller's
// transaction, on its connection, and what it sets there.
type SavepointTx struct {
	// Who is the adapter's name, which starts the errors of the statements
	// SavepointLimits runs.
	Who string
	// Exec runs a statement without arguments (MySQL, MariaDB).
	Exec func(ctx context.Context, query string) error
	// Query runs a statement with text arguments and returns the first
	// column of its rows, as text (PostgreSQL).
	Query func(ctx context.Context, query string, args ...any) ([]string, error)
	// Placeholder returns the driver's placeholder for the i-th argument,
	// from 1; nil is PostgreSQL's $i.
	Placeholder func(i int) string
	// Usable, when not nil, reports whether the transaction can still run
	// statements; after a failed step that left it aborted, the restore is
	// not sent (PostgreSQL).
	Usable func() bool
	// Names and Millis are PostgreSQL settings given as options, each name
	// once, their values in milliseconds: set for every attempt, lowered
	// to the limits the deadline leaves (PostgresLimits).
	Names  []string
	Millis []int64
}

// SavepointLimits runs next, one attempt of a step inside a savepoint (a
// database/sql adapter's InSavepoint chains it inside scopes.InSavepoint),
// under the server-side limits ServerLimits derives from ctx, and sets the
// earlier values back after it, so that a deadline on the step's attempt
// (a dbop.WithTimeout after the retry) is met by the server failing the
// statement, which keeps the connection and the caller's transaction,
// instead of by the driver closing the connection:
//
//   - PostgreSQL: statement_timeout and lock_timeout (PostgresLimits), set
//     with set_config(…, true), which is SET LOCAL, by the statement that
//     reads the values they replace (PostgresSwapSQL). A failed attempt's
//     ROLLBACK TO SAVEPOINT undoes them (the restore, in a transaction the
//     failure aborted, fails, and is ignored); after a successful one they
//     are set back, as SET LOCAL inside a savepoint survives RELEASE.
//   - MySQL and MariaDB: the session settings of MySQLSessionLimits, the
//     values they replace kept in user variables tagged with the
//     savepoint's depth, so that neither the ones InTx keeps nor an outer
//     savepoint's are overwritten. Session settings are not
//     transactional: they are set back after every attempt.
//   - SQLite, and any other family: nothing; a deadline interrupts the
//     statement and keeps the connection.
//
// With no deadline (nor a dbop.HotSpot server deadline) on ctx it only
// calls next: no statement, no allocation. The restore runs with a
// context that ignores ctx's cancellation, bounded by restoreTimeout, so
// that an attempt that used up its deadline still sets the values back. A
// failed restore after a successful step is returned as the step's error.
func SavepointLimits(ctx context.Context, family sqldialect.Family, tx SavepointTx, restoreTimeout time.Duration, next func(context.Context) error) error {
	if family != sqldialect.Postgres && family != sqldialect.MySQL && family != sqldialect.MariaDB {
		return next(ctx)
	}
	start := time.Now()
	stmt, lock, ok := ServerLimits(ctx)
	if !ok && (family != sqldialect.Postgres || len(tx.Names) == 0) {
		return next(ctx)
	}
	set := func(stmt, lock time.Duration, derived bool) (restore func(context.Context) error, err error) {
		if family == sqldialect.Postgres {
			names, millis := tx.Names, tx.Millis
			if derived {
				names, millis = PostgresLimits(names, millis, stmt, lock)
			}
			values := make([]any, len(millis))
			for i, ms := range millis {
				values[i] = strconv.FormatInt(ms, 10)
			}
			q := PostgresSwapSQL(names, tx.Placeholder)
			prev, err := tx.Query(ctx, q, values...)
			if err != nil {
				return nil, err
			}
			if len(prev) != len(names) {
				return nil, fmt.Errorf("set_config returned %d rows for %d settings", len(prev), len(names))
			}
			return func(ctx context.Context) error {
				args := make([]any, len(prev))
				for i, v := range prev {
					args[i] = v
				}
				_, err := tx.Query(ctx, q, args...)
				return err
			}, nil
		}
		tag := "sp" + strconv.Itoa(txmark.SavepointDepth(ctx)) + "_"
		setSQL, restoreSQL := MySQLSessionLimits(family == sqldialect.MariaDB, min(stmt, lock), tag)
		if err := tx.Exec(ctx, setSQL); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return tx.Exec(ctx, restoreSQL) }, nil
	}
	restore, err := set(stmt, lock, ok)
	if err != nil {
		return fmt.Errorf("%s: setting the step's server limits: %w", tx.Who, err)
	}
	// The limits were computed before the round trip that set them, and a
	// later statement's limit starts when the server reads it, that round
	// trip later: the margin ServerLimits keeps before ctx's deadline
	// shrinks by its length. When that ate more than a quarter of the
	// margin (a slow link, a busy server), they are set back and set once
	// more, computed now and less that length, which the next round trip
	// takes again. On a local server the round trip is a fraction of a
	// millisecond, and this does not happen.
	if deadline, has := ctx.Deadline(); has && ok {
		if rt := time.Since(start); rt > (deadline.Sub(start)-stmt)/4 {
			if err := undo(ctx, restore, restoreTimeout); err != nil {
				return fmt.Errorf("%s: setting the step's server limits again: %w", tx.Who, err)
			}
			if stmt, lock, ok := ServerLimitsLess(ctx, rt); ok {
				if restore, err = set(stmt, lock, true); err != nil {
					return fmt.Errorf("%s: setting the step's server limits again: %w", tx.Who, err)
				}
			} else {
				return next(ctx) // too little time left for a limit: the deadline ends the step
			}
		}
	}
	err = next(ctx)
	if err != nil && tx.Usable != nil && !tx.Usable() {
		// The failed statement aborted the transaction (or the connection
		// is gone): the savepoint rollback, or the end of the
		// transaction, undoes the settings.
		return err
	}
	if rerr := undo(ctx, restore, restoreTimeout); rerr != nil && err == nil {
		return fmt.Errorf("%s: restoring the server limits after the step: %w", tx.Who, rerr)
	}
	return err
}

// undo runs restore with a context that ignores ctx's cancellation, bounded
// by timeout, so that an attempt that used up its deadline still sets the
// earlier values back.
func undo(ctx context.Context, restore func(context.Context) error, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	return restore(rctx)
}

// PostgresSwapSQL returns the statement that sets each of names to its
// argument (text, in the order of names; placeholder(i) writes the i-th,
// nil for $i) for the rest of the transaction, as SET LOCAL does, and
// returns each one's value before, in the same order: run with the values
// it returned, it sets them back. The text depends on the names only, so a
// driver that prepares it prepares it once. OFFSET 0 keeps the subquery
// from being flattened into the outer query, so that current_setting is
// evaluated by the subquery scan before the outer projection evaluates
// set_config. The names are distinct, so one row's set_config cannot
// change another row's earlier value.
func PostgresSwapSQL(names []string, placeholder func(i int) string) string {
	if placeholder == nil {
		placeholder = func(i int) string { return "$" + strconv.Itoa(i) }
	}
	rows := make([]string, len(names))
	for i, name := range names {
		rows[i] = fmt.Sprintf("(%d, '%s', %s::text)", i+1, name, placeholder(i+1))
	}
	return `SELECT s.prev, set_config(s.name, s.value, true) FROM (
	SELECT u.ord, u.name, u.value, current_setting(u.name) AS prev
	FROM (VALUES ` + strings.Join(rows, ", ") + `) AS u(ord, name, value)
	OFFSET 0
) s ORDER BY s.ord`
}

// FirstColumn returns the first column of rows, as text, and closes them:
// a database/sql adapter's SavepointTx.Query.
func FirstColumn(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	dest := make([]any, len(cols))
	var first string
	dest[0] = &first
	for i := 1; i < len(dest); i++ {
		dest[i] = new(sql.RawBytes)
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, first)
	}
	return out, rows.Err()
}
