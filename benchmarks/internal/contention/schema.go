package contention

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// lockKey serialises runs of the benchmark against one database: two runs at
// once would share the tables and break each other's invariants.
const lockKey = 0x6462_6f70_6265_6e63 // "dbopbenc"

const schema = `
CREATE TABLE IF NOT EXISTS bench_accounts (
	id      integer PRIMARY KEY,
	balance bigint  NOT NULL
);
CREATE TABLE IF NOT EXISTS bench_ledger (
	transfer_id bigint  PRIMARY KEY,
	from_id     integer NOT NULL,
	to_id       integer NOT NULL,
	amount      bigint  NOT NULL
);`

// reset creates the tables if needed and empties them: accounts hot accounts,
// numbered from 1, all at balance 0, and an empty ledger.
func reset(ctx context.Context, conn *pgx.Conn, accounts int) error {
	if _, err := conn.Exec(ctx, schema); err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	if _, err := conn.Exec(ctx, `TRUNCATE bench_accounts, bench_ledger`); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if _, err := conn.Exec(ctx,
		`INSERT INTO bench_accounts (id, balance) SELECT g, 0 FROM generate_series(1, $1::int) AS g`,
		accounts); err != nil {
		return fmt.Errorf("insert accounts: %w", err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE bench_accounts`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// Invariants is what the database holds after a run, checked against what
// the workers saw committed.
type Invariants struct {
	BalanceSum     int64 // sum of all balances: must be 0
	LedgerRows     int64 // must equal the committed transfers
	LedgerSum      int64 // must equal the sum of committed amounts
	WantRows       int64
	WantSum        int64
	AccountsOff    int64 // accounts whose balance differs from the ledger's net: must be 0
	CheckErr       error // the check itself failed
	failureReasons []string
}

// OK reports whether every invariant holds.
func (iv Invariants) OK() bool { return len(iv.failureReasons) == 0 }

// Failures lists the invariants that do not hold.
func (iv Invariants) Failures() []string { return iv.failureReasons }

// check reads the tables and compares them with what was committed.
func check(ctx context.Context, conn *pgx.Conn, wantRows, wantSum int64) Invariants {
	iv := Invariants{WantRows: wantRows, WantSum: wantSum}
	fail := func(format string, args ...any) {
		iv.failureReasons = append(iv.failureReasons, fmt.Sprintf(format, args...))
	}
	err := conn.QueryRow(ctx, `
		SELECT
			(SELECT coalesce(sum(balance), 0) FROM bench_accounts),
			(SELECT count(*) FROM bench_ledger),
			(SELECT coalesce(sum(amount), 0) FROM bench_ledger),
			(SELECT count(*) FROM bench_accounts a
			  WHERE a.balance <> coalesce((SELECT sum(amount) FROM bench_ledger WHERE to_id = a.id), 0)
			                   - coalesce((SELECT sum(amount) FROM bench_ledger WHERE from_id = a.id), 0))`,
	).Scan(&iv.BalanceSum, &iv.LedgerRows, &iv.LedgerSum, &iv.AccountsOff)
	if err != nil {
		iv.CheckErr = err
		fail("check query: %v", err)
		return iv
	}
	if iv.BalanceSum != 0 {
		fail("balances sum to %d, want 0", iv.BalanceSum)
	}
	if iv.LedgerRows != wantRows {
		fail("ledger holds %d transfers, %d were committed", iv.LedgerRows, wantRows)
	}
	if iv.LedgerSum != wantSum {
		fail("ledger amounts sum to %d, committed transfers to %d", iv.LedgerSum, wantSum)
	}
	if iv.AccountsOff != 0 {
		fail("%d accounts disagree with the ledger (lost update)", iv.AccountsOff)
	}
	return iv
}
