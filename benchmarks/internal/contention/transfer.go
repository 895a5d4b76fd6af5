package contention

import (
	"context"
	"fmt"
	"strings"
)

// Variant selects the transaction the workers run.
type Variant int

const (
	// Serializable: SERIALIZABLE read-modify-write, the writes in account
	// order. Concurrent writers of a hot account fail with a serialization
	// failure (PostgreSQL 40001) or, on MariaDB, where SERIALIZABLE reads
	// take shared locks, an immediate deadlock (1213).
	Serializable Variant = iota
	// LockCycle: the same SERIALIZABLE read-modify-write, but the writes in
	// the order the transfer names the accounts, as most applications write
	// them: opposite transfers between the same two accounts lock them in
	// opposite orders and form lock cycles, which PostgreSQL breaks only
	// after deadlock_timeout (1 s by default).
	LockCycle
	// Deadlock: READ COMMITTED, SELECT … FOR UPDATE of both accounts in a
	// random order, so that two transfers between the same accounts lock
	// them in opposite orders and one fails with a deadlock (PostgreSQL
	// 40P01, MariaDB 1213).
	Deadlock
)

// Variants lists the variants in the order the command runs them.
var Variants = []Variant{Serializable, LockCycle, Deadlock}

func (v Variant) String() string {
	switch v {
	case Serializable:
		return "serializable"
	case LockCycle:
		return "lockcycle"
	case Deadlock:
		return "deadlock"
	}
	return fmt.Sprintf("variant(%d)", int(v))
}

// ParseVariant parses the name String returns.
func ParseVariant(s string) (Variant, error) {
	for _, v := range Variants {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown variant %q (want serializable, lockcycle or deadlock)", s)
}

// serializable reports whether the variant runs SERIALIZABLE transactions
// (else READ COMMITTED).
func (v Variant) serializable() bool { return v != Deadlock }

// Transfer is one logical transfer. Its ID is chosen once, before the first
// attempt, and is the ledger's primary key: a transfer applied twice would
// fail with a unique violation instead of moving the money twice.
type Transfer struct {
	ID       int64
	From, To int32
	Amount   int64
	// LockToFirst makes the Deadlock variant lock To before From.
	LockToFirst bool
}

// Tx is one attempt's transaction, whatever the driver: pgx.Tx or *sql.Tx.
type Tx interface {
	// QueryInt runs a query that returns one integer.
	QueryInt(ctx context.Context, query string, args ...any) (int64, error)
	// Exec runs a statement.
	Exec(ctx context.Context, query string, args ...any) error
}

// TxFunc is one attempt of a transfer inside the transaction tx.
type TxFunc func(ctx context.Context, tx Tx) error

// statements are a backend's SQL for the transfer, placeholders included.
type statements struct {
	read, readForUpdate, write, add, ledger string
	// relative makes the transfer write balance = balance + delta instead
	// of the balances it read, and read none: on a Galera cluster, row
	// locks and certification do not stop lost updates of absolute writes
	// across nodes (docs/backends.md §7.3), and a read in a transaction
	// that holds locks can end it silently (§7.3.1).
	relative bool
	// limit prefixes a statement with a server-side time limit, for the
	// stand-in of issue 13's per-attempt limits (see serverLimits); nil
	// where the limit is set once per transaction instead.
	limit func(ms int64, stmt string) string
}

// newStatements writes the statements with ? placeholders, rewritten for
// PostgreSQL as $1, $2, ….
func newStatements(dollar bool) statements {
	s := statements{
		read:          `SELECT balance FROM bench_accounts WHERE id = ?`,
		readForUpdate: `SELECT balance FROM bench_accounts WHERE id = ? FOR UPDATE`,
		write:         `UPDATE bench_accounts SET balance = ? WHERE id = ?`,
		add:           `UPDATE bench_accounts SET balance = balance + ? WHERE id = ?`,
		ledger:        `INSERT INTO bench_ledger (transfer_id, from_id, to_id, amount) VALUES (?, ?, ?, ?)`,
	}
	if dollar {
		for _, p := range []*string{&s.read, &s.readForUpdate, &s.write, &s.add, &s.ledger} {
			*p = dollars(*p)
		}
	}
	return s
}

// dollars rewrites ? placeholders as $1, $2, ….
func dollars(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// body is one attempt of a transfer inside tx: read both balances, write
// both back, record the transfer in the ledger.
func (v Variant) body(ctx context.Context, tx Tx, sql statements, t Transfer) error {
	read := sql.read
	if v == Deadlock {
		read = sql.readForUpdate
	}
	limited := func(stmt string) string {
		if sql.limit == nil {
			return stmt
		}
		if ms, ok := limitOf(ctx); ok {
			return sql.limit(ms, stmt)
		}
		return stmt
	}
	var fromBalance, toBalance int64
	reads := [2]struct {
		id  int32
		dst *int64
	}{{t.From, &fromBalance}, {t.To, &toBalance}}
	if v == Deadlock && t.LockToFirst {
		reads[0], reads[1] = reads[1], reads[0]
	}
	for _, r := range reads {
		if sql.relative {
			// On Galera the transfer is DML only: the relative writes
			// need no balance, and a SELECT run while the transaction
			// holds row locks (SERIALIZABLE's reads take shared ones)
			// can be aborted by a replicated write-set without an error,
			// so that the writes after it commit one by one in
			// autocommit mode (docs/backends.md §7.3.1).
			break
		}
		b, err := tx.QueryInt(ctx, limited(read), r.id)
		if err != nil {
			return fmt.Errorf("read account %d: %w", r.id, err)
		}
		*r.dst = b
	}
	// Serializable writes in account order, as a careful application
	// does, so that its conflicts are serialization failures; LockCycle
	// writes in the transfer's order and Deadlock in its (random) lock
	// order, so that opposite transfers form lock cycles.
	writes := [2]struct {
		id             int32
		balance, delta int64
	}{{t.From, fromBalance - t.Amount, -t.Amount}, {t.To, toBalance + t.Amount, t.Amount}}
	if (v == Serializable && t.To < t.From) || (v == Deadlock && t.LockToFirst) {
		writes[0], writes[1] = writes[1], writes[0]
	}
	for _, w := range writes {
		var err error
		if sql.relative {
			err = tx.Exec(ctx, limited(sql.add), w.delta, w.id)
		} else {
			err = tx.Exec(ctx, limited(sql.write), w.balance, w.id)
		}
		if err != nil {
			return fmt.Errorf("write account %d: %w", w.id, err)
		}
	}
	if err := tx.Exec(ctx, limited(sql.ledger), t.ID, t.From, t.To, t.Amount); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
