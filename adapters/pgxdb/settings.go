package pgxdb

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/resolve"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/jackc/pgx/v5"
)

// setting is a server parameter set for one attempt with SET LOCAL: a
// per-attempt, server-side limit, built by LockTimeout or StatementTimeout.
//
// Server-side limits are what per-attempt timeouts should be with pgx: a
// context deadline makes pgx close the connection, which kills the
// transaction and makes a COMMIT ambiguous (docs/backends.md §2.7), while a
// lock_timeout or statement_timeout fails one statement (55P03, or 57014
// "canceling statement due to statement timeout") and leaves the
// connection, and a savepoint, usable (§1.7).
type setting struct {
	name string // a PostgreSQL parameter that takes milliseconds
	ms   int64
}

func (s setting) apply(c *config) { c.settings = append(c.settings, s) }

// value is the setting's value in the parameter's unit, milliseconds.
func (s setting) value() string { return strconv.FormatInt(s.ms, 10) }

// LockTimeout limits each attempt's waits for a lock on the server
// (lock_timeout = d): a statement that waits longer than d fails with
// SQLSTATE 55P03 ("canceling statement due to lock timeout",
// docs/backends.md §1.7), which [Classifier] calls [dbop.RetryStatement].
//
// Given to [InTx], it is SET LOCAL among the first statements of every
// attempt's transaction (and again after each in-place restart of
// [CockroachRestart]). Given to [InSavepoint], it is set with
// set_config(…, true), the function form of SET LOCAL, at the start of
// every attempt inside the savepoint; a failed attempt's ROLLBACK TO
// SAVEPOINT undoes it (§1.4), and after a successful one the earlier values
// are set back before RELEASE SAVEPOINT, so the step's limit does not leak
// into the rest of the transaction. SET LOCAL ends with the transaction
// either way, so nothing is left on a pooled connection.
//
// A value given is set as it is, over any default of the role, the
// database or the session: the user chose it. Only a limit derived from a
// context's deadline (see "Per-attempt timeouts" in the package
// documentation) lowers it, where that is smaller; without LockTimeout,
// the derived limit is set only where it is lower than the lock_timeout in
// force, never raising a default.
//
// d is rounded up to whole milliseconds; 0 disables the limit, as in
// PostgreSQL. If LockTimeout is given twice, the last wins. It panics if d
// is negative or longer than PostgreSQL accepts (2³¹-1 ms, about 24.8
// days).
func LockTimeout(d time.Duration) Option {
	return both(newSetting("LockTimeout", "lock_timeout", d).apply)
}

// StatementTimeout limits each statement of an attempt on the server
// (statement_timeout = d): a statement that runs longer than d fails with
// SQLSTATE 57014 and the message "canceling statement due to statement
// timeout" (docs/backends.md §1.7), which [Classifier] calls
// [dbop.RetryStatement]. It applies to [InTx] and [InSavepoint] as
// [LockTimeout] does, and as there a value given is set over any default,
// lowered only by a limit derived from the context's deadline, while
// without it a derived limit never raises the statement_timeout in force.
// d is rounded up to whole milliseconds; 0 disables the limit, as in
// PostgreSQL. It panics if d is negative or longer than
// PostgreSQL accepts (2³¹-1 ms).
func StatementTimeout(d time.Duration) Option {
	return both(newSetting("StatementTimeout", "statement_timeout", d).apply)
}

func newSetting(fn, name string, d time.Duration) setting {
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
	return setting{name: name, ms: ms}
}

// setLocalSQL returns the SET LOCAL statements of settings as one string,
// "SET LOCAL lock_timeout = 100; …", or "" when there are none, each
// parameter once with its last value. pgx
// sends a query without arguments with the simple protocol, so the
// statements travel in one round trip.
func setLocalSQL(settings []setting) string {
	names, values := distinct(settings)
	var b strings.Builder
	for i := range names {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("SET LOCAL " + names[i] + " = " + values[i])
	}
	return b.String()
}

// applySettings runs setSQL, one attempt's SET LOCAL statements, if any.
func applySettings(ctx context.Context, tx pgx.Tx, setSQL string) error {
	if setSQL == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, setSQL); err != nil {
		return fmt.Errorf("pgxdb: %s: %w", setSQL, err)
	}
	return nil
}

