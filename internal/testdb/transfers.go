package testdb

import (
	"fmt"
	"sync"
	"testing"
)

// Transfer is one transfer of [Transfers]: its ledger row's id, and the
// accounts it moves 1 from and to.
type Transfer struct{ ID, From, To int }

// Transfers runs workers × each transfers among accounts accounts (ids 1 to
// accounts), each worker's one after another on a goroutine of its own,
// and fails tb with every error run returns. Worker w's i-th transfer has
// the id w*each+i and moves 1 from account 1+(w+i)%accounts to account
// 1+(w+i+1+i%(accounts-1))%accounts, so that the workers' transfers meet on
// the same accounts in both orders: lock cycles, where a transfer writes
// its accounts in its own order.
func Transfers(tb testing.TB, workers, each, accounts int, run func(w int, tr Transfer) error) {
	tb.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tr := Transfer{ID: w*each + i, From: 1 + (w+i)%accounts, To: 1 + (w+i+1+i%(accounts-1))%accounts}
				if err := run(w, tr); err != nil {
					tb.Errorf("transfer %d (%d → %d): %v", tr.ID, tr.From, tr.To, err)
				}
			}
		})
	}
	wg.Wait()
}

// CheckLedger checks the invariants of n transfers of [Transfers] that all
// committed, on the table accounts (id, balance) and the table ledger (id,
// from_id, to_id), each written once per transfer: n ledger rows, balances
// that sum to 0, and every balance equal to its ledger's net. count runs a
// query that returns one integer (the queries are portable SQL:
// PostgreSQL, MySQL, MariaDB, SQLite).
func CheckLedger(tb testing.TB, n int, accounts, ledger string, count func(query string) (int64, error)) {
	tb.Helper()
	get := func(query string) int64 {
		tb.Helper()
		v, err := count(query)
		if err != nil {
			tb.Fatalf("%s: %v", query, err)
		}
		return v
	}
	if rows := get("SELECT count(*) FROM " + ledger); rows != int64(n) {
		tb.Errorf("%d ledger rows, want %d: each transfer once", rows, n)
	}
	if sum := get("SELECT COALESCE(sum(balance), 0) FROM " + accounts); sum != 0 {
		tb.Errorf("balances sum to %d, want 0", sum)
	}
	bad := get(fmt.Sprintf(`SELECT count(*) FROM %s a WHERE a.balance <>
		(SELECT COALESCE(sum(CASE WHEN l.to_id = a.id THEN 1 WHEN l.from_id = a.id THEN -1 ELSE 0 END), 0) FROM %s l)`, accounts, ledger))
	if bad != 0 {
		tb.Errorf("%d balances disagree with the ledger", bad)
	}
}
