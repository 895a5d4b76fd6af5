package pgxdb_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
)

// On pgx's own handles the locks of an attempt with keys travel in the
// BEGIN round trip, as the HotSpot's one lock does (TestHotSpotLockInBegin):
// the HotSpot's table in ROW SHARE MODE and each key's stripe in EXCLUSIVE
// MODE, so that attempts of different processes with disjoint keys run
// side by side, one that shares a key waits, and one without keys waits
// for all of them.
func TestHotSpotKeyLocksInBegin(t *testing.T) {
	inPool := inSchema(t, "pgxdb_keylocks", true)
	log := &sqlLog{}
	pool := newPool(t, 8, inPool, traced(log))
	key := rand.Int64()
	start := func(keys ...int64) *testdb.Held {
		req := &hotlock.Request{Key: key, Keys: keys}
		return testdb.Hold(t, func(ctx context.Context, inside func()) error {
			_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				inside()
				return nil
			}, pgxdb.Isolation(pgx.ReadCommitted)).Run(hotlock.With(ctx, req))
			return err
		})
	}
	a := start(1, 2)
	a.MustEnter(t, "the first attempt")
	b := start(3, 4)
	b.MustEnter(t, "an attempt whose keys are disjoint from the holder's")
	c := start(2, 5)
	c.MustWait(t, "an attempt that shares key 2 with the holder")
	a.Finish(t)
	c.MustEnter(t, "the attempt that shared key 2, once the holder committed")
	u := start()
	u.MustWait(t, "an attempt without keys, while keyed ones hold")
	b.Finish(t)
	c.Finish(t)
	u.MustEnter(t, "the attempt without keys, once the keyed ones committed")
	u.Finish(t)

	locks, _ := hotlock.PostgresLocks(key, []int64{1, 2})
	want := "begin isolation level read committed; " + strings.Join(locks, "; ")
	found := false
	for _, stmt := range log.Log() {
		if stmt == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no BEGIN carried the keys' locks %q; statements: %q", want, log.Log())
	}
}