// attemptSettings returns the statements of an attempt that begins now:
// set, its SET LOCAL statements, and limits, a SELECT of set_config calls,
// each "" when there are none. They set the settings given
// ([LockTimeout], [StatementTimeout]) and, when ctx has a deadline,
// statement_timeout and lock_timeout lowered to the time left on it less a
// margin (resolve.ServerLimits); lock_timeout to a dbop.HotSpot's bound on
// lock waits, where that is smaller still. The server then ends a
// statement that would outlast the deadline with 57014 or 55P03, which
// keeps the connection and the pool's slot, instead of pgx closing the
// connection when the context expires (docs/backends.md §1.7, §2.7).
//
// A derived limit only lowers what is in force. A parameter given as an
// option is SET LOCAL to the smaller of the given and the derived value (0
// given is "no limit": the derived value), as given otherwise: the user
// chose it, over any default. A parameter not given is set, in limits, to
// the smaller of the derived value and the value in force — a role's or a
// database's default, a session's SET — which the server computes
// (serverlimit.PostgresLeast, docs/backends.md §1.18): a lower limit of
// the user's own is never lifted. Both travel in the BEGIN round trip,
// limits after set; limits, a SELECT, after a HotSpot's LOCK too (begin).
//
// Without a deadline it returns the statements built once, allocating
// nothing.
func (c *config) attemptSettings(ctx context.Context) (set, limits string) {
	stmt, lock, ok := resolve.ServerLimits(ctx)
	if !ok {
		return c.setSQL, ""
	}
	names, values := distinctMillis(c.settings)
	var least []string // the derived limits of parameters not given
	for _, l := range [...]struct {
		name  string
		limit time.Duration
	}{{"statement_timeout", stmt}, {"lock_timeout", lock}} {
		// Rounded down: the margin stays whole. At most 2^31-1, the most
		// PostgreSQL takes (a deadline more than about 24.8 days away;
		// docs/backends.md §1.18): a 0 given would otherwise be SET LOCAL
		// to more, which fails with 22023.
		ms := min(int64(l.limit/time.Millisecond), serverlimit.PostgresMaxMillis)
		i := slices.Index(names, l.name)
		switch {
		case i < 0:
			least = append(least, serverlimit.PostgresLeast(l.name, ms))
		case values[i] == 0 || values[i] > ms: // 0 is "no limit"
			values[i] = ms
		}
	}
	var b strings.Builder
	for i := range names {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("SET LOCAL " + names[i] + " = " + strconv.FormatInt(values[i], 10))
	}
	return b.String(), serverlimit.PostgresSelect(least)
}

// lockTimeout returns the most that attemptSettings lets lock_timeout be
// for an attempt that begins now, 0 for no such bound (the server's value
// in force may be lower): a dbop.HotSpot's bound after its lock is not
// sent when it would not lower it (hotlock.PostgresBound).
func (c *config) lockTimeout(ctx context.Context) time.Duration {
	var given time.Duration
	for _, s := range c.settings {
		if s.name == "lock_timeout" {
			given = time.Duration(s.ms) * time.Millisecond
		}
	}
	return resolve.LockLimit(ctx, given)
}

// distinctMillis is distinct with the values in milliseconds.
func distinctMillis(settings []setting) (names []string, values []int64) {
	for _, s := range settings {
		if i := slices.Index(names, s.name); i >= 0 {
			values[i] = s.ms
			continue
		}
		names = append(names, s.name)
		values = append(values, s.ms)
	}
	return names, values
}

// beginSQL returns the statement that begins a transaction with opts, as
// pgx writes it (pgx v5.12.0, tx.go, renderBeginSQL), followed by setSQL
// when it is not "": pgx sends a BeginQuery with the simple protocol, so
// BEGIN and the SET LOCAL statements travel in one round trip
// (docs/backends.md §2.5, §2.11). The values are integers this package
// wrote, which cannot fail; were one to, BeginTx would fail, and pgxpool
// destroys a connection released inside a transaction.
func beginSQL(opts pgx.TxOptions, setSQL string) string {
	var b strings.Builder
	b.WriteString("begin")
	if opts.IsoLevel != "" {
		b.WriteString(" isolation level " + string(opts.IsoLevel))
	}
	if opts.AccessMode != "" {
		b.WriteString(" " + string(opts.AccessMode))
	}
	if opts.DeferrableMode != "" {
		b.WriteString(" " + string(opts.DeferrableMode))
	}
	if setSQL != "" {
		b.WriteString("; " + setSQL)
	}
	return b.String()
}

// distinct returns the names and values of settings, each name once with
// the value of its last occurrence, in the order of first occurrence.
func distinct(settings []setting) (names, values []string) {
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
