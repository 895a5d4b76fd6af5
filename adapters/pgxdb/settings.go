package pgxdb

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/jackc/pgx/v5"
)

// A Setting is a server parameter set for one attempt with SET LOCAL: a
// per-attempt, server-side limit. Build one with [LockTimeout] or
// [StatementTimeout]. A Setting is an [Option] of [InTx], which applies it
// at the start of each attempt's transaction, and an argument of
// [Timeouts], which applies it around a step inside a transaction.
//
// Server-side limits are what per-attempt timeouts should be with pgx
// (DB-REFERENCE pitfall 5): a context deadline makes pgx close the
// connection, which kills the transaction and makes a COMMIT ambiguous,
// while a lock_timeout or statement_timeout fails one statement (55P03, or
// 57014 "canceling statement due to statement timeout") and leaves the
// connection, and a savepoint, usable.
type Setting struct {
	name string // a PostgreSQL parameter that takes milliseconds
	ms   int64
}

func (s Setting) apply(c *config) { c.settings = append(c.settings, s) }

// String returns the setting as SQL: "SET LOCAL lock_timeout = 100".
func (s Setting) String() string { return "SET LOCAL " + s.name + " = " + s.value() }

// value is the setting's value in the parameter's unit, milliseconds.
func (s Setting) value() string { return strconv.FormatInt(s.ms, 10) }

// LockTimeout returns the Setting lock_timeout = d: a statement that waits
// longer than d for a lock fails with SQLSTATE 55P03 ("canceling statement
// due to lock timeout", DB-REFERENCE §1), which [Classify] calls
// [dbop.RetryStatement]. d is rounded up to whole milliseconds; 0 disables
// the limit, as in PostgreSQL. It panics if d is negative or longer than
// PostgreSQL accepts (2³¹-1 ms, about 24.8 days).
func LockTimeout(d time.Duration) Setting { return newSetting("LockTimeout", "lock_timeout", d) }

// StatementTimeout returns the Setting statement_timeout = d: a statement
// that runs longer than d fails with SQLSTATE 57014 and the message
// "canceling statement due to statement timeout" (DB-REFERENCE §1), which
// [Classify] calls [dbop.RetryStatement]. d is rounded up to whole
// milliseconds; 0 disables the limit, as in PostgreSQL. It panics if d is
// negative or longer than PostgreSQL accepts (2³¹-1 ms).
func StatementTimeout(d time.Duration) Setting {
	return newSetting("StatementTimeout", "statement_timeout", d)
}

func newSetting(fn, name string, d time.Duration) Setting {
	if d < 0 {
		panic(fmt.Sprintf("pgxdb: %s(%v): the timeout must not be negative", fn, d))
	}
	// Round up: a positive duration below a millisecond must not become 0,
	// which PostgreSQL reads as "no limit".
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	if ms > math.MaxInt32 {
		panic(fmt.Sprintf("pgxdb: %s(%v): PostgreSQL accepts at most %d ms", fn, d, math.MaxInt32))
	}
	return Setting{name: name, ms: ms}
}

// setLocalSQL returns the SET LOCAL statements of settings as one string,
// or "" when there are none. pgx sends a query without arguments with the
// simple protocol, so the statements travel in one round trip.
func setLocalSQL(settings []Setting) string {
	var b strings.Builder
	for i, s := range settings {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.String())
	}
	return b.String()
}

