package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
)

// keyLockBackends are the servers whose scopes take a HotSpot's lock per
// key: PostgreSQL with the lock tables, MariaDB with the lock rows.
func keyLockBackends() []struct {
	name string
	open func(t *testing.T) *sql.DB
	d    sqldb.Dialect
} {
	return []struct {
		name string
		open func(t *testing.T) *sql.DB
		d    sqldb.Dialect
	}{
		{"postgres", func(t *testing.T) *sql.DB { return postgresInSchema(t, "sqldb_keylocks", true) }, sqldb.Postgres},
		{"mariadb", func(t *testing.T) *sql.DB {
			db := openMariaDB(t)
			if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
				t.Fatal(err)
			}
			return db
		}, mysqldb.MariaDB},
	}
}

// When a HotSpot's request names the attempt's keys (internal/hotlock),
// the scope takes the HotSpot's lock in a shared mode and each key's
// stripe exclusively: across processes, attempts with disjoint keys run
// side by side, one that shares a key waits for the holder, and one
// without keys waits for every keyed one and they for it.
func TestHotSpotKeyLocks(t *testing.T) {
	for _, b := range keyLockBackends() {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			key := rand.Int64()
			start := func(keys ...int64) *testdb.Held { return holdAttempt(t, db, b.d, key, keys) }
			// The first attempt with keys adds the HotSpot's lock rows
			// on MariaDB, and holds them until it commits.
			first := start(1)
			first.MustEnter(t, "the first attempt with keys")
			first.Finish(t)

			a := start(1, 2)
			a.MustEnter(t, "the first attempt")
			other := start(3, 4)
			other.MustEnter(t, "an attempt whose keys are disjoint from the holder's")
			shares := start(2, 5)
			shares.MustWait(t, "an attempt that shares key 2 with the holder")
			a.Finish(t)
			shares.MustEnter(t, "the attempt that shared key 2, once the holder committed")

			unkeyed := start()
			unkeyed.MustWait(t, "an attempt without keys, while keyed ones hold")
			other.Finish(t)
			unkeyed.MustWait(t, "an attempt without keys, while a keyed one still holds")
			shares.Finish(t)
			unkeyed.MustEnter(t, "the attempt without keys, once the keyed ones committed")

			keyed := start(7, 8)
			keyed.MustWait(t, "a keyed attempt, while one without keys holds")
			unkeyed.Finish(t)
			keyed.MustEnter(t, "the keyed attempt, once the one without keys committed")
			keyed.Finish(t)

			// Keys on more than hotlock.MaxStripes stripes: the
			// HotSpot's lock alone, exclusively, as without keys (on
			// MariaDB a long list of ids would be read by a scan that
			// locks every row, the HotSpot's own included, and two
			// such attempts would deadlock).
			many := func(from int64) []int64 {
				keys := make([]int64, 60)
				for i := range keys {
					keys[i] = from + int64(i)
				}
				return keys
			}
			wide := start(many(100)...)
			wide.MustEnter(t, "an attempt with 60 keys")
			other = start(1, 2)
			other.MustWait(t, "a keyed attempt, while one with 60 keys holds the HotSpot's lock")
			wide2 := start(many(200)...)
			wide2.MustWait(t, "a second attempt with 60 other keys")
			wide.Finish(t)
			other.MustEnter(t, "the keyed attempt, once the one with 60 keys committed")
			other.Finish(t)
			wide2.MustEnter(t, "the second attempt with 60 keys")
			wide2.Finish(t)
		})
	}
}

// holdAttempt starts an attempt with keys that holds its transaction open,
// with the HotSpot key's lock taken, until the test finishes it.
func holdAttempt(t *testing.T, db *sql.DB, d sqldb.Dialect, key int64, keys []int64) *testdb.Held {
	req := &hotlock.Request{Key: key, Keys: keys}
	return testdb.Hold(t, func(ctx context.Context, inside func()) error {
		_, err := sqldb.InTx(db, d, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
			inside()
			return struct{}{}, nil
		}).Run(hotlock.With(ctx, req))
		return err
	})
}

// Attempts with overlapping keys, with keys on too many stripes, and
// without keys, of many sessions at once, never deadlock on the HotSpot's locks: every
// transaction takes them in one order. Each attempt checks that no other
// attempt holding one of its keys, or any attempt when it has none, is in
// its function at the same time.
func TestHotSpotKeyLocksNeverDeadlock(t *testing.T) {
	for _, b := range keyLockBackends() {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			key := rand.Int64()
			var mu sync.Mutex
			inside := map[int64]int{} // key -> attempts holding it; -1 -> attempts without keys
			enter := func(keys []int64) error {
				mu.Lock()
				defer mu.Unlock()
				if inside[-1] > 0 || (len(keys) == 0 && len(inside) > 0) {
					return fmt.Errorf("keys %v beside an attempt it excludes: %v", keys, inside)
				}
				for _, k := range keys {
					if inside[k] > 0 {
						return fmt.Errorf("keys %v: key %d held by another attempt", keys, k)
					}
				}
				if len(keys) == 0 {
					inside[-1]++
				}
				for _, k := range keys {
					inside[k]++
				}
				return nil
			}
			leave := func(keys []int64) {
				mu.Lock()
				defer mu.Unlock()
				if len(keys) == 0 {
					keys = []int64{-1}
				}
				for _, k := range keys {
					if inside[k]--; inside[k] == 0 {
						delete(inside, k)
					}
				}
			}
			run := func(keys []int64) error {
				req := &hotlock.Request{Key: key, Keys: keys}
				_, err := sqldb.InTx(db, b.d, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
					if err := enter(keys); err != nil {
						return struct{}{}, err
					}
					time.Sleep(time.Millisecond)
					leave(keys)
					return struct{}{}, nil
				}).Run(hotlock.With(t.Context(), req))
				return err
			}
			// The first attempt with keys adds the HotSpot's lock rows
			// on MariaDB; sessions adding them at once may deadlock, an
			// error for the retry, not this test's business.
			if err := run([]int64{0}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8*25)
			for w := range 8 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for range 25 {
						var keys []int64
						switch rng.IntN(6) {
						case 0: // none
						case 1: // more than hotlock.MaxStripes
							for k := range int64(6) {
								keys = append(keys, k)
							}
						default:
							a, b := rng.Int64N(6), rng.Int64N(6)
							if a == b {
								b = (a + 1) % 6
							}
							keys = []int64{min(a, b), max(a, b)}
						}
						if err := run(keys); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
