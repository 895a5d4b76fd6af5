package main

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/sqldb"
)

// TestQuickstart runs the example as main does and checks the database it
// leaves behind, apart from the example's own check.
func TestQuickstart(t *testing.T) {
	const workers, transfers = 8, 40
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "bank.db")
	var out bytes.Buffer
	st, err := run(ctx, path, workers, transfers, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if st.Committed != workers*transfers {
		t.Errorf("%d transfers committed, want %d", st.Committed, workers*transfers)
	}
	// The writers must have contended, or the example shows nothing.
	retries := 0
	for _, n := range st.Retries {
		retries += n
	}
	if st.Retries[5] == 0 || st.Attempts != st.Committed+int64(retries) {
		t.Errorf("%d attempts for %d transfers, retries by code %v: want SQLITE_BUSY retries, and one attempt per commit or retry",
			st.Attempts, st.Committed, st.Retries)
	}
	if !strings.HasSuffix(out.String(), "OK: every transfer landed exactly once\n") {
		t.Errorf("output does not end with the check:\n%s", out.String())
	}

	// Read the file back: each transfer in the ledger once, with the amount
	// the example gave it, and the balances what the ledger says.
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, distinct, amounts int64
	if err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT id), coalesce(sum(amount), 0) FROM ledger").Scan(&rows, &distinct, &amounts); err != nil {
		t.Fatal(err)
	}
	var want int64
	for range workers {
		for i := range transfers {
			want += 1 + int64(i%7)
		}
	}
	if rows != workers*transfers || distinct != rows || amounts != want {
		t.Errorf("ledger: %d rows, %d ids, amounts summing to %d; want %d, %d, %d", rows, distinct, amounts, workers*transfers, workers*transfers, want)
	}
	var sum, disagreeing int64
	if err := db.QueryRowContext(ctx, checkQuery).Scan(&sum, &rows, &disagreeing); err != nil {
		t.Fatal(err)
	}
	if sum != 0 || disagreeing != 0 {
		t.Errorf("balances sum to %d, %d disagree with the ledger; want 0, 0", sum, disagreeing)
	}
}
