package contention

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Variant selects the transaction the workers run.
type Variant int

const (
	// Serializable: SERIALIZABLE read-modify-write. Concurrent writers of
	// a hot account fail with 40001 (serialization_failure).
	Serializable Variant = iota
	// Deadlock: READ COMMITTED, SELECT … FOR UPDATE of both accounts in a
	// random order, so that two transfers between the same accounts lock
	// them in opposite orders and one fails with 40P01 (deadlock_detected).
	Deadlock
)

func (v Variant) String() string {
	switch v {
	case Serializable:
		return "serializable"
	case Deadlock:
		return "deadlock"
	}
	return fmt.Sprintf("variant(%d)", int(v))
}

// ParseVariant parses the name String returns.
func ParseVariant(s string) (Variant, error) {
	switch s {
	case "serializable":
		return Serializable, nil
	case "deadlock":
		return Deadlock, nil
	}
	return 0, fmt.Errorf("unknown variant %q (want serializable or deadlock)", s)
}

// TxOptions returns the transaction options of the variant.
func (v Variant) TxOptions() pgx.TxOptions {
	if v == Deadlock {
		return pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	}
	return pgx.TxOptions{IsoLevel: pgx.Serializable}
}

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

// body is one attempt of a transfer inside tx: read both balances, write
// both back, record the transfer in the ledger.
func (v Variant) body(ctx context.Context, tx pgx.Tx, t Transfer) error {
	read := `SELECT balance FROM bench_accounts WHERE id = $1`
	if v == Deadlock {
		read += ` FOR UPDATE`
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
		if err := tx.QueryRow(ctx, read, r.id).Scan(r.dst); err != nil {
			return fmt.Errorf("read account %d: %w", r.id, err)
		}
	}
	// Serializable writes in account order, as a careful application
	// does, so that its only conflicts are serialization failures; the
	// Deadlock variant writes in its (random) lock order.
	writes := [2]struct {
		id      int32
		balance int64
	}{{t.From, fromBalance - t.Amount}, {t.To, toBalance + t.Amount}}
	if (v == Serializable && t.To < t.From) || (v == Deadlock && t.LockToFirst) {
		writes[0], writes[1] = writes[1], writes[0]
	}
	for _, w := range writes {
		if _, err := tx.Exec(ctx, `UPDATE bench_accounts SET balance = $2 WHERE id = $1`, w.id, w.balance); err != nil {
			return fmt.Errorf("write account %d: %w", w.id, err)
		}
	}
	if _, err := tx.Exec(ctx,
		`INSERT INTO bench_ledger (transfer_id, from_id, to_id, amount) VALUES ($1, $2, $3, $4)`,
		t.ID, t.From, t.To, t.Amount); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