// Timeouts returns a Decorator that applies settings around each run of the
// decorated step, inside a transaction the caller owns: before the step it
// reads the parameters' current values and sets the new ones with
// set_config(name, value, true), which is SET LOCAL; after the step, while
// the transaction is still usable, it sets the earlier values back, so the
// step's limits do not leak into the rest of the caller's transaction.
//
// List it after [InSavepoint] so that it runs inside each attempt's
// savepoint:
//
//	step.With(dbop.WithRetry(backoff), pgxdb.InSavepoint(tx), pgxdb.Timeouts(tx, pgxdb.LockTimeout(100*time.Millisecond)))
//
// Then every attempt gets a fresh limit; a failed attempt's ROLLBACK TO
// SAVEPOINT undoes the SET LOCAL with everything else the attempt did
// (DB-REFERENCE §1: "Rolling back to an earlier savepoint undoes
// SET/SET LOCAL"); and after a successful attempt the earlier values are
// back before RELEASE SAVEPOINT. Without that restore a SET LOCAL made
// inside a savepoint would survive its RELEASE and last until the end of the
// whole transaction. Nothing outlives the transaction in any case: SET LOCAL
// "lasts until the end of the transaction", so no setting is left on a
// pooled connection.
//
// A failed restore after a successful step is returned as the step's error.
// Timeouts panics if tx is nil or no setting is given.
func Timeouts(tx pgx.Tx, settings ...Setting) dbop.Decorator {
	if isNil(tx) {
		panic("pgxdb: Timeouts: the transaction is nil" + nilType(tx))
	}
	if len(settings) == 0 {
		panic("pgxdb: Timeouts: no setting given")
	}
	names, values := distinct(settings)
	return dbop.Around(func(ctx context.Context, next func(context.Context) error) error {
		prev, err := swapSettings(ctx, tx, names, values)
		if err != nil {
			return fmt.Errorf("pgxdb: set %s: %w", strings.Join(names, ", "), err)
		}
		err = next(ctx)
		if err != nil && !txUsable(tx) {
			// The failed statement aborted the transaction (or the
			// connection is gone): the savepoint rollback, or the end of
			// the transaction, undoes the settings.
			return err
		}
		if _, rerr := swapSettings(ctx, tx, names, prev); rerr != nil && err == nil {
			return fmt.Errorf("pgxdb: restore %s: %w", strings.Join(names, ", "), rerr)
		}
		return err
	})
}

// swapSettingsSQL sets each named parameter for the rest of the transaction
// and returns its value before, in the order given. OFFSET 0 keeps the
// subquery from being flattened into the outer query, so that, for each
// row, current_setting is evaluated by the subquery scan before the outer
// projection evaluates set_config. The names are distinct (see Timeouts),
// so one row's set_config cannot change another row's earlier value.
const swapSettingsSQL = `SELECT s.prev, set_config(s.name, s.value, true) FROM (
	SELECT u.ord, u.name, u.value, current_setting(u.name) AS prev
	FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(name, value, ord)
	OFFSET 0
) s ORDER BY s.ord`

// swapSettings sets names to values in tx, as SET LOCAL does, and returns
// the values they had before, in the same order.
func swapSettings(ctx context.Context, tx pgx.Tx, names, values []string) ([]string, error) {
	rows, err := tx.Query(ctx, swapSettingsSQL, names, values)
	if err != nil {
		return nil, err
	}
	prev, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var prev, set string
		err := row.Scan(&prev, &set)
		return prev, err
	})
	if err != nil {
		return nil, err
	}
	if len(prev) != len(names) {
		return nil, fmt.Errorf("pgxdb: set_config returned %d rows for %d settings", len(prev), len(names))
	}
	return prev, nil
}

// txUsable reports whether tx's connection is inside a transaction that can
// still run statements: its status is 'T', not 'E' (failed) or 'I'.
func txUsable(tx pgx.Tx) bool {
	conn := tx.Conn()
	if conn == nil || conn.IsClosed() {
		return false
	}
	return conn.PgConn().TxStatus() == 'T'
}

// distinct returns the names and values of settings, each name once with
// the value of its last occurrence, in the order of first occurrence.
func distinct(settings []Setting) (names, values []string) {
	for _, s := range settings {
		if i := slices.Index(names, s.name); i >= 0 {
			values[i] = s.value()
			continue
		}
		names = append(names, s.name)
		values = append(values, s.value())
	}
	return names, values
}
