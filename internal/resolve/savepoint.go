package resolve

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/serverlimit"
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
	// Session is the step's transaction as its adapter's InTx records it
	// (txmark.State.SetSession): on MySQL and MariaDB the limits are set
	// only when it is the one InTx holds.
	Session any
	// Names and Millis are PostgreSQL settings given as options, each name
	// once, their values in milliseconds: set as given for every attempt,
	// lowered to the limits the context's deadline leaves (ServerLimits),
	// as before this scope derived limits of its own.
	Names  []string
	Millis []int64
}

// StepLimit returns the server-side limit a savepoint step's attempt
// derives from its context's deadline (hotlock.LimitFor: the time left less
// a margin), and ok, only when that deadline is the step attempt's own:
//
//   - in a transaction whose owner (InTx) derived its server limits from a
//     deadline (txmark.State's LimitsDeadline), a deadline earlier than
//     that one: a deadline no earlier is met by the limits the owner set
//     already;
//   - in a transaction the caller began, a deadline a dbop.WithTimeout
//     listed before the scope in the same pipeline set
//     (txmark.AttemptDeadline): the caller's own deadline, a request's,
//     would cost every step two statements, and save little, as the
//     caller's next statement meets it all the same.
//
// A dbop.HotSpot's server deadline is the owner's business, and a step
// never derives a limit from it alone, which late in an attempt would be
// the smallest one. It allocates nothing.
func StepLimit(ctx context.Context) (limit time.Duration, ok bool) {
	if !stepDeadline(ctx) {
		return 0, false
	}
	deadline, _ := ctx.Deadline()
	return hotlock.LimitFor(time.Until(deadline))
}

// stepDeadline reports whether ctx has a deadline that is the step
// attempt's own, as StepLimit says: one earlier than the deadline InTx
// derived its limits from; any, in InTx's transaction when InTx had none
// (the step's deadline was set inside the function InTx runs); in a
// transaction the caller began, a WithTimeout's around the scope.
func stepDeadline(ctx context.Context) bool {
	deadline, has := ctx.Deadline()
	if !has {
		return false
	}
	if st := txmark.StateOf(ctx); st != nil && st.Owned() {
		owner, has := st.LimitsDeadline()
		return !has || deadline.Before(owner)
	}
	return txmark.AttemptDeadline(ctx)
}

