package pgxdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
)

// TestReadOnlyTakesNoHotSpotLock: a transaction begun with pgxdb.ReadOnly
// writes nothing a HotSpot must order, so it takes none of its locks, as
// with sqldb.ReadOnly. Another process holds every HotSpot's lock here;
// a read that took one would wait for it, and fail when its own
// lock_timeout ends the wait.
func TestReadOnlyTakesNoHotSpotLock(t *testing.T) {
	schema := inSchema(t, "pgxdb_ro_hot", true)
	pool := newPool(t, 4, schema)
	createTable(t, pool, "pgxdb_ro_hot", "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO pgxdb_ro_hot VALUES (1, 7)")
	holder, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	for _, name := range hotlock.PostgresTableNames() {
		exec(t, holder, "LOCK TABLE "+name+" IN EXCLUSIVE MODE")
	}
	log := &sqlLog{}
	reader := newPool(t, 2, schema, traced(log))
	hot := dbop.Chain(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.MaxAttempts(3)), dbop.HotSpot())
	read := pgxdb.InTx(reader, func(ctx context.Context, tx pgx.Tx) (int, error) {
		var v int
		err := tx.QueryRow(ctx, "SELECT v FROM pgxdb_ro_hot WHERE id = 1").Scan(&v)
		return v, err
	}, pgxdb.ReadOnly(), pgxdb.LockTimeout(300*time.Millisecond))
	// A new HotSpot limits from the start and asks its first attempts to
	// take the lock (docs/contention.md, "Finding other processes").
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		start := time.Now()
		v, err := read.With(hot).Run(ctx)
		if err != nil || v != 7 {
			t.Fatalf("read %d, READ ONLY under a HotSpot while another process holds its lock: %d, %v after %v", i, v, err, time.Since(start).Round(time.Millisecond))
		}
	}
	for _, stmt := range log.Log() {
		if strings.Contains(stmt, "dbop_hotspot_lock") {
			t.Errorf("a read-only transaction sent %q", stmt)
		}
	}
}
