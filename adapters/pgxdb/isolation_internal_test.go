package pgxdb

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL reads the words of BEGIN ISOLATION LEVEL in any case and
// spacing, so Isolation("SERIALIZABLE") begins the transactions
// Isolation(pgx.Serializable) begins. Every decision taken on the level
// given is the same for each spelling: whether the limits derived from a
// deadline follow a HotSpot's LOCK (limitsAfterLock, docs/backends.md
// §1.14), and whether ResolveCommit retries a READ ONLY transaction whose
// COMMIT answer was lost, as it must where the transaction may be
// SERIALIZABLE (the resolver's serializable). Offline: the pool is never
// connected.
func TestIsolationLevelSpellings(t *testing.T) {
	cfg, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/nowhere?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg) // connects lazily: never here
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tests := []struct {
		level        pgx.TxIsoLevel // "": Isolation not given
		afterLock    bool
		serializable bool
	}{
		{"", false, true}, // the server's default may be SERIALIZABLE
		{pgx.ReadUncommitted, false, false},
		{"READ UNCOMMITTED", false, false},
		{pgx.ReadCommitted, false, false},
		{"Read Committed", false, false},
		{pgx.RepeatableRead, true, false},
		{"REPEATABLE READ", true, false},
		{"repeatable\tread", true, false},
		{pgx.Serializable, true, true},
		{"SERIALIZABLE", true, true},
		{" Serializable ", true, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.level), func(t *testing.T) {
			opts := []TxOption{ReadOnly(), ResolveCommit()}
			if tt.level != "" {
				opts = append(opts, Isolation(tt.level))
			}
			c := newTxConfig("InTx", opts)
			if got := c.limitsAfterLock(); got != tt.afterLock {
				t.Errorf("limitsAfterLock() = %t, want %t", got, tt.afterLock)
			}
			if got := newResolver("InTx", pool, c).serializable; got != tt.serializable {
				t.Errorf("the resolver's serializable = %t, want %t", got, tt.serializable)
			}
		})
	}
}