// SavepointLimits runs next, one attempt of a step inside a savepoint (an
// adapter's InSavepoint chains it inside scopes.InSavepoint), under the
// server-side limits StepLimit derives from ctx, and sets the earlier values
// back after it, so that a deadline on the step's attempt (a
// dbop.WithTimeout after the retry) is met by the server failing the
// statement, which keeps the connection and the caller's transaction,
// instead of by the driver closing the connection:
//
//   - PostgreSQL: statement_timeout and lock_timeout, set with
//     set_config(…, true), which is SET LOCAL, by the statement that reads
//     the values they replace (PostgresSwapSQL), each to the smaller of
//     the derived limit and the value in force (0 in force is none), which
//     the server computes, so that a lower limit of the user's is kept
//     (docs/backends.md §1.19). Settings given as options are set as
//     given, lowered to ServerLimits. A failed attempt's ROLLBACK TO
//     SAVEPOINT undoes them, and a doomed transaction's rollback does, so
//     nothing is sent after a failed or panicking attempt, which on an
//     aborted transaction would fail with 25P02 (§1.4); after a successful
//     one they are set back, as SET LOCAL inside a savepoint survives
//     RELEASE.
//   - MySQL and MariaDB, only in the transaction InTx holds the connection
//     of (txmark.State.Session): the session settings of MySQLSavepointLimits,
//     each the smaller of the derived limit and the value in force
//     (§3.16), the values they replace kept in user variables tagged with
//     the savepoint's depth, so that neither the ones InTx keeps nor an
//     outer savepoint's are overwritten. Session settings are not
//     transactional: they are set back however the attempt ends, a panic
//     included, before the step's error or panic leaves this function, and
//     so before the caller can end the transaction and return the
//     connection to a pool.
//   - SQLite, and any other family: nothing; a deadline interrupts the
//     statement and keeps the connection.
//
// Without a limit from StepLimit (nor, on PostgreSQL, settings given) it
// only calls next: no statement, no allocation. The restore runs with a
// context that ignores ctx's cancellation, bounded by restoreTimeout, so
// that an attempt that used up its deadline still sets the values back. A
// failed restore after a successful step is returned as the step's error.
func SavepointLimits(ctx context.Context, family sqldialect.Family, tx SavepointTx, restoreTimeout time.Duration, next func(context.Context) error) (err error) {
	pg := family == sqldialect.Postgres
	if !pg && family != sqldialect.MySQL && family != sqldialect.MariaDB {
		return next(ctx)
	}
	if !pg {
		// Session settings outlive the transaction. In one the caller
		// began, database/sql rolls it back by itself when the caller's
		// context ends, and puts the connection back in its pool, while
		// the step may still run or the restore fail on the ended
		// transaction: the step's limit would stay on the pooled
		// connection (found by a review). Only on the transaction InTx
		// holds the connection of, begun under a context no cancellation
		// ends, are they set: InTx records it (txmark.State.SetSession),
		// and the step's adapter names its own (tx.Session).
		if st := txmark.StateOf(ctx); st == nil || tx.Session == nil || st.Session() != tx.Session {
			return next(ctx)
		}
	}
	start := time.Now()
	limit, derive := StepLimit(ctx)
	if !derive && (!pg || len(tx.Names) == 0) {
		return next(ctx)
	}
	set := func(limit time.Duration, derive bool) (restore func(context.Context) error, err error) {
		if pg {
			return setPostgres(ctx, tx, limit, derive)
		}
		tag := "sp" + strconv.Itoa(txmark.SavepointDepth(ctx)) + "_"
		setSQL, restoreSQL := MySQLSavepointLimits(family == sqldialect.MariaDB, limit, tag)
		if err := tx.Exec(ctx, setSQL); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return tx.Exec(ctx, restoreSQL) }, nil
	}
	restore, err := set(limit, derive)
	if err != nil {
		return fmt.Errorf("%s: setting the step's server limits: %w", tx.Who, err)
	}
	// The limit was computed before the round trip that set it, and a
	// later statement's limit starts when the server reads it, that round
	// trip later: the margin StepLimit keeps before ctx's deadline shrinks
	// by its length. When that ate more than a quarter of the margin (a
	// slow link, a busy server), the values are set back and set once
	// more, computed now and less that length, which the next round trip
	// takes again. On a local server the round trip is a fraction of a
	// millisecond, and this does not happen.
	if deadline, has := ctx.Deadline(); has && derive {
		if rt := time.Since(start); rt > (deadline.Sub(start)-limit)/4 {
			if err := undo(ctx, restore, restoreTimeout); err != nil {
				return fmt.Errorf("%s: setting the step's server limits again: %w", tx.Who, err)
			}
			if limit, derive = StepLimit(ctx); !derive {
				return next(ctx) // too little time left for a limit: the deadline ends the step
			}
			if restore, err = set(max(limit-rt, hotlock.MinLimit), true); err != nil {
				return fmt.Errorf("%s: setting the step's server limits again: %w", tx.Who, err)
			}
		}
	}
	succeeded := false
	defer func() {
		if pg && (!succeeded || doomed(ctx)) {
			// A failed or panicking attempt: the scope's ROLLBACK TO
			// SAVEPOINT, or the end of a doomed transaction, undoes
			// set_config(…, true); a statement now would fail on an
			// aborted transaction (docs/backends.md §1.4). So after an
			// attempt that returned nil over a doom an inner step
			// recorded (a 40001 it swallowed): the owner's rollback
			// undoes them, and the doom, not a 25P02 of the restore, is
			// what the scope reports (found by a review).
			return
		}
		rerr := undo(ctx, restore, restoreTimeout)
		if rerr != nil && err == nil && !pg {
			err = fmt.Errorf("%s: restoring the server limits after the step: %w", tx.Who, rerr)
		}
		// On PostgreSQL a failed restore means the transaction is
		// aborted or gone (a statement of the step failed and its error
		// was swallowed): the scope's RELEASE SAVEPOINT, next, fails the
		// same way and reports it as it would without the limits, and
		// the transaction's end undoes them.
	}()
	err = next(ctx)
	succeeded = err == nil
	return err
}

