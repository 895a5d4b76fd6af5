package contention

import "fmt"

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

// checkSQL reads what the invariants are checked on, on every backend.
const checkSQL = `
	SELECT
		(SELECT coalesce(sum(balance), 0) FROM bench_accounts),
		(SELECT count(*) FROM bench_ledger),
		(SELECT coalesce(sum(amount), 0) FROM bench_ledger),
		(SELECT count(*) FROM bench_accounts a
		  WHERE a.balance <> coalesce((SELECT sum(amount) FROM bench_ledger WHERE to_id = a.id), 0)
		                   - coalesce((SELECT sum(amount) FROM bench_ledger WHERE from_id = a.id), 0))`

// checkWith reads the tables with scan and compares them with what was
// committed.
func checkWith(wantRows, wantSum int64, scan func(dst ...any) error) Invariants {
	iv := Invariants{WantRows: wantRows, WantSum: wantSum}
	fail := func(format string, args ...any) {
		iv.failureReasons = append(iv.failureReasons, fmt.Sprintf(format, args...))
	}
	if err := scan(&iv.BalanceSum, &iv.LedgerRows, &iv.LedgerSum, &iv.AccountsOff); err != nil {
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