// setPostgres sets the PostgreSQL settings of one attempt (SavepointLimits)
// and returns the function that sets the earlier values back.
func setPostgres(ctx context.Context, tx SavepointTx, limit time.Duration, derive bool) (restore func(context.Context) error, err error) {
	names, values := slices.Clone(tx.Names), make([]any, 0, len(tx.Names)+2)
	var least []bool
	stmt, lock, capped := ServerLimits(ctx)
	for i, name := range tx.Names {
		ms := tx.Millis[i]
		ceil := int64(-1)
		switch {
		case capped && name == "statement_timeout":
			ceil = max(int64(stmt/time.Millisecond), 1) // 0 would be no limit
		case capped && name == "lock_timeout":
			ceil = max(int64(lock/time.Millisecond), 1)
		}
		// A deadline more than about 24.8 days away: at most 2^31-1 ms, the
		// most PostgreSQL takes (docs/backends.md §1.18).
		ceil = min(ceil, serverlimit.PostgresMaxMillis)
		if ceil >= 0 && (ms == 0 || ms > ceil) {
			ms = ceil
		}
		values = append(values, strconv.FormatInt(ms, 10))
	}
	if derive {
		least = make([]bool, len(names), len(names)+2)
		ms := max(int64(limit/time.Millisecond), 1) // rounded down, the margin whole; 0 would be no limit
		for _, name := range [...]string{"statement_timeout", "lock_timeout"} {
			if !slices.Contains(names, name) {
				names = append(names, name)
				values = append(values, strconv.FormatInt(ms, 10))
				least = append(least, true)
			}
		}
	}
	prev, err := tx.Query(ctx, PostgresSwapSQL(names, least, tx.Placeholder), values...)
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
		_, err := tx.Query(ctx, PostgresSwapSQL(names, nil, tx.Placeholder), args...)
		return err
	}, nil
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
// it returned and no least, it sets them back. Where least[i] (least may
// be shorter than names, or nil), names[i] is a limit in milliseconds set
// instead to the smaller of its argument and the value in force, its
// argument where the value in force is 0, "no limit"
// (serverlimit.PostgresLeastExpr, which names the argument once, as a
// driver with positional placeholders needs; docs/backends.md §1.18,
// §1.19). The text depends on the names and least only,
// so a driver that prepares it prepares it once. OFFSET 0 keeps the
// subquery from being flattened into the outer query, so that
// current_setting is evaluated by the subquery scan before the outer
// projection evaluates set_config. The names are distinct, so one row's
// set_config cannot change another row's earlier value.
func PostgresSwapSQL(names []string, least []bool, placeholder func(i int) string) string {
	if placeholder == nil {
		placeholder = func(i int) string { return "$" + strconv.Itoa(i) }
	}
	rows := make([]string, len(names))
	for i, name := range names {
		value := placeholder(i+1) + "::text"
		if i < len(least) && least[i] {
			value = serverlimit.PostgresLeastExpr(name, placeholder(i+1)+"::numeric") + "::bigint::text"
		}
		rows[i] = fmt.Sprintf("(%d, '%s', %s)", i+1, name, value)
	}
	return `SELECT s.prev, set_config(s.name, s.value, true) FROM (
	SELECT u.ord, u.name, u.value, current_setting(u.name) AS prev
	FROM (VALUES ` + strings.Join(rows, ", ") + `) AS u(ord, name, value)
	OFFSET 0
) s ORDER BY s.ord`
}

// MySQLSavepointLimits returns the statements that set, on a MySQL or
// MariaDB connection inside a transaction, the session limits a savepoint
// step derives from limit (the settings of MySQLSessionLimits: MariaDB's
// max_statement_time; MySQL's max_execution_time and, when at least a
// second is left, innodb_lock_wait_timeout), and set them back. Each is
// set to the smaller of the derived value and the value in force, which
// the server computes in the same SET, a 0 in force being "no limit" where
// the setting has one (§3.16), so that a lower limit of the user's or of
// InTx's is kept. The values in force are kept in the user variables
// @dbop_saved_<tag><name>, tag naming the savepoint, so that a limit
// InTx keeps in its own is not overwritten. A SET evaluates every
// right-hand side before it assigns any variable, so the saved value and
// the smaller one both read the value in force before it (§3.16).
func MySQLSavepointLimits(mariadb bool, limit time.Duration, tag string) (set, restore string) {
	return mysqlLimits(mariadb, limit, tag)
}

// IsMySQLSavepointLimits reports whether query is one of the statements
// MySQLSavepointLimits writes with a tag starting "sp" (SavepointLimits'):
// a SET of session variables and of the user variables that keep their
// earlier values, which writes no row. SavepointLimits sends the restore
// after its attempt whatever became of the transaction, after a deadlock
// that ended it too, so gormdb's pool does not count it as the function
// going on past that deadlock.
func IsMySQLSavepointLimits(query string) bool {
	return strings.HasPrefix(query, "SET @dbop_saved_sp") ||
		(strings.HasPrefix(query, "SET @@SESSION.") && strings.Contains(query, " = @dbop_saved_sp"))
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

// doomed reports whether the transaction ctx runs in was doomed by an
// error a step recorded (txmark.State.Doom).
func doomed(ctx context.Context) bool {
	st := txmark.StateOf(ctx)
	return st != nil && st.Doomed() != nil
}
